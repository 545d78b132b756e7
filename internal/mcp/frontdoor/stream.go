package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/passthrough"
)

// StreamConfig configures the transports whose session lives on one
// long-lived connection, legacy SSE and WebSocket: every answer and
// notification of the session goes out on it.
type StreamConfig struct {
	Handler   Handler
	Logger    *slog.Logger
	RequestID RequestID
	// Policy captures the session's opening headers (spec §4); required.
	Policy *passthrough.Policy
	// IdleTimeout ends a session that has had no client message for that
	// long (SESSION_IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// KeepAlive is how often an idle connection gets a keep-alive (an SSE
	// comment, a WebSocket ping), so that proxies do not cut it.
	KeepAlive time.Duration
	// MaxSessions bounds the sessions held at once; opening one more
	// answers 503.
	MaxSessions int
	// Limit, when set, bounds the sessions of each client (Principal), as
	// shared with the other front doors (MAX_SESSIONS_PER_CLIENT).
	Limit *ClientLimit
	// MaxInFlight bounds the client messages of one session being handled
	// at once; the next waits for a free slot.
	MaxInFlight int
	// Open, when set, gives each session a Backend of its own, opened by
	// the session's initialize (the 1:1 relay, a federated session);
	// Handler then answers only the messages of a session that has not
	// initialized, and without one they are refused.
	Open Opener
	// Scope, when set, names what a request's session belongs to (the
	// upstream of /gateways/{id}/sse): a session is found only by requests
	// of the scope that opened it.
	Scope func(*http.Request) string
	// MessagePath, when set, gives the path the legacy SSE endpoint event
	// names for a stream request; nil means MessagePath.
	MessagePath func(*http.Request) string
	// Principal, when set, names the authenticated client of a request: a
	// legacy SSE POST is taken only from the client that opened the
	// session's stream (see StreamableConfig.Principal).
	Principal func(*http.Request) string
	// Router, when set, carries a legacy SSE POST that lands on an instance
	// other than the one holding the session's stream to that one.
	Router SessionRouter
	// Still, when set, is asked before each message of a WebSocket, whose
	// one authenticated request carries them all: an error (the client's
	// token was revoked or expired since) ends the session with it as the
	// reason. A legacy SSE POST is authenticated on its own.
	Still func(*http.Request) error
}

// SessionRouter carries the messages of a legacy SSE session to the
// instance whose stream holds it: the holder claims the session
// while it lives, and a POST landing elsewhere is routed to it.
type SessionRouter interface {
	// Claim says this instance holds session id, for ttl; the holder
	// renews the claim while the stream lives.
	Claim(ctx context.Context, id string, ttl time.Duration) error
	// Release ends this instance's claim.
	Release(ctx context.Context, id string) error
	// Route hands message, as SSE.DeliverRouted takes it, to the instance
	// holding session id; false when no live instance does.
	Route(ctx context.Context, id string, message []byte) (bool, error)
}

// routedMessage is one POST of a legacy SSE session, on its way to the
// instance holding the session (SessionRouter), encoded as JSON.
type routedMessage struct {
	Session   string `json:"session"`
	Scope     string `json:"scope,omitempty"`     // StreamConfig.Scope of the POST
	Principal string `json:"principal,omitempty"` // StreamConfig.Principal of the POST
	Body      []byte `json:"body"`                // the POST's body, as it came
	RequestID string `json:"request_id,omitempty"`
}

