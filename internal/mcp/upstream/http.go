package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// ownedHeader reports whether the transport owns the header, given by its
// canonical key: a caller's value under that name, in any case, is dropped,
// and the Client or Go's HTTP client sets its own. The MCP per-hop headers
// are protocol.IsHopHeader's, the passthrough engine's own list. The
// engine never forwards most of these (spec §2.3, the MCP per-hop and
// protocol headers); they are enforced here as well because a wrong Mcp-Session-Id
// or Content-Type would break the session every caller shares, a caller's
// Accept-Encoding would stop Go's transport from decoding the answer, and Go
// writes Host, Content-Length and Transfer-Encoding from the request itself,
// so a caller's would go out as a second, conflicting copy.
func ownedHeader(key string) bool {
	if protocol.IsHopHeader(key) {
		return true
	}
	switch key {
	case "Content-Type", "Accept", "Accept-Encoding", "Last-Event-Id",
		"Host", "Content-Length", "Transfer-Encoding", "Trailer", "Te", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade":
		return true
	}
	return false
}

// userAgent is the User-Agent of a request that brings none: mcpgate's name
// and version, as in initialize's clientInfo.
func (c *Client) userAgent() string {
	return c.opts.ClientName + "/" + c.opts.ClientVersion
}

// newRequest builds an HTTP request to the upstream: the given headers minus
// the owned ones, then the transport's headers for s (which may be nil
// before a session exists).
//
// Every name goes out once, with one value (spec §2.4): names are
// canonicalised, because Go's HTTP client looks up only the canonical key of
// the headers it writes itself (a "user-agent" key would go out next to its
// own User-Agent); of several values the last is sent, as the passthrough
// engine reads a request. given should hold each name in one spelling only,
// as the engine's result does; of case variants, the canonical spelling
// wins. A given User-Agent replaces Go's; without one mcpgate sends its own.
func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, body []byte, given http.Header, s *session) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", method, err)
	}
	h := make(http.Header, len(given)+5)
	for name, values := range given {
		key := http.CanonicalHeaderKey(name)
		if len(values) == 0 || ownedHeader(key) {
			continue
		}
		if _, dup := h[key]; dup && name != key {
			continue
		}
		h[key] = []string{values[len(values)-1]}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{c.userAgent()}
	}
	switch method {
	case http.MethodPost:
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
	case http.MethodGet:
		h.Set("Accept", "text/event-stream")
	}
	if s != nil {
		if s.id != "" {
			h.Set("Mcp-Session-Id", s.id)
		}
		if s.version != "" {
			// MCP 2025-06-18, basic/transports: on every request after
			// initialize.
			h.Set("Mcp-Protocol-Version", s.version)
		}
	}
	req.Header = h
	return req, nil
}

// do sends req. Statuses of 300 and more are errors: a *StatusError (marked
// errSessionLost for a 404 to a request of session s), or a *RedirectError.
func (c *Client) do(req *http.Request, s *session) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query and all
		}
		return nil, fmt.Errorf("%s: %w", req.Method, err)
	}
	c.log.Debug("upstream answered", "method", req.Method, "status", resp.StatusCode)
	switch code := resp.StatusCode; {
	case code >= 400:
		se := statusError(resp)
		if code == http.StatusNotFound && s != nil && (s.id != "" || s.cancel != nil) {
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

// postMessage POSTs a message that expects no answer in the HTTP response (a
// notification, a response to the upstream, or, on the legacy transport,
// anything) to s.
func (c *Client) postMessage(ctx context.Context, s *session, body []byte, headers http.Header) error {
	req, err := c.newRequest(ctx, http.MethodPost, s.endpoint, body, headers, s)
	if err != nil {
		return err
	}
	resp, err := c.do(req, s)
	if err != nil {
		return err
	}
	discard(resp)
	return nil
}
