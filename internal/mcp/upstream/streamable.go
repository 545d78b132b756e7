package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// Streamable HTTP (MCP 2025-03-26 and later, basic/transports): every
// message is a POST to the one endpoint; a request is answered with a JSON
// body or with an event stream carrying the response and, before it, the
// notifications and requests the server sends about it. The session is named
// by the Mcp-Session-Id the answer to initialize gives, if any; an optional
// GET stream carries what the server says outside any call.

// streamableDialer opens Streamable HTTP connections. listen says whether
// each opens a listening GET stream once initialized.
func streamableDialer(h *httpHop, life context.Context, listen bool) dialer {
	return func(_ context.Context, in inbox) (connection, error) {
		ctx, stop := context.WithCancel(life)
		return &streamableConn{hop: h, in: in, listen: listen, life: ctx, stop: stop,
			answered: make(chan struct{}), started: make(chan struct{})}, nil
	}
}

// streamableConn is one Streamable HTTP session.
type streamableConn struct {
	hop    *httpHop
	in     inbox
	listen bool
	life   context.Context // ends at close: the listening stream
	stop   context.CancelFunc

	// The listening stream is opened before notifications/initialized
	// (openListening) and read once the session is in place (start).
	answered  chan struct{} // closed once the first GET has its answer
	started   chan struct{} // closed by start
	answerOne sync.Once
	startOne  sync.Once
	launchOne sync.Once
	listening bool // the listen loop runs; set in launchOne

	mu     sync.Mutex
	st     perHop
	gone   bool // the upstream answered 404: nothing to DELETE
	closed bool
}

func (c *streamableConn) state() perHop {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *streamableConn) negotiated(version string) {
	c.mu.Lock()
	c.st.version = version
	c.mu.Unlock()
}

// listenWait bounds how long openListening waits for the answer to the
// GET: a server that holds it costs a new session that long, no more.
const listenWait = 2 * time.Second

// openListening opens the listening stream of a session-era session, when
// someone listens, and returns once the upstream has answered the GET (200
// with an event stream: the stream is registered; a refusal: there is none),
// or after listenWait, or when ctx ends. The session layer calls it between
// the answer to initialize, which names the session, and
// notifications/initialized, upon which a server may speak at once on that
// stream (roots/list, list_changed, logging); a server without an event
// store drops what it says there while no stream is open (MCP
// basic/transports, "Listening for Messages from the Server": the client
// MAY GET the endpoint at any time; basic/lifecycle only asks that it send
// no requests but pings before initialize is answered, and a GET is none).
// What the stream brings is read once the session is in place (start).
func (c *streamableConn) openListening(ctx context.Context) {
	if !c.runListenLoop() {
		return
	}
	t := time.NewTimer(listenWait)
	defer t.Stop()
	select {
	case <-c.answered:
	case <-t.C:
		c.hop.log.Debug("the upstream has not answered the listening GET; sending notifications/initialized without it", "waited", listenWait)
	case <-ctx.Done():
	}
}

// runListenLoop starts the listen loop, once, for a session-era session
// that listens; false when it does not run.
func (c *streamableConn) runListenLoop() bool {
	// A 2026-07-28 upstream has no GET stream: the session layer listens
	// with subscriptions/listen instead (listen.go).
	if !c.listen || protocol.Stateless(c.state().version) {
		return false
	}
	c.launchOne.Do(func() { c.listening = c.in.goTracked(c.listenLoop) })
	return c.listening
}

// start lets the listen loop hand on what the listening stream brings, now
// that the session is in place; it opens the stream if openListening has
// not.
func (c *streamableConn) start() {
	c.runListenLoop()
	c.startOne.Do(func() { close(c.started) })
}

// gotAnswer tells openListening that the first GET has its answer.
func (c *streamableConn) gotAnswer() { c.answerOne.Do(func() { close(c.answered) }) }

