package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Streamable HTTP (MCP 2025-03-26 and later, basic/transports): every
// message is a POST to the one endpoint; a request is answered with a JSON
// body or with an event stream carrying the response and, before it, the
// notifications and requests the server sends about it.

// initializeStreamable opens a Streamable HTTP session.
func (c *Client) initializeStreamable(ctx context.Context) (*session, error) {
	cl, body, err := c.initializeCall()
	if err != nil {
		return nil, err
	}
	resp, header, err := c.postCall(ctx, &session{endpoint: c.url}, cl, body, nil)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	s := &session{endpoint: c.url, id: header.Get("Mcp-Session-Id")}
	if !validSessionID(s.id) {
		return nil, errors.New("initialize: the upstream's Mcp-Session-Id holds characters other than visible ASCII")
	}
	if err := c.accept(s, resp); err != nil {
		c.deleteSession(ctx, s)
		return nil, err
	}
	if err := c.initialized(ctx, s); err != nil {
		c.deleteSession(ctx, s)
		return nil, err
	}
	return s, nil
}

// validSessionID: visible ASCII only (MCP 2025-06-18, basic/transports,
// "Session Management").
func validSessionID(id string) bool {
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return false
		}
	}
	return true
}

// postCall POSTs the request cl and reads the answer until cl's response. It
// also returns the response's HTTP header (initialize needs the session id).
func (c *Client) postCall(ctx context.Context, s *session, cl *call, body []byte, onNote func(jsonrpc.Message)) (jsonrpc.Message, http.Header, error) {
	req, err := c.newRequest(ctx, http.MethodPost, s.endpoint, body, cl.headers, s)
	if err != nil {
		return jsonrpc.Message{}, nil, err
	}
	resp, err := c.do(req, s)
	if err != nil {
		return jsonrpc.Message{}, nil, err
	}
	// Once the answer is read, the rest of the body (normally just the end
	// of the stream, which the server sends right after the response) is
	// read too, so that net/http can reuse the connection for the next call
	// instead of dialling a new one.
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return jsonrpc.Message{}, nil, fmt.Errorf("POST: the upstream answered HTTP %d to a request, with no response in it", resp.StatusCode)
	}
	deliver := func(m jsonrpc.Message) { c.deliver(cl, m, onNote) }
	var found *jsonrpc.Message
	switch mt := mediaType(resp.Header.Get("Content-Type")); mt {
	case "application/json":
		data, err := readBody(resp.Body)
		if err != nil {
			return jsonrpc.Message{}, nil, err
		}
		msgs, _, err := jsonrpc.Decode(data)
		if err != nil {
			return jsonrpc.Message{}, nil, fmt.Errorf("the upstream's answer is not JSON-RPC: %w", err)
		}
		for _, m := range msgs {
			if r := c.onCallStream(ctx, s, cl, m, deliver); r != nil && found == nil {
				found = r
			}
		}
		if found == nil {
			return jsonrpc.Message{}, nil, errors.New("the upstream's JSON answer holds no response to the request")
		}
	case "text/event-stream":
		events := newEventReader(resp.Body, MaxMessageSize)
		for found == nil {
			ev, err := events.next()
			if errors.Is(err, io.EOF) {
				return jsonrpc.Message{}, nil, errors.New("the upstream ended its event stream without a response to the request")
			}
			if err != nil {
				return jsonrpc.Message{}, nil, err
			}
			if ev.name != "message" || len(bytes.TrimSpace(ev.data)) == 0 {
				continue // e.g. the priming event of MCP 2025-11-25
			}
			msgs, _, err := jsonrpc.Decode(ev.data)
			if err != nil {
				return jsonrpc.Message{}, nil, fmt.Errorf("the upstream sent an event that is not JSON-RPC: %w", err)
			}
			for _, m := range msgs {
				if r := c.onCallStream(ctx, s, cl, m, deliver); r != nil && found == nil {
					found = r
				}
			}
		}
	default:
		return jsonrpc.Message{}, nil, fmt.Errorf("the upstream answered with Content-Type %q; want application/json or text/event-stream", mt)
	}
	cl.drain(deliver) // anything the listening stream brought meanwhile
	return *found, resp.Header, nil
}

