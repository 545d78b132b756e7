package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// The legacy HTTP+SSE transport (MCP 2024-11-05, basic/transports): a GET
// opens an event stream whose first "endpoint" event names the URL to POST
// messages to; POSTs are only accepted (202), and every answer arrives as a
// "message" event on the stream. One stream is one session: when it ends,
// the next call opens a new one.

// sseDialer opens legacy SSE connections; each stream lives until the
// connection is closed or life ends.
func sseDialer(h *httpHop, life context.Context) dialer {
	return func(ctx context.Context, in inbox) (connection, error) {
		return openSSE(ctx, h, life, in)
	}
}

// sseConn is one legacy SSE session: its event stream and where to POST.
type sseConn struct {
	hop      *httpHop
	endpoint *url.URL // where messages are POSTed
	cancel   context.CancelFunc
	done     chan struct{} // closed when the stream has ended
	err      error         // why it ended, set before done is closed

	mu      sync.Mutex
	version string
}

// openSSE opens the event stream and reads its endpoint event. ctx bounds
// the opening; the stream then lives until close or until life ends.
func openSSE(ctx context.Context, h *httpHop, life context.Context, in inbox) (*sseConn, error) {
	streamCtx, cancel := context.WithCancel(life)
	stop := context.AfterFunc(ctx, cancel)
	defer stop() // ctx bounds the opening only
	fail := func(err error) (*sseConn, error) {
		cancel()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	headers, err := h.own.get(ctx)
	if err != nil {
		return fail(fmt.Errorf("open event stream: %w", err))
	}
	req, err := h.newRequest(streamCtx, http.MethodGet, h.url, nil, headers, perHop{})
	if err != nil {
		return fail(err)
	}
	resp, err := h.do(req, false)
	if err != nil {
		return fail(fmt.Errorf("open event stream: %w", err))
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		resp.Body.Close()
		return fail(fmt.Errorf("open event stream: the upstream answered HTTP %d with Content-Type %q; want 200 and text/event-stream", resp.StatusCode, mt))
	}
	events := newEventReader(resp.Body, MaxMessageSize)
	c := &sseConn{hop: h, cancel: cancel, done: make(chan struct{})}
	for c.endpoint == nil {
		ev, err := events.next()
		if err != nil {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: no endpoint event: %w", err))
		}
		if ev.name != "endpoint" {
			continue
		}
		u, err := h.url.Parse(strings.TrimSpace(string(ev.data)))
		if err != nil {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: the endpoint event holds no URL: %w", err))
		}
		// The POSTs carry credentials and passthrough headers meant for this
		// upstream: an endpoint elsewhere is refused.
		if u.Scheme != h.url.Scheme || u.Host != h.url.Host {
			resp.Body.Close()
			return fail(fmt.Errorf("open event stream: the endpoint event points to another origin (%s)", redact(u, "")))
		}
		c.endpoint = u
	}
	if !stop() {
		resp.Body.Close()
		return fail(ctx.Err()) // ctx ended just now, and the stream with it
	}
	if !in.goTracked(func() { c.read(resp.Body, events, in) }) {
		resp.Body.Close()
		return fail(ErrClosed)
	}
	return c, nil
}

// read hands every message of the stream to in until the stream ends, then
// says the session is lost; the calls waiting on it fail then.
func (c *sseConn) read(body io.ReadCloser, events *eventReader, in inbox) {
	defer body.Close()
	err := decodeEvents(events, c.hop.log, func(m jsonrpc.Message) { in.shared(m, true) })
	if errors.Is(err, io.EOF) {
		err = errors.New("the upstream closed it")
	}
	c.err = err
	close(c.done)
	in.lost(fmt.Errorf("upstream event stream ended: %w", err))
}

func (c *sseConn) state() perHop {
	c.mu.Lock()
	defer c.mu.Unlock()
	return perHop{version: c.version}
}

func (c *sseConn) negotiated(version string) {
	c.mu.Lock()
	c.version = version
	c.mu.Unlock()
}

// openListening and start do nothing: the stream the session lives on is
// its listening stream, open (and read) since the connection is.
func (c *sseConn) openListening(context.Context) {}
func (c *sseConn) start()                        {}

func (c *sseConn) send(ctx context.Context, body []byte, headers http.Header) error {
	return c.hop.post(ctx, c.endpoint, body, headers, c.state(), true)
}

// roundTrip POSTs the request, which the upstream only accepts: its answer,
// and what comes about it before, arrive on the stream.
func (c *sseConn) roundTrip(ctx context.Context, cl *call, body []byte, deliver func(jsonrpc.Message)) (jsonrpc.Message, error) {
	if err := c.send(ctx, body, cl.headers); err != nil {
		return jsonrpc.Message{}, err
	}
	resp, err := cl.wait(ctx, c.done, deliver)
	if errors.Is(err, errStreamEnded) {
		return jsonrpc.Message{}, fmt.Errorf("upstream event stream ended before the response: %w", c.err)
	}
	return resp, err
}

// close ends the stream, and with it the session.
func (c *sseConn) close(context.Context) error {
	c.cancel()
	return nil
}