// do sends a request of the session and notes a session the upstream forgot.
func (c *streamableConn) do(req *http.Request, st perHop) (*http.Response, error) {
	resp, err := c.hop.do(req, st.sessionID != "")
	if errors.Is(err, errSessionLost) {
		c.mu.Lock()
		c.gone = true
		c.mu.Unlock()
	}
	return resp, err
}

func (c *streamableConn) send(ctx context.Context, body []byte, headers http.Header) error {
	st := c.state()
	req, err := c.hop.newRequest(ctx, http.MethodPost, c.hop.url, body, headers, st)
	if err != nil {
		return err
	}
	resp, err := c.do(req, st)
	if err != nil {
		return err
	}
	discard(resp)
	return nil
}

// roundTrip POSTs the request cl and reads the answer until cl's response.
// The answer to initialize names the session (Mcp-Session-Id).
func (c *streamableConn) roundTrip(ctx context.Context, cl *call, body []byte, deliver func(jsonrpc.Message)) (jsonrpc.Message, error) {
	st := c.state()
	st.hop = cl.hop
	req, err := c.hop.newRequest(ctx, http.MethodPost, c.hop.url, body, cl.headers, st)
	if err != nil {
		return jsonrpc.Message{}, err
	}
	resp, err := c.do(req, st)
	if err != nil {
		return jsonrpc.Message{}, err
	}
	// Once the answer is read, the rest of the body (normally just the end
	// of the stream, which the server sends right after the response) is
	// read too, so that net/http can reuse the connection for the next call
	// instead of dialling a new one.
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return jsonrpc.Message{}, fmt.Errorf("POST: the upstream answered HTTP %d to a request, with no response in it", resp.StatusCode)
	}
	if cl.method == "initialize" {
		id := resp.Header.Get("Mcp-Session-Id")
		if !validSessionID(id) {
			return jsonrpc.Message{}, errors.New("the upstream's Mcp-Session-Id holds characters other than visible ASCII")
		}
		c.mu.Lock()
		c.st.sessionID = id
		c.mu.Unlock()
	}
	var found *jsonrpc.Message
	take := func(m jsonrpc.Message) {
		if r := c.in.inCall(ctx, cl, m, deliver); r != nil && found == nil {
			found = r
		}
	}
	switch mt := mediaType(resp.Header.Get("Content-Type")); mt {
	case "application/json":
		data, err := readBody(resp.Body)
		if err != nil {
			return jsonrpc.Message{}, err
		}
		msgs, _, err := jsonrpc.Decode(data)
		if err != nil {
			return jsonrpc.Message{}, fmt.Errorf("the upstream's answer is not JSON-RPC: %w", err)
		}
		for _, m := range msgs {
			take(m)
		}
		if found == nil {
			return jsonrpc.Message{}, errors.New("the upstream's JSON answer holds no response to the request")
		}
	case "text/event-stream":
		events := newEventReader(resp.Body, MaxMessageSize)
		for found == nil {
			ev, err := events.next()
			if errors.Is(err, io.EOF) {
				return jsonrpc.Message{}, errors.New("the upstream ended its event stream without a response to the request")
			}
			if err != nil {
				return jsonrpc.Message{}, err
			}
			if ev.name != "message" || len(bytes.TrimSpace(ev.data)) == 0 {
				continue // e.g. the priming event of MCP 2025-11-25
			}
			msgs, _, err := jsonrpc.Decode(ev.data)
			if err != nil {
				return jsonrpc.Message{}, fmt.Errorf("the upstream sent an event that is not JSON-RPC: %w", err)
			}
			for _, m := range msgs {
				take(m)
			}
		}
	default:
		return jsonrpc.Message{}, fmt.Errorf("the upstream answered with Content-Type %q; want application/json or text/event-stream", mt)
	}
	cl.drain(deliver) // anything the listening stream brought meanwhile
	return *found, nil
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