// Defaults of StreamConfig.
const (
	DefaultKeepAlive   = 25 * time.Second
	DefaultMaxInFlight = 16
	// writeTimeout bounds one write to a client, so that a client that stops
	// reading cannot hold a session (and Close) forever.
	writeTimeout = 10 * time.Second
	// outboxSize is how many outgoing messages a session buffers.
	outboxSize = 64
)

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Policy == nil {
		panic("frontdoor: StreamConfig.Policy is required: it captures the session's opening headers (spec §4)")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestID == nil {
		c.RequestID = func(*http.Request) string { return "" }
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Hour
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return c
}

// sessionEnd is why mcpgate itself ended a session, as told to the client.
type sessionEnd struct {
	reason   string
	shutdown bool // mcpgate is going away, not just this session
}

func (e *sessionEnd) Error() string { return e.reason }

var errShuttingDown = &sessionEnd{reason: "mcpgate is shutting down", shutdown: true}

// streamSession is a client session bound to one connection (an SSE stream,
// a WebSocket). It keeps what was captured of its opening request's headers:
// every call in the session is forwarded with them, under the allowlist in
// force at the time of the call, which the dispatcher resolves per call
// (spec §4, D12).
type streamSession struct {
	id        string
	opening   *http.Request // the request that opened it, for the Opener of a routed initialize
	scope     string        // StreamConfig.Scope of the opening request
	principal string        // StreamConfig.Principal of the opening request
	header    http.Header   // Policy.CaptureSession of the opening request
	// ctx ends with the session, cancelling the calls in flight; its cause
	// says why it ended.
	ctx    context.Context
	end    context.CancelCauseFunc
	outbox chan []byte   // encoded messages waiting to be written
	slots  chan struct{} // one per call in flight
	// notes bounds, apart from slots, the client notifications and answers
	// being handled: a notifications/cancelled must never wait behind the
	// very calls it cancels.
	notes     chan struct{}
	order     arrivals       // of the client's notes and requests
	lastHeard atomic.Int64   // unix nanoseconds of the last client message
	lease     *lease         // its place in its client's ClientLimit
	watching  sync.WaitGroup // the watch of its backend, while it runs

	mu           sync.Mutex
	ended        bool
	draining     bool    // shutting down: no new messages, the calls in flight finish
	backend      Backend // StreamConfig.Open's, once initialize has opened it
	initializing bool    // an initialize is opening the backend
	calls        sync.WaitGroup
}

// heard notes that the client sent something, for the idle timeout.
func (s *streamSession) heard() {
	s.lastHeard.Store(time.Now().UnixNano())
	s.lease.touch()
}

// opened reports whether initialize has opened the session's backend.
func (s *streamSession) opened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend != nil
}

// backendErr says why the session's backend ended on its own, if it did.
func (s *streamSession) backendErr() error {
	s.mu.Lock()
	backend := s.backend
	s.mu.Unlock()
	if backend == nil {
		return nil
	}
	return backend.Err()
}

// idleLeft returns how long the session may stay idle from now.
func (s *streamSession) idleLeft(timeout time.Duration) time.Duration {
	return timeout - time.Since(time.Unix(0, s.lastHeard.Load()))
}

// push queues an encoded message; it waits while the outbox is full and
// gives up when the session ends.
func (s *streamSession) push(data []byte) {
	select {
	case s.outbox <- data:
	case <-s.ctx.Done():
	}
}

// offer queues an encoded message unless the outbox is full: a client not
// keeping up misses it, as on Streamable's GET streams.
func (s *streamSession) offer(data []byte) {
	select {
	case s.outbox <- data:
	default:
	}
}

// notify sends a notification an upstream emitted during a call (progress,
// logging) on the session's connection.
func (s *streamSession) notify(n jsonrpc.Message) {
	if data, err := jsonrpc.Encode(n); err == nil {
		s.push(data)
	}
}

// handleAsync handles one client message or batch on goroutines of its
// own, once one of the session's slots is free (waiting while ctx lasts),
// and queues the answers: a batch's as one batch, as JSON-RPC wants. Its
// notifications and answers are handed on in the order the client sent
// them, and its requests once those that arrived before them are (see
// arrivals): the caller calls it in arrival order. It returns false when
// the session ended or ctx did first.
func (s *streamSession) handleAsync(ctx context.Context, r *http.Request, cfg StreamConfig, msgs []jsonrpc.Message, batch bool, requestID string) bool {
	notes, requests := splitNotes(msgs)
	a := s.order.arrive(len(notes) > 0)
	in := dispatch.Inbound{Header: s.header, Notify: s.notify, RequestID: requestID}
	// Requests take a call slot; notifications and answers take one of
	// their own kind, so that a client's notifications/cancelled (or its
	// answer to an upstream's sampling request) is handled while every call
	// slot is held by the calls waiting on it.
	if len(notes) > 0 {
		started := s.start(ctx, s.notes, func() {
			defer s.order.noteDone(a)
			if s.order.turn(s.ctx, a) != nil {
				return // the session ended
			}
			for _, m := range notes {
				s.handle(r, cfg, m, in)
			}
		})
		if !started {
			s.order.noteDone(a)
			return false
		}
	}
	if len(requests) == 0 {
		return true
	}
	return s.start(ctx, s.slots, func() {
		if s.order.requests(s.ctx, a) != nil {
			return // the session ended
		}
		var answers []jsonrpc.Message
		for _, m := range requests {
			if resp, ok := s.handle(r, cfg, m, in); ok {
				answers = append(answers, resp)
			}
		}
		if data, ok := encodeAnswers(answers, batch); ok {
			s.push(data)
		}
	})
}