// onCallStream handles a message that came in the answer to cl's POST; it
// returns cl's response when m is it.
func (c *Client) onCallStream(ctx context.Context, s *session, cl *call, m jsonrpc.Message, deliver func(jsonrpc.Message)) *jsonrpc.Message {
	switch {
	case m.IsRequest() && c.opts.Relay:
		// The relayed client answers it, through Respond.
		cl.drain(deliver)
		deliver(m)
	case m.IsRequest():
		// On behalf of the caller, so with the caller's headers (the
		// upstream may well require its credentials).
		c.answer(ctx, s, m, cl.headers)
	case m.IsNotification():
		if sessionScoped(m.Method) && !c.opts.Relay {
			c.notifyGlobal(m)
			return nil
		}
		cl.drain(deliver)
		deliver(m)
	default: // a response
		if idKey(m.ID) == idKey(cl.wireID) || (idKey(m.ID) == "null" && m.Error != nil) {
			return &m
		}
		c.route(s, m) // another call's, strangely: give it to its owner
	}
	return nil
}

// deleteSession ends a Streamable HTTP session (MCP basic/transports: the
// client SHOULD send DELETE; a 405 means the server does not allow it).
func (c *Client) deleteSession(ctx context.Context, s *session) error {
	if s.id == "" {
		return nil
	}
	req, err := c.newRequest(ctx, http.MethodDelete, c.url, nil, c.connectH, s)
	if err != nil {
		return err
	}
	resp, err := c.do(req, nil)
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.StatusCode == http.StatusMethodNotAllowed || se.StatusCode == http.StatusNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("end upstream session on %s: %w", c.where, err)
	}
	discard(resp)
	return nil
}

const (
	listenMinDelay = 500 * time.Millisecond
	listenMaxDelay = 30 * time.Second
)

// listen keeps a GET event stream open for what the upstream says outside
// any call (list_changed, mostly), until Close. Started only when someone
// listens (Options.OnNotification).
func (c *Client) listen() {
	delay := listenMinDelay
	for {
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		opened, again := c.listenOnce(s)
		if !again || c.life.Err() != nil {
			return
		}
		if opened {
			delay = listenMinDelay
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.life.Done():
			t.Stop()
			return
		}
		delay = min(2*delay, listenMaxDelay)
	}
}

// listenOnce opens the listening stream once and reads it to its end. opened
// says whether it got a stream; again whether trying later makes sense.
func (c *Client) listenOnce(s *session) (opened, again bool) {
	req, err := c.newRequest(c.life, http.MethodGet, c.url, nil, c.connectH, s)
	if err != nil {
		return false, false
	}
	resp, err := c.do(req, s)
	var se *StatusError
	switch {
	case errors.Is(err, errSessionLost):
		ctx, cancel := context.WithTimeout(c.life, sideTimeout)
		defer cancel()
		if _, err := c.renew(ctx, s); err != nil {
			c.log.Debug("listening stream: could not re-initialize", "error", err)
		}
		return false, true
	case errors.As(err, &se) && se.StatusCode < 500 && se.StatusCode != http.StatusRequestTimeout && se.StatusCode != http.StatusTooManyRequests:
		// 405 is the usual "no such stream here"; other 4xx will not heal.
		c.log.Debug("the upstream offers no listening stream", "status", se.StatusCode)
		return false, false
	case err != nil:
		if c.life.Err() == nil {
			c.log.Debug("listening stream failed", "error", err)
		}
		return false, true
	}
	defer resp.Body.Close()
	if mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
		c.log.Warn("the upstream answered the listening GET with something other than an event stream")
		return false, false
	}
	err = c.routeEvents(s, newEventReader(resp.Body, MaxMessageSize))
	if c.life.Err() == nil && !errors.Is(err, io.EOF) {
		c.log.Debug("listening stream ended", "error", err)
	}
	return true, true
}

// drainWait bounds how long a call waits for the end of an answered stream:
// a server that keeps the stream open costs a call that long and its
// connection.
const drainWait = 5 * time.Millisecond

// drainAndClose reads what is left of a response body, at most 64 KiB and
// for at most drainWait, then closes it: a body read to its end lets
// net/http reuse the connection.
func drainAndClose(body io.ReadCloser) {
	timer := time.AfterFunc(drainWait, func() { _ = body.Close() })
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	timer.Stop()
	_ = body.Close()
}
