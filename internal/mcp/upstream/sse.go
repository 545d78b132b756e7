package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// The legacy HTTP+SSE transport (MCP 2024-11-05, basic/transports): a GET
// opens an event stream whose first "endpoint" event names the URL to POST
// messages to; POSTs are only accepted (202), and every answer arrives as a
// "message" event on the stream. One stream is one session: when it ends,
// the next call opens a new one.

// openStream opens the event stream and initializes a session on it. ctx
// bounds the handshake; the stream then lives until Close or until the
// session is replaced.
func (c *Client) openStream(ctx context.Context) (*session, error) {
	streamCtx, cancel := context.WithCancel(c.life)
	stop := context.AfterFunc(ctx, cancel)
	fail := func(err error) (*session, error) {
		stop()
		cancel()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}

	req, err := c.newRequest(streamCtx, http.MethodGet, c.url, nil, c.connectH, nil)
	if err != nil {
		return fail(err)
	}
	resp, err := c.do(req, nil)
	if err != nil {
		return fail(fmt.Errorf("open event stream: %w", err))
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		resp.Body.Close()
		return fail(fmt.Errorf("open event stream: the upstream answered HTTP %d with Content-Type %q; want 200 and text/event-stream", resp.StatusCode, mt))
	}
	events := newEventReader(resp.Body, MaxMessageSize)
	s := &session{cancel: cancel}
	for s.endpoint == nil {
		ev, err := events.next()
		if err != nil {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: no endpoint event: %w", err))
		}
		if ev.name != "endpoint" {
			continue
		}
		u, err := c.url.Parse(strings.TrimSpace(string(ev.data)))
		if err != nil {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: the endpoint event holds no URL: %w", err))
		}
		// The POSTs carry credentials and passthrough headers meant for this
		// upstream: an endpoint elsewhere is refused.
		if u.Scheme != c.url.Scheme || u.Host != c.url.Host {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: the endpoint event points to another origin (%s)", redact(u, "")))
		}
		s.endpoint = u
	}
	if !c.goTracked(func() { c.readStream(s, resp.Body, events) }) {
		resp.Body.Close()
		return fail(ErrClosed)
	}

	cl, body, err := c.initializeCall()
	if err != nil {
		return fail(err)
	}
	rs, err := c.attempt(ctx, s, cl, body, nil)
	if err != nil {
		return fail(fmt.Errorf("initialize: %w", err))
	}
	if err := c.accept(s, rs); err != nil {
		return fail(err)
	}
	if err := c.initialized(ctx, s); err != nil {
		return fail(err)
	}
	if !stop() {
		return fail(ctx.Err()) // ctx ended just now, and the stream with it
	}
	return s, nil
}

// routeEvents routes every message of a session-wide event stream (the
// legacy SSE stream, or Streamable HTTP's listening GET) until the stream
// ends, and returns why it ended.
func (c *Client) routeEvents(s *session, events *eventReader) error {
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
			c.log.Warn("the upstream sent an event that is not JSON-RPC; ignored", "error", err)
			continue
		}
		for _, m := range msgs {
			c.route(s, m)
		}
	}
}

// readStream reads the session's event stream until it ends, then fails the
// calls still waiting on it.
func (c *Client) readStream(s *session, body io.ReadCloser, events *eventReader) {
	defer body.Close()
	err := c.routeEvents(s, events)

	c.mu.Lock()
	s.ended = true
	current := c.sess == s && !c.closed
	var orphans []*call
	for _, cl := range c.calls {
		if cl.sess == s {
			orphans = append(orphans, cl)
		}
	}
	c.mu.Unlock()
	if errors.Is(err, io.EOF) {
		err = errors.New("the upstream closed it")
	}
	for _, cl := range orphans {
		cl.finish(nil, fmt.Errorf("upstream event stream ended before the response: %w", err))
	}
	if current { // not when Close or a newer session ended it
		c.log.Warn("upstream event stream ended; the next call opens a new session", "error", err)
	}
}
