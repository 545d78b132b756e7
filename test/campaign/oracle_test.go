package campaign

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// What reaches the engine: Go's HTTP server parses the raw bytes first and
// refuses some with 400 before any handler runs. Rather than model that
// parser, the campaign asks one: an oracle server configured like
// mcpgate's receives the same header lines and answers with what it
// parsed. The model then starts from exactly what the gateway's handlers
// see (spec §2 "Inputs").

// credentialOK is whether mcpgate finds the client's credential: with
// AUTH_REQUIRED, exactly one AUTH_HEADER_NAME header holding the token
// that the driver wrote (a second one, from the case's lines, is refused).
func credentialOK(s modelSettings, parsed map[string][]string, token string) bool {
	if !s.AuthRequired {
		return true
	}
	values := parsed[http.CanonicalHeaderKey(s.AuthHeaderName)]
	return len(values) == 1 && values[0] == "Bearer "+token
}

// parse sends lines to the oracle, a plain net/http server, and returns
// the header it parsed (nil when it refused them with 4xx): what the
// gateway's server hands its handlers.
func (c *campaign) parse(method string, lines []string) (map[string][]string, error) {
	status, _, body, err := roundTrip(c.oracle, rawRequest{method, "/oracle", lines, nil}, "")
	if err != nil {
		return nil, fmt.Errorf("%w: the oracle: %v", errHarness, err)
	}
	if status >= 400 && status <= 499 {
		return nil, nil
	}
	var raw map[string][][]byte
	if status != http.StatusOK || json.Unmarshal(body, &raw) != nil {
		return nil, fmt.Errorf("%w: the oracle answered HTTP %d %q", errHarness, status, body)
	}
	h := map[string][]string{}
	for k, vs := range raw {
		for _, v := range vs {
			h[k] = append(h[k], string(v))
		}
	}
	return h, nil
}

// newOracle starts a net/http server configured like mcpgate's (same
// MaxHeaderBytes) that answers with the header it parsed, as JSON.
func newOracle(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{MaxHeaderBytes: 1 << 20, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			// []byte values, so that JSON (base64) keeps every byte.
			h := map[string][][]byte{}
			for k, vs := range r.Header {
				for _, v := range vs {
					h[k] = append(h[k], []byte(v))
				}
			}
			b, _ := json.Marshal(h)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}
