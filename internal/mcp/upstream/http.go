package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// httpHop is what the two HTTP transports share: the HTTP client, the
// upstream's own headers and how every request is built and its answer
// checked.
type httpHop struct {
	hc        *http.Client
	url       *url.URL // Options.URL
	where     string   // url without credentials or query, for messages
	userAgent string   // of a request that brings none
	own       ownHeaders
	log       *slog.Logger
}

// perHop is the session state a request carries in the transport's own
// headers; the zero value is "before initialize".
type perHop struct {
	sessionID string // Mcp-Session-Id; "" when the upstream keeps none
	version   string // the negotiated protocol version
	// hop holds the per-hop headers of this one request that the session
	// layer computed for a 2026-07-28 upstream (Mcp-Method, Mcp-Name,
	// Mcp-Param-*: stateless.go), canonically keyed; they are set last.
	hop http.Header
}

// newRequest builds an HTTP request to the upstream: the given headers minus
// the owned ones, then the transport's headers for the session state st.
//
// Every name goes out once, with one value (spec §2.4): names are
// canonicalised, because Go's HTTP client looks up only the canonical key of
// the headers it writes itself (a "user-agent" key would go out next to its
// own User-Agent); of several values the last is sent, as the passthrough
// engine reads a request. given should hold each name in one spelling only,
// as the engine's result does; of case variants, the canonical spelling
// wins. A given User-Agent replaces Go's; without one mcpgate sends its own.
func (h *httpHop) newRequest(ctx context.Context, method string, u *url.URL, body []byte, given http.Header, st perHop) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", method, err)
	}
	hs := make(http.Header, len(given)+5)
	for name, values := range given {
		key := http.CanonicalHeaderKey(name)
		if len(values) == 0 || ownedHeader(key) {
			continue
		}
		if _, dup := hs[key]; dup && name != key {
			continue
		}
		hs[key] = []string{values[len(values)-1]}
	}
	if _, ok := hs["User-Agent"]; !ok {
		hs["User-Agent"] = []string{h.userAgent}
	}
	switch method {
	case http.MethodPost:
		hs.Set("Content-Type", "application/json")
		hs.Set("Accept", "application/json, text/event-stream")
	case http.MethodGet:
		hs.Set("Accept", "text/event-stream")
	}
	if st.sessionID != "" {
		hs.Set("Mcp-Session-Id", st.sessionID)
	}
	if st.version != "" {
		// MCP 2025-06-18, basic/transports: on every request after
		// initialize.
		hs.Set("Mcp-Protocol-Version", st.version)
	}
	for key, values := range st.hop {
		hs[key] = values
	}
	req.Header = hs
	return req, nil
}

// do sends req. Statuses of 300 and more are errors: a *StatusError (marked
// errSessionLost for a 404 to a request that belongs to a session the
// upstream keeps), or a *RedirectError.
func (h *httpHop) do(req *http.Request, inSession bool) (*http.Response, error) {
	resp, err := h.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query and all
		}
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	h.log.Debug("upstream answered", "method", req.Method, "status", resp.StatusCode)
	switch code := resp.StatusCode; {
	case code >= 400:
		se := statusError(resp)
		if code == http.StatusNotFound && inSession {
			return nil, fmt.Errorf("%s: %w: %w", req.Method, errSessionLost, se)
		}
		return nil, fmt.Errorf("%s: %w", req.Method, se)
	case code >= 300:
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return nil, fmt.Errorf("%s: %w", req.Method, &RedirectError{StatusCode: code, Location: redact(loc, "")})
	}
	return resp, nil
}

// post POSTs a message that expects no answer in the HTTP response (a
// notification, a response to the upstream, or, on the legacy transport,
// anything) to u.
func (h *httpHop) post(ctx context.Context, u *url.URL, body []byte, headers http.Header, st perHop, inSession bool) error {
	req, err := h.newRequest(ctx, http.MethodPost, u, body, headers, st)
	if err != nil {
		return err
	}
	resp, err := h.do(req, inSession)
	if err != nil {
		return err
	}
	discard(resp)
	return nil
}

// statusError reads the start of an error response and closes it.
func statusError(resp *http.Response) *StatusError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &StatusError{StatusCode: resp.StatusCode, Body: strings.ToValidUTF8(string(b), "")}
}

// discard drains a little of a body we do not need, so the connection can
// be reused, and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

// mediaType returns the media type of a Content-Type value, lower case.
func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}

// readBody reads a whole body, at most MaxMessageSize bytes of it.
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxMessageSize+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("read response: it exceeds the maximum message size (%d bytes)", MaxMessageSize)
	}
	return b, nil
}

// decodeEvents decodes every "message" event of a session-wide event stream
// (the legacy SSE stream, Streamable HTTP's listening GET) and hands its
// messages to handle, until the stream ends; it returns why it ended.
func decodeEvents(events *eventReader, log *slog.Logger, handle func(jsonrpc.Message)) error {
	for {
		ev, err := events.next()
		if err != nil {
			return err
		}
		if ev.name != "message" || len(bytes.TrimSpace(ev.data)) == 0 {
			continue
		}
		msgs, _, err := jsonrpc.Decode(ev.data)
		if err != nil {
			log.Warn("the upstream sent an event that is not JSON-RPC; ignored", "error", err)
			continue
		}
		for _, m := range msgs {
			handle(m)
		}
	}
}