// start runs f on a goroutine of its own once one of slots is free; it
// returns false, without running f, when the session ended or ctx did
// first.
func (s *streamSession) start(ctx context.Context, slots chan struct{}, f func()) bool {
	select {
	case slots <- struct{}{}:
	case <-s.ctx.Done():
		return false
	case <-ctx.Done():
		return false
	}
	s.mu.Lock()
	if s.ended || s.draining {
		s.mu.Unlock()
		<-slots
		return false
	}
	// A session with a call in flight is not ended to make room; one
	// already picked to make room takes no more calls, and ends now (the
	// end that picked it gives the same reason).
	if err := s.lease.begin(); err != nil {
		s.mu.Unlock()
		<-slots
		s.end(&sessionEnd{reason: err.Error()})
		return false
	}
	s.calls.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.calls.Done()
		defer func() { <-slots }()
		defer s.lease.done()
		f()
	}()
	return true
}

// handle handles one client message; it returns the answer to a request.
func (s *streamSession) handle(r *http.Request, cfg StreamConfig, m jsonrpc.Message, in dispatch.Inbound) (jsonrpc.Message, bool) {
	// A federation client that never initialized is answered statelessly,
	// on the upstreams' shared sessions, as before sessions were per
	// client.
	if cfg.Open != nil && (cfg.Handler == nil || m.Method == "initialize" || s.opened()) {
		return s.relay(r, cfg, m, in)
	}
	if m.IsResponse() {
		return jsonrpc.Message{}, false // mcpgate asks federation clients nothing
	}
	return cfg.Handler.Handle(s.ctx, m, in)
}

// relay hands one client message to the session's Backend, opening it with
// the session's initialize; it returns the answer to a request.
func (s *streamSession) relay(r *http.Request, cfg StreamConfig, m jsonrpc.Message, in dispatch.Inbound) (jsonrpc.Message, bool) {
	s.mu.Lock()
	backend, initializing := s.backend, s.initializing
	// MCP basic/lifecycle: a session is initialized once. Claimed here,
	// under the lock, so that a second initialize racing the first is
	// refused rather than open a second upstream session, one of which
	// nobody would ever close.
	first := m.Method == "initialize" && backend == nil && !initializing
	s.initializing = s.initializing || first
	s.mu.Unlock()
	fail := func(code int, format string, args ...any) (jsonrpc.Message, bool) {
		if !m.IsRequest() {
			cfg.Logger.Warn("a client message could not be relayed", "method", m.Method, "err", fmt.Sprintf(format, args...), "request_id", in.RequestID)
			return jsonrpc.Message{}, false
		}
		return jsonrpc.NewError(m.ID, jsonrpc.Errorf(code, format, args...)), true
	}
	switch {
	case m.Method == "initialize" && !first:
		return fail(jsonrpc.CodeInvalidRequest, "the session is already initialized (or being initialized): initialize is sent once per session; open a new session to initialize again")
	case m.Method == "initialize":
		opened, resp, err := cfg.Open(s.ctx, r, m, in, s.notify)
		if err != nil {
			s.mu.Lock()
			s.initializing = false // the client may try again
			s.mu.Unlock()
			return fail(jsonrpc.CodeUpstreamError, "%v", err)
		}
		s.mu.Lock()
		s.initializing = false
		if s.ended {
			s.mu.Unlock()
			_ = opened.Close()
			return fail(jsonrpc.CodeInvalidRequest, "the session ended")
		}
		s.backend = opened
		// A backend that ends on its own (the relay's upstream was
		// disabled or deleted) ends the session, closing its stream.
		s.watching.Go(func() {
			select {
			case <-opened.Done():
				s.end(&sessionEnd{reason: opened.Err().Error()})
			case <-s.ctx.Done():
			}
		})
		s.mu.Unlock()
		return resp, true
	case backend == nil:
		return fail(jsonrpc.CodeInvalidRequest, "send initialize first")
	case m.IsRequest():
		return backend.Request(s.ctx, m, in), true
	case m.IsNotification():
		if err := backend.Notify(s.ctx, m, in); err != nil {
			return fail(jsonrpc.CodeUpstreamError, "%v", err)
		}
	case m.IsResponse():
		if err := backend.Respond(s.ctx, m, in); err != nil {
			return fail(jsonrpc.CodeUpstreamError, "%v", err)
		}
	}
	return jsonrpc.Message{}, false
}

