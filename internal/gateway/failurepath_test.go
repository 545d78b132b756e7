package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestMCPClientsNeverSeeUpstreamURLs: whatever way an upstream fails a
// tools/call — unreachable, HTTP 500, a body that is not JSON, no answer
// within UPSTREAM_TIMEOUT — a client of /mcp is told which upstream and
// what kind of failure, never the upstream's address, even when the
// upstream's own error text repeats it; mcpgate's log has the cause.
func TestMCPClientsNeverSeeUpstreamURLs(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	target, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	// front is the upstream as registered; mode says how it fails a
	// tools/call, while everything else goes through.
	var mode atomic.Value
	mode.Store("")
	stop := make(chan struct{}) // closed to end the streams it proxies
	var front *httptest.Server
	front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte(`"tools/call"`)) {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			proxy.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		here := front.URL + r.URL.Path
		switch mode.Load().(string) {
		case "500":
			http.Error(w, "internal error at "+here, http.StatusInternalServerError)
		case "bad JSON":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":1,"result":{"see":"%s"`, here)
		case "timeout":
			<-r.Context().Done() // mcpgate gives up first
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	var stopOnce sync.Once
	unreachable := func() { stopOnce.Do(func() { close(stop) }); front.Close() }
	t.Cleanup(unreachable)
	address := strings.TrimPrefix(front.URL, "http://")

	var log syncBuffer
	gw := startGatewayWith(t, sqliteURL(t), map[string]string{"UPSTREAM_TIMEOUT": "1s"},
		gatewayOptions{logger: slog.New(slog.NewTextHandler(&log, nil))})
	gw.register(map[string]any{"name": "crm", "url": front.URL + target.Path})
	session := openSessionAt(t, gw, "/mcp", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
		"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}})
	call := func() string {
		_, out := gw.send("POST", "/mcp", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crm-echo","arguments":{"text":"x"}}}`,
			"Content-Type", "application/json", "Accept", "application/json, text/event-stream", "Mcp-Session-Id", session)
		return out
	}
	if out := call(); !strings.Contains(out, `"text":"x"`) {
		t.Fatalf("the call before any failure answered %s", out)
	}
	for _, tc := range []struct {
		mode, want string
		breakIt    func()
	}{
		{"500", `upstream \"crm\" answered HTTP 500`, nil},
		{"bad JSON", `upstream \"crm\" failed (mcpgate's log has the cause)`, nil},
		{"timeout", `upstream \"crm\" did not answer within 1s`, nil},
		{"unreachable", `upstream \"crm\" is not reachable`, unreachable},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			mode.Store(tc.mode)
			if tc.breakIt != nil {
				tc.breakIt()
			}
			logged := log.count(address)
			out := call()
			if !strings.Contains(out, `"code":-32000`) || !strings.Contains(out, tc.want) {
				t.Errorf("the client got %s, want -32000 saying %s", out, tc.want)
			}
			if strings.Contains(out, address) || strings.Contains(out, target.Path+`"`) {
				t.Errorf("the client is told the upstream's address: %s", out)
			}
			if tc.mode != "timeout" && log.count(address) == logged {
				t.Errorf("the log does not have the cause with the upstream's address")
			}
		})
	}
}
