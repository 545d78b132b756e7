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
	"slices"
	"strings"
)

// ownedHeader reports whether the transport owns the header name: a caller's
// value under that name is dropped, and the Client sets its own. The
// passthrough engine never forwards most of these (spec §2.3, the MCP per-hop
// headers and content-type); they are enforced here as well because a wrong
// Mcp-Session-Id or Content-Type would break the session every caller shares,
// and a caller's Accept-Encoding would stop Go's transport from decoding the
// answer.
func ownedHeader(name string) bool {
	for _, owned := range [...]string{
		"Content-Type", "Accept", "Accept-Encoding", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id",
	} {
		if strings.EqualFold(name, owned) {
			return true
		}
	}
	return false
}

// newRequest builds an HTTP request to the upstream: the given headers minus
// the owned ones, then the transport's headers for s (which may be nil
// before a session exists).
func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, body []byte, given http.Header, s *session) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build %s request: %w", method, err)
	}
	h := make(http.Header, len(given)+4)
	for name, values := range given {
		if !ownedHeader(name) {
			h[name] = slices.Clone(values)
		}
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
// errSessionLost for a 404 to a request of session s), or a refused redirect.
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
		return nil, fmt.Errorf("%s: the upstream redirects (HTTP %d) to %q; mcpgate does not follow redirects, register the final URL", req.Method, code, redact(loc, ""))
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