// encodeAnswers encodes a message's answers: none, one, or a batch.
func encodeAnswers(answers []jsonrpc.Message, batch bool) ([]byte, bool) {
	var data []byte
	var err error
	switch {
	case len(answers) == 0:
		return nil, false
	case batch:
		data, err = jsonrpc.EncodeBatch(answers)
	default:
		data, err = jsonrpc.Encode(answers[0])
	}
	if err != nil {
		data = encodeError(jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
	}
	return data, true
}

// encodeError encodes an error answer to no request in particular (id null).
func encodeError(e *jsonrpc.Error) []byte {
	data, _ := jsonrpc.Encode(jsonrpc.NewError(nil, e))
	return data
}

// finish ends the session and waits for its calls in flight, which the
// ended context cancels.
func (s *streamSession) finish(cause error) {
	s.end(cause)
	s.mu.Lock()
	s.ended = true
	backend := s.backend
	s.mu.Unlock()
	s.calls.Wait()
	s.watching.Wait()
	if backend != nil { // the relay's upstream session ends with the client's
		_ = backend.Close()
	}
}

// streamSessions holds the open sessions of one transport and owns their
// goroutines: Close ends them all and waits for them.
type streamSessions struct {
	cfg StreamConfig

	ended *endedSessions // why mcpgate ended sessions lately

	mu      sync.Mutex
	byID    map[string]*streamSession
	closed  bool
	serving sync.WaitGroup // one per open session, done when it is released
}

func newStreamSessions(cfg StreamConfig) *streamSessions {
	cfg = cfg.withDefaults()
	return &streamSessions{cfg: cfg, byID: map[string]*streamSession{},
		ended: &endedSessions{max: cfg.MaxSessions, ttl: cfg.IdleTimeout}}
}

// open starts a session for the opening request r, capturing its headers
// once (spec §4). The session's context derives from parent. The caller
// must release it.
func (t *streamSessions) open(parent context.Context, r *http.Request) (*streamSession, error) {
	id, err := newSessionID()
	if err != nil {
		return nil, err
	}
	ctx, end := context.WithCancelCause(parent)
	s := &streamSession{id: id, opening: r.WithContext(context.WithoutCancel(r.Context())), scope: fromRequest(t.cfg.Scope, r), principal: fromRequest(t.cfg.Principal, r), header: t.cfg.Policy.CaptureSession(r.Header).Header(), ctx: ctx, end: end,
		outbox: make(chan []byte, outboxSize), slots: make(chan struct{}, t.cfg.MaxInFlight),
		notes: make(chan struct{}, t.cfg.MaxInFlight)}
	if err := t.admissible(); err != nil {
		end(err)
		return nil, err
	}
	// Outside t.mu: making room may end a session of another front door.
	if s.lease, err = t.cfg.Limit.admit(s.principal, func(reason string) { s.end(&sessionEnd{reason: reason}) }); err != nil {
		end(err)
		return nil, err
	}
	defer s.lease.done()
	// The session lives on its connection, an open stream for as long as
	// it lasts: such sessions are ended to make room last.
	s.lease.streamOpened()
	s.heard()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.admissibleLocked(); err != nil {
		end(err)
		s.lease.release()
		return nil, err
	}
	t.byID[id] = s
	t.serving.Add(1)
	return s, nil
}

// admissible says why no session can be opened now, if none can: mcpgate
// is shutting down, or holds MaxSessions.
func (t *streamSessions) admissible() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.admissibleLocked()
}

func (t *streamSessions) admissibleLocked() error {
	switch {
	case t.closed:
		return errShuttingDown
	case len(t.byID) >= t.cfg.MaxSessions:
		return fmt.Errorf("too many sessions (%d); try again later", t.cfg.MaxSessions)
	}
	return nil
}

// release ends the session (if nothing else did), waits for its calls and
// forgets it.
func (t *streamSessions) release(s *streamSession, cause error) {
	s.finish(cause)
	s.lease.release()
	if end, ok := asSessionEnd(context.Cause(s.ctx)); ok && !end.shutdown {
		t.ended.note(s.id, s.scope, s.principal, end.reason)
	}
	t.mu.Lock()
	delete(t.byID, s.id)
	t.mu.Unlock()
	t.serving.Done()
}