// close stops the listening stream and ends the session (MCP
// basic/transports: the client SHOULD send DELETE; a 405 means the server
// does not allow it). A session the upstream has forgotten, or never named,
// is not DELETEd.
func (c *streamableConn) close(ctx context.Context) error {
	c.mu.Lock()
	st, skip := c.st, c.gone || c.closed || c.st.sessionID == ""
	c.closed = true
	c.mu.Unlock()
	c.stop()
	if skip {
		return nil
	}
	headers, err := c.hop.own.get(ctx)
	if err != nil {
		return fmt.Errorf("end upstream session on %s: %w", c.hop.where, err)
	}
	req, err := c.hop.newRequest(ctx, http.MethodDelete, c.hop.url, nil, headers, st)
	if err != nil {
		return err
	}
	resp, err := c.hop.do(req, false)
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.StatusCode == http.StatusMethodNotAllowed || se.StatusCode == http.StatusNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("end upstream session on %s: %w", c.hop.where, err)
	}
	discard(resp)
	return nil
}

const (
	listenMinDelay = 500 * time.Millisecond
	listenMaxDelay = 30 * time.Second
)

// listenLoop keeps a GET event stream open for what the upstream says
// outside any call (list_changed, mostly) until the connection is closed or
// replaced. Started only when someone listens (Options.OnNotification).
func (c *streamableConn) listenLoop() { keepOpen(c.life, c.listenOnce) }

// keepOpen runs open, which opens a long-lived stream and reads it to its
// end, again and again until it says trying again makes no sense or ctx
// ends: after listenMinDelay, doubling up to listenMaxDelay, back to the
// least after an attempt that opened its stream.
func keepOpen(ctx context.Context, open func() (opened, again bool)) {
	delay := listenMinDelay
	for {
		opened, again := open()
		if !again || ctx.Err() != nil {
			return
		}
		if opened {
			delay = listenMinDelay
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		delay = min(2*delay, listenMaxDelay)
	}
}

// listenOnce opens the listening stream once and reads it to its end. opened
// says whether it got a stream; again whether trying later makes sense.
func (c *streamableConn) listenOnce() (opened, again bool) {
	defer c.gotAnswer() // whatever stopped the GET, openListening waits no longer
	log := c.hop.log
	headers, err := c.hop.own.get(c.life)
	if err != nil {
		log.Debug("listening stream: no headers", "error", err)
		return false, true
	}
	st := c.state()
	req, err := c.hop.newRequest(c.life, http.MethodGet, c.hop.url, nil, headers, st)
	if err != nil {
		return false, false
	}
	resp, err := c.do(req, st)
	c.gotAnswer()
	// Nothing is handed on, and the session not replaced, before the
	// session is in place: the first GET is opened before it is.
	select {
	case <-c.started:
	case <-c.life.Done():
		if err == nil {
			resp.Body.Close()
		}
		return false, false
	}
	var se *StatusError
	switch {
	case errors.Is(err, errSessionLost):
		c.in.lost(err)
		// A new session listens on its own connection; this one is done.
		return false, !c.in.replace()
	case errors.As(err, &se) && se.StatusCode < 500 && se.StatusCode != http.StatusRequestTimeout && se.StatusCode != http.StatusTooManyRequests:
		// 405 is the usual "no such stream here"; other 4xx will not heal.
		log.Debug("the upstream offers no listening stream", "status", se.StatusCode)
		return false, false
	case err != nil:
		if c.life.Err() == nil {
			log.Debug("listening stream failed", "error", err)
		}
		return false, true
	}
	defer resp.Body.Close()
	if mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
		log.Warn("the upstream answered the listening GET with something other than an event stream")
		return false, false
	}
	err = decodeEvents(newEventReader(resp.Body, MaxMessageSize), log, func(m jsonrpc.Message) { c.in.shared(m, false) })
	if c.life.Err() == nil && !errors.Is(err, io.EOF) {
		log.Debug("listening stream ended", "error", err)
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