// endedWhy says why mcpgate ended session id lately, if it did and r is
// of its scope and client.
func (t *streamSessions) endedWhy(id string, r *http.Request) (string, bool) {
	return t.ended.why(id, fromRequest(t.cfg.Scope, r), fromRequest(t.cfg.Principal, r))
}

// find returns the open session with that id, if r is of its scope and
// client.
func (t *streamSessions) find(id string, r *http.Request) (*streamSession, bool) {
	return t.findScoped(id, fromRequest(t.cfg.Scope, r), fromRequest(t.cfg.Principal, r))
}

// findScoped returns the open session with that id, scope and client;
// another client's session is as good as none.
func (t *streamSessions) findScoped(id, scope, principal string) (*streamSession, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.byID[id]
	if !ok || s.scope != scope || s.principal != principal {
		return nil, false
	}
	return s, true
}

func (t *streamSessions) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// broadcast offers a notification to every session.
func (t *streamSessions) broadcast(m jsonrpc.Message) {
	data, err := jsonrpc.Encode(m)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.byID {
		s.offer(data)
	}
}

// listLocked returns the sessions there are, for work done on each outside
// t.mu. The caller holds t.mu.
func (t *streamSessions) listLocked() []*streamSession {
	sessions := make([]*streamSession, 0, len(t.byID))
	for _, s := range t.byID {
		sessions = append(sessions, s)
	}
	return sessions
}

// drain refuses new sessions and new client messages, waits (while ctx
// lasts) for the calls in flight to finish and their answers to be
// written, then ends every session as closeAll does: a graceful shutdown
// for transports whose calls net/http's Shutdown does not see.
func (t *streamSessions) drain(ctx context.Context) {
	t.mu.Lock()
	t.closed = true
	sessions := t.listLocked()
	t.mu.Unlock()
	for _, s := range sessions {
		s.mu.Lock()
		s.draining = true
		s.mu.Unlock()
	}
	finished := make(chan struct{})
	go func() {
		for _, s := range sessions {
			s.calls.Wait()
			// The answers are queued; wait (boundedly) for the pump to write them.
			for len(s.outbox) > 0 && ctx.Err() == nil && s.ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		close(finished)
	}()
	select {
	case <-finished:
		if len(sessions) == 0 {
			break
		}
		// A client reading the last answers off a stream that then ends may
		// lose them (the Go SDK's SSE client drops what it has buffered once
		// its stream closes): give it a moment before closing.
		linger := time.NewTimer(drainLinger)
		select {
		case <-linger.C:
		case <-ctx.Done():
			linger.Stop()
		}
	case <-ctx.Done():
	}
	t.closeAll()
}

// drainLinger is how long drain keeps the streams open after the last
// answer went out.
const drainLinger = 250 * time.Millisecond

// closeAll ends every session, refuses new ones, and waits until every
// session's goroutines are gone.
func (t *streamSessions) closeAll() {
	t.mu.Lock()
	t.closed = true
	for _, s := range t.byID {
		s.end(errShuttingDown)
	}
	t.mu.Unlock()
	t.serving.Wait()
}

// pump writes the session's outgoing messages with write, and a keep-alive
// with keepAlive when the connection has been quiet for KeepAlive, until the
// session ends; it ends it when the client has sent nothing for IdleTimeout
// or a write fails, and returns why it ended.
func (t *streamSessions) pump(s *streamSession, write func([]byte) error, keepAlive func() error) error {
	idle := time.NewTimer(t.cfg.IdleTimeout)
	defer idle.Stop()
	quiet := time.NewTicker(t.cfg.KeepAlive)
	defer quiet.Stop()
	for {
		var err error
		select {
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		case data := <-s.outbox:
			err = write(data)
			quiet.Reset(t.cfg.KeepAlive)
		case <-quiet.C:
			err = keepAlive()
		case <-idle.C:
			if left := s.idleLeft(t.cfg.IdleTimeout); left > 0 {
				idle.Reset(left)
				continue
			}
			err = &sessionEnd{reason: fmt.Sprintf("no client message for %s (SESSION_IDLE_TIMEOUT)", t.cfg.IdleTimeout)}
		}
		if err != nil {
			s.end(err)
			return context.Cause(s.ctx)
		}
	}
}

// asSessionEnd returns the sessionEnd in err, if mcpgate ended the session.
func asSessionEnd(err error) (*sessionEnd, bool) {
	var e *sessionEnd
	ok := errors.As(err, &e)
	return e, ok
}
