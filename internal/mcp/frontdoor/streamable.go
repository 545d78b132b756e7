package frontdoor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// Streamable serves the MCP Streamable HTTP transport at /mcp: POST carries
// client messages (answered as JSON, or as an SSE stream when the upstream
// sends progress or log notifications along the way), GET opens the stream
// of server notifications, DELETE ends the session.
//
// Each POST's calls are forwarded with that POST's own headers, as on /rpc
// (spec §4). Create it with NewStreamable; Close stops its session sweeper.
//
// By default every session is answered by the one Handler (federation).
// With StreamableConfig.Open each session gets a Backend of its own when it
// opens, such as a 1:1 relay's upstream session.
type Streamable struct {
	handler   Handler
	opener    Opener
	resumable bool // StreamableConfig.Resumable
	shared    SharedSessions
	sharing   *sharingLog
	eager     bool // StreamableConfig.EventStreamAnswers
	scope     func(*http.Request) string
	principal func(*http.Request) string
	logger    *slog.Logger
	requestID RequestID
	idle      time.Duration
	max       int
	// writeTimeout bounds each write to a client's event stream
	// (StreamableConfig.WriteTimeout).
	writeTimeout time.Duration
	limit        *ClientLimit
	ended        *endedSessions
	stateless    StatelessHandler // StreamableConfig.Stateless
	calls        statelessCalls   // its requests in flight
	watchers     sync.WaitGroup   // one per session with a Backend, until it ends
	closing      sync.WaitGroup   // backends of evicted sessions being closed

	// mu guards sessions and the fields of each session it says so of.
	// Nothing that waits on the network (SharedSessions, a Backend) is
	// called under it: every request of every session takes it.
	mu       sync.Mutex
	sessions map[string]*session
	opening  int // sessions admitted that open is still opening: they count against max

	stop     chan struct{}
	done     chan struct{}
	draining chan struct{} // closed by Drain
	drain    sync.Once
}

type session struct {
	id              string
	scope           string // StreamableConfig.Scope of the request that opened it
	principal       string // StreamableConfig.Principal of the request that opened it
	protocolVersion string
	initialize      json.RawMessage // its initialize params, shared when Resumable
	backend         Backend         // nil: the Streamable's Handler answers
	lease           *lease          // its place in its client's ClientLimit
	lastSeen        time.Time
	calls           int                    // POSTs in flight: the sweep leaves it alone
	streams         []chan jsonrpc.Message // open GET streams, oldest first
	backlog         []jsonrpc.Message      // pushed while no GET stream was open
	closed          chan struct{}
	savedAt         time.Time // when it was last saved to SharedSessions
	renewing        bool      // a request is renewing it in SharedSessions
	order           arrivals  // of its POSTs' notes and requests
}

// Backend answers the messages of one session (StreamableConfig.Open).
// *dispatch.RelaySession is one.
type Backend interface {
	// Request answers a client request; what the server side sends about
	// it on the way goes to in.Notify.
	Request(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) jsonrpc.Message
	// Notify takes a client notification.
	Notify(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) error
	// Respond takes the client's answer to a request the server side sent.
	Respond(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) error
	// ProtocolVersion is the version agreed in initialize.
	ProtocolVersion() string
	// Done is closed when the backend ends on its own (a relay session
	// whose upstream was disabled or deleted); Err then says why, in
	// words for the client. The front door then ends the session: the
	// client's next request gets 404 with the reason, and its streams
	// close.
	Done() <-chan struct{}
	Err() error
	// Close ends the session's resources; it may wait on the network.
	Close() error
}

// Opener starts the Backend of a new session from the client's initialize
// request r, with in describing the opening request (spec §4). push sends a
// message to the client outside any POST: on its GET stream, or kept (a
// bounded number) until one opens. It returns the Backend and the answer to
// initialize.
type Opener func(ctx context.Context, r *http.Request, initialize jsonrpc.Message, in dispatch.Inbound, push func(jsonrpc.Message)) (Backend, jsonrpc.Message, error)

// OpenError is an Opener's failure with the HTTP status to answer.
type OpenError struct {
	Status int
	Err    error
}

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// SharedSessions keeps Streamable HTTP sessions where every instance can
// find them: what a session needs to go on elsewhere is its id
// and a record (its protocol version and client), which the Streamable
// encodes; the store keeps the record as it is given.
type SharedSessions interface {
	// Save records a new session for ttl.
	Save(ctx context.Context, id string, record []byte, ttl time.Duration) error
	// Renew extends a session's life to ttl from now; false when it is no
	// longer there (ended by another instance, or expired).
	Renew(ctx context.Context, id string, ttl time.Duration) (bool, error)
	// Load finds the record of a session saved by any instance.
	Load(ctx context.Context, id string) (record []byte, ok bool, err error)
	// Delete forgets a session, and tells every instance to drop its copy
	// (see Streamable.Forget).
	Delete(ctx context.Context, id string) error
}

// sharedSession is the record of a session in SharedSessions: what another
// instance needs to go on with it.
type sharedSession struct {
	ProtocolVersion string `json:"protocol_version"`
	// Principal is who opened it (StreamableConfig.Principal): only the
	// same client may use it.
	Principal string `json:"principal,omitempty"`
	// Initialize is the client's initialize params, from which another
	// instance opens the session's Backend again (StreamableConfig.Resumable).
	Initialize json.RawMessage `json:"initialize,omitempty"`
}

// sharedTimeout bounds each call to SharedSessions on a client's request.
const sharedTimeout = 2 * time.Second

// maxBacklog bounds the messages a session keeps for a GET stream that is
// not open; beyond it the oldest are dropped.
const maxBacklog = 256

// StreamableConfig configures a Streamable.
type StreamableConfig struct {
	Handler   Handler
	Logger    *slog.Logger
	RequestID RequestID
	// IdleTimeout ends a session unused for that long (SESSION_IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// MaxSessions bounds the sessions held at once; initialize answers 503
	// beyond it.
	MaxSessions int
	// Limit, when set, bounds the sessions of each client (Principal), as
	// shared with the other front doors (MAX_SESSIONS_PER_CLIENT).
	Limit *ClientLimit
	// Open, when set, gives each session a Backend of its own; Handler is
	// then not used.
	Open Opener
	// Shared, when set, keeps the sessions answered by Handler where every
	// mcpgate instance finds them, so that a session opened on one instance
	// goes on on another. Sessions with a Backend of their own
	// (Open) stay on the instance that holds the backend, unless Resumable.
	Shared SharedSessions
	// Resumable says Open makes no network call and can open a session's
	// Backend again from its initialize alone (a federated session, whose
	// upstream sessions open lazily): with Shared, another instance that
	// gets a request of the session then opens a Backend of its own for it
	// with the same initialize, instead of answering 404.
	Resumable bool
	// EventStreamAnswers answers every POST that carries requests as an
	// event stream when the client accepts one, as most MCP servers do,
	// instead of JSON unless a notification has to go out first. The relay
	// sets it, so that its client sees the transport the upstream's
	// clients see.
	EventStreamAnswers bool
	// Scope, when set, names what a request's session belongs to (the
	// upstream of /gateways/{id}/mcp): a session is found only by requests
	// of the scope that opened it.
	Scope func(*http.Request) string
	// Principal, when set, names the authenticated client of a request: a
	// session is found only by requests of the client that opened it, so
	// that a session id is never a credential (MCP security best
	// practices, "Session Hijacking").
	Principal func(*http.Request) string
	// Stateless, when set, serves the requests of MCP 2026-07-28 clients,
	// which come without a session (see statelessRequest), side by side
	// with the sessions of earlier revisions on the same endpoint.
	Stateless StatelessHandler
	// WriteTimeout bounds each write to a client's event stream (a GET
	// stream, a POST answered as one): a client that stops reading for
	// that long has its stream closed. 0 means 10 s, as on the legacy SSE
	// and WebSocket transports.
	WriteTimeout time.Duration
}

// NewStreamable returns the /mcp handler and starts its session sweeper.
func NewStreamable(cfg StreamableConfig) *Streamable {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	if cfg.RequestID == nil {
		cfg.RequestID = func(*http.Request) string { return "" }
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = writeTimeout
	}
	s := &Streamable{stateless: cfg.Stateless, writeTimeout: cfg.WriteTimeout, sharing: &sharingLog{logger: cfg.Logger}, handler: cfg.Handler, opener: cfg.Open, resumable: cfg.Resumable, shared: cfg.Shared, eager: cfg.EventStreamAnswers, scope: cfg.Scope, principal: cfg.Principal, logger: cfg.Logger, requestID: cfg.RequestID, idle: cfg.IdleTimeout,
		max: cfg.MaxSessions, limit: cfg.Limit, ended: &endedSessions{max: cfg.MaxSessions, ttl: cfg.IdleTimeout},
		sessions: map[string]*session{}, stop: make(chan struct{}), done: make(chan struct{}),
		draining: make(chan struct{})}
	go s.sweep()
	return s
}

// Drain ends every GET stream and refuses new ones, so that a graceful
// shutdown is not held up by streams that never end; sessions and the
// calls in flight in them go on until Close.
func (s *Streamable) Drain() {
	s.drain.Do(func() { close(s.draining) })
}

// Close ends every session and stops the sweeper.
func (s *Streamable) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	var ended []*session
	for id, sess := range s.sessions {
		close(sess.closed)
		delete(s.sessions, id)
		ended = append(ended, sess)
	}
	s.mu.Unlock()
	s.release(ended)
	s.watchers.Wait()
	s.closing.Wait()
}

func (s *Streamable) sweep() {
	defer close(s.done)
	t := time.NewTicker(min(s.idle/2, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			var ended []*session
			s.mu.Lock()
			for id, sess := range s.sessions {
				if now.Sub(sess.lastSeen) > s.idle && len(sess.streams) == 0 && sess.calls == 0 {
					close(sess.closed)
					delete(s.sessions, id)
					ended = append(ended, sess)
				}
			}
			s.mu.Unlock()
			s.release(ended)
			s.ended.expire(now)
		}
	}
}

// release closes the backends of sessions that have ended, outside s.mu:
// closing one may wait on the network. It gives back their places in
// their clients' limits too.
func (s *Streamable) release(ended []*session) {
	var wg sync.WaitGroup
	for _, sess := range ended {
		sess.lease.release()
		if sess.backend != nil {
			wg.Go(func() { s.closeBackend(sess) })
		}
	}
	wg.Wait()
}

// closeBackend ends a session's backend; it may wait on the network.
func (s *Streamable) closeBackend(sess *session) {
	if err := sess.backend.Close(); err != nil {
		s.logger.Debug("session backend closed with an error", "err", err)
	}
}

// Sessions returns the number of open sessions.
func (s *Streamable) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Broadcast sends a notification (e.g. notifications/tools/list_changed) to
// every session with a GET stream open, on one of its streams; a session
// whose streams are not keeping up misses it.
func (s *Streamable) Broadcast(m jsonrpc.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		deliverLocked(sess, m)
	}
}

// deliverLocked sends m on exactly one of the GET streams of sess: MCP
// 2025-06-18 (basic/transports, "Multiple Connections") says a server MUST
// send each message on only one of the connected streams. The newest with
// room takes it: it is the one its client most likely reads, an older one
// may be left over from before a reconnect. It returns false when none
// has room (or none is open). The caller holds s.mu.
func deliverLocked(sess *session, m jsonrpc.Message) bool {
	for i := len(sess.streams) - 1; i >= 0; i-- {
		select {
		case sess.streams[i] <- m:
			return true
		default:
		}
	}
	return false
}

// push sends m to the client of sess outside any POST: on one of its GET
// streams, or into its backlog while none is open.
func (s *Streamable) push(sess *session, m jsonrpc.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sess.streams) == 0 {
		if len(sess.backlog) == maxBacklog {
			s.logger.Warn("a session's backlog is full; dropping its oldest message", "session_scope", sess.scope)
			sess.backlog = sess.backlog[1:]
		}
		sess.backlog = append(sess.backlog, m)
		return
	}
	if !deliverLocked(sess, m) {
		s.logger.Warn("a session's GET streams are not keeping up; dropping a message", "session_scope", sess.scope)
	}
}

const headerSessionID = "Mcp-Session-Id"
const headerProtocolVersion = "Mcp-Protocol-Version"

func (s *Streamable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		s.post(w, r)
	case http.MethodGet:
		s.get(w, r)
	case http.MethodDelete:
		s.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "use POST, GET or DELETE", http.StatusMethodNotAllowed)
	}
}

func (s *Streamable) post(w http.ResponseWriter, r *http.Request) {
	msgs, batch, ok := readMessages(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	if s.stateless != nil && statelessRequest(r, msgs) {
		s.serveStateless(w, r, msgs, batch)
		return
	}
	var sess *session
	var err error
	if i := slices.IndexFunc(msgs, func(m jsonrpc.Message) bool { return m.Method == "initialize" }); i >= 0 {
		if batch {
			writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "initialize must not be part of a batch"))
			return
		}
		var opened *jsonrpc.Message
		if sess, opened, err = s.open(r, msgs[i]); err != nil {
			writeJSONRPCError(w, openStatus(err), jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err))
			return
		}
		defer s.callDone(sess)
		w.Header().Set(headerSessionID, sess.id)
		if opened != nil { // the backend answered initialize
			writeAnswers(w, []jsonrpc.Message{*opened}, false)
			return
		}
	} else {
		var status int
		// The call begins as the session is looked up, under one lock: a
		// session is never ended to make room between the two.
		if sess, status, err = s.session(r, s.beginCallLocked); err != nil {
			writeJSONRPCError(w, status, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
			return
		}
		defer s.callDone(sess)
		if v := r.Header.Get(headerProtocolVersion); v != "" && !protocol.Supported(v) {
			writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
				"unsupported MCP-Protocol-Version %q (supported: %s)", v, protocol.SupportedList()))
			return
		}
	}
	notes, requests := splitNotes(msgs)
	in := dispatch.Inbound{Header: r.Header, RequestID: s.requestID(r)}
	// Stamped as it arrives: a client's POSTs are concurrent, and a request
	// must not reach the upstream before the notifications and answers
	// POSTed before it (see arrivals).
	a := sess.order.arrive(len(notes) > 0)
	err = s.takeInTurn(r.Context(), sess, a, notes, in)
	if len(requests) == 0 {
		if err != nil {
			writeJSONRPCError(w, http.StatusBadGateway, jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if err != nil {
		s.logger.Warn("a client message could not be relayed", "err", err, "request_id", in.RequestID)
	}
	s.answer(w, r, sess, a, requests, batch, in)
}

// takeInTurn hands on a POST's notes, once those that arrived before them
// are, and marks them done; it stops at the first that fails.
func (s *Streamable) takeInTurn(ctx context.Context, sess *session, a arrival, notes []jsonrpc.Message, in dispatch.Inbound) error {
	defer sess.order.noteDone(a)
	if len(notes) == 0 {
		return nil
	}
	if err := sess.order.turn(ctx, a); err != nil {
		return fmt.Errorf("gave up waiting for the session's earlier notifications: %w", err)
	}
	for _, m := range notes {
		if err := s.take(ctx, sess, m, in); err != nil {
			return err
		}
	}
	return nil
}

// take handles a client message that gets no answer: a notification, or
// the client's answer to a request the server side sent.
func (s *Streamable) take(ctx context.Context, sess *session, m jsonrpc.Message, in dispatch.Inbound) error {
	switch {
	case sess.backend == nil:
		if m.IsNotification() {
			s.handler.Handle(ctx, m, in)
		}
		return nil // mcpgate sends federation clients no requests
	case m.IsNotification():
		return sess.backend.Notify(ctx, m, in)
	case m.IsResponse():
		return sess.backend.Respond(ctx, m, in)
	}
	return nil
}

// handle answers a client request of sess.
func (s *Streamable) handle(ctx context.Context, sess *session, m jsonrpc.Message, in dispatch.Inbound) (jsonrpc.Message, bool) {
	if sess.backend != nil {
		return sess.backend.Request(ctx, m, in), true
	}
	return s.handler.Handle(ctx, m, in)
}

// answer handles the requests of one POST, once every notification and
// answer that arrived before them is handed on, and answers them as JSON, unless
// an upstream sends a notification (progress, a log line) before the
// answers are ready and the client accepts SSE: then the answer becomes an
// event stream carrying the notifications as they come and the answers last.
func (s *Streamable) answer(w http.ResponseWriter, r *http.Request, sess *session, a arrival, requests []jsonrpc.Message, batch bool, in dispatch.Inbound) {
	out := &lazyAnswer{w: w, timeout: s.writeTimeout}
	if acceptsEventStream(r) {
		in.Notify = out.notify
		if s.eager {
			out.begin()
		}
	}
	var answers []jsonrpc.Message
	if err := sess.order.requests(r.Context(), a); err != nil {
		// The client went away while its earlier notifications were on
		// their way: nothing was sent.
		for _, m := range requests {
			answers = append(answers, jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError,
				"cancelled while the session's earlier notifications and answers were on their way: %v", err)))
		}
		out.finish(answers, batch)
		return
	}
	for _, m := range requests {
		if resp, ok := s.handle(r.Context(), sess, m, in); ok {
			answers = append(answers, resp)
		}
	}
	out.finish(answers, batch)
}

// lazyAnswer is a POST's answer: JSON, or an SSE stream once a notification
// has to go out before the answers.
type lazyAnswer struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	timeout  time.Duration // of each write of the stream (StreamableConfig.WriteTimeout)
	stream   *sseWriter    // nil until a notification starts the stream
	finished bool
	status   int // of a JSON answer; 0 is 200
}

func (a *lazyAnswer) notify(n jsonrpc.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished {
		return
	}
	a.startLocked()
	a.stream.send(n)
}

// begin makes the answer an event stream now.
func (a *lazyAnswer) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.startLocked()
	_ = a.stream.flush()
}

func (a *lazyAnswer) startLocked() {
	if a.stream == nil {
		a.w.Header().Set("Content-Type", "text/event-stream")
		a.w.Header().Set("Cache-Control", "no-cache")
		a.w.WriteHeader(http.StatusOK)
		a.stream = newSSEWriter(a.w, a.timeout)
	}
}

func (a *lazyAnswer) finish(answers []jsonrpc.Message, batch bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.finished = true
	switch {
	case a.stream != nil:
		for _, m := range answers {
			a.stream.send(m)
		}
		a.stream.close()
	case a.status != 0 && !batch && len(answers) == 1:
		writeAnswer(a.w, a.status, answers[0])
	default:
		writeAnswers(a.w, answers, batch)
	}
}

func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// sseWriter writes messages as SSE events; safe for concurrent use, and
// silent once closed. Each write must reach the client within timeout, so
// that a client that stops reading cannot hold its stream, its session (the
// sweeper spares sessions with a stream open) and Close forever: the write
// then fails with os.ErrDeadlineExceeded, and the stream's owner ends it.
type sseWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // 0: no deadline
	closed  bool
}

// newSSEWriter writes events to w, each write within timeout (0: none).
func newSSEWriter(w http.ResponseWriter, timeout time.Duration) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

func (sw *sseWriter) send(m jsonrpc.Message) error {
	data, err := jsonrpc.Encode(m)
	if err != nil {
		return err
	}
	return sw.event("message", data)
}

// event writes one event. Each line of data gets a data field of its own:
// raw results are forwarded as the upstream wrote them, pretty-printed JSON
// included, and a line break inside one data field would end it. The client
// joins the lines with newlines again (JSON white space either way).
func (sw *sseWriter) event(name string, data []byte) error {
	b := make([]byte, 0, len(data)+len(name)+16)
	b = append(append(append(b, "event: "...), name...), '\n')
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(append(append(b, "data: "...), data[:i]...), '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(append(append(b, "data: "...), data...), "\n\n"...)
	return sw.write(b)
}

func (sw *sseWriter) comment(text string) error {
	return sw.write([]byte(": " + text + "\n\n"))
}

func (sw *sseWriter) write(b []byte) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		return nil
	}
	if sw.timeout > 0 {
		// Per write, so that a stream idle for hours is not cut; net/http
		// lifts it when the response ends. A writer that cannot take a
		// deadline (a test's recorder) writes without one.
		_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	}
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	return sw.flush()
}

// flush sends what was written to the client now; a writer that cannot
// flush is not an error (its answer goes out when the handler returns).
func (sw *sseWriter) flush() error {
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (sw *sseWriter) close() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.closed = true
}

// open starts a session for the initialize request. With an Opener, the
// new backend's answer to initialize is returned too; without one the
// Handler answers initialize like any request.
func (s *Streamable) open(r *http.Request, initialize jsonrpc.Message) (*session, *jsonrpc.Message, error) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(initialize.Params, &p)
	id, err := newSessionID()
	if err != nil {
		return nil, nil, err
	}
	sess := &session{id: id, scope: fromRequest(s.scope, r), principal: fromRequest(s.principal, r), protocolVersion: protocol.Negotiate(p.ProtocolVersion), lastSeen: time.Now(),
		initialize: initialize.Params, closed: make(chan struct{})}
	// The session's place under MaxSessions is taken now, as it is
	// checked, and held while it opens: initializes arriving together
	// never open more than MaxSessions between them.
	s.mu.Lock()
	err = s.admitLocked()
	if err == nil {
		s.opening++
	}
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	opened := false
	defer func() {
		if !opened {
			s.mu.Lock()
			s.opening--
			s.mu.Unlock()
		}
	}()
	// The lease starts busy, and stays so for the initialize: it is the
	// session's first call, which post's callDone ends.
	if sess.lease, err = s.limit.admit(sess.principal, func(reason string) { s.evict(id, reason) }); err != nil {
		return nil, nil, err
	}
	var answer *jsonrpc.Message
	if s.opener != nil {
		in := dispatch.Inbound{Header: r.Header, RequestID: s.requestID(r)}
		backend, resp, err := s.opener(r.Context(), r, initialize, in, func(m jsonrpc.Message) { s.push(sess, m) })
		if err != nil {
			sess.lease.release()
			return nil, nil, err
		}
		sess.backend, sess.protocolVersion, answer = backend, backend.ProtocolVersion(), &resp
	}
	s.mu.Lock()
	select {
	case <-s.stop: // closed meanwhile: the backend ends here, outside the lock
		s.mu.Unlock()
		s.release([]*session{sess})
		return nil, nil, errors.New("the server is shutting down")
	default:
	}
	opened = true
	s.opening--
	sess.calls = 1
	s.sessions[id] = sess
	if sess.backend != nil {
		s.watchers.Add(1)
		go s.watch(sess)
	}
	s.mu.Unlock()
	// Shared before initialize is answered, so that no other instance
	// hears of the session before it can find it; outside s.mu, as every
	// call to the store is.
	if s.isShared(sess) {
		s.save(r.Context(), sess)
	}
	return sess, answer, nil
}

// admitLocked says why no session can be added now, if none can: the
// server is shutting down, or holds MaxSessions (those opening included).
// The caller holds s.mu.
func (s *Streamable) admitLocked() error {
	select {
	case <-s.stop:
		return errors.New("the server is shutting down")
	default:
	}
	if len(s.sessions)+s.opening >= s.max {
		return fmt.Errorf("too many sessions (%d); try again later", s.max)
	}
	return nil
}

// watch ends sess when its backend ends on its own (Backend.Done), until
// the session ends otherwise.
func (s *Streamable) watch(sess *session) {
	defer s.watchers.Done()
	select {
	case <-sess.backend.Done():
		s.evict(sess.id, sess.backend.Err().Error())
	case <-sess.closed:
	}
}

// evict ends session id for reason, which its client's next request on it
// is told with its 404; its GET streams close, and its backend is closed
// on a goroutine of its own. A shared session ends on every instance.
func (s *Streamable) evict(id, reason string) {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	if ok {
		close(sess.closed)
		delete(s.sessions, id)
		s.ended.note(id, sess.scope, sess.principal, reason)
		if sess.backend != nil {
			// Not on the caller's time: making room runs inside another
			// session's initialize, and closing a relay's upstream session
			// waits on the network. Close waits for it. Added under s.mu,
			// so before Close's Wait.
			s.closing.Go(func() { s.closeBackend(sess) })
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	sess.lease.release()
	if s.isShared(sess) {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		if err := s.shared.Delete(ctx, id); err != nil {
			s.sharing.warn("could not end a session among the other instances; it expires there after SESSION_IDLE_TIMEOUT", err)
		}
	}
}

// save saves sess to the shared sessions, for as long as an idle session
// lives; a failure leaves the session usable on this instance. It waits on
// the store (bounded by sharedTimeout), so the caller must not hold s.mu.
func (s *Streamable) save(ctx context.Context, sess *session) {
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	shared := sharedSession{ProtocolVersion: sess.protocolVersion, Principal: sess.principal}
	if sess.backend != nil {
		shared.Initialize = sess.initialize
	}
	record, err := json.Marshal(shared)
	if err != nil {
		s.logger.Error("could not encode a session to share it; it goes on on this instance only", "err", err)
		return
	}
	if err := s.shared.Save(ctx, sess.id, record, s.idle); err != nil {
		s.sharing.warn("could not share a session with the other instances; it goes on on this one only", err)
		return
	}
	s.mu.Lock()
	sess.savedAt = now
	s.mu.Unlock()
}

func newSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// session finds the request's session: 400 without the header, 404 for one
// that does not exist (any more), which tells the client to initialise again.
// use, when not nil, takes the session for the request under the same lock
// of s.mu that found it, so that nothing ends it in between; its error
// refuses the request with 404, as a session that has ended.
//
// Looking a session up in SharedSessions (one another instance opened) and
// renewing it there wait on the network: both happen outside s.mu, so that
// a slow store delays only the request that needs it, never the calls of
// the sessions this instance holds.
func (s *Streamable) session(r *http.Request, use func(*session) error) (*session, int, error) {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		return nil, http.StatusBadRequest, fmt.Errorf("the %s header is required after initialize", headerSessionID)
	}
	scope, principal := fromRequest(s.scope, r), fromRequest(s.principal, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok && s.shared != nil && (s.opener == nil || s.resumable) && scope == "" {
		s.mu.Unlock()
		shared, found := s.loadShared(r.Context(), id, principal)
		var adopted *session
		if found {
			adopted = s.resume(r, id, shared)
		}
		s.mu.Lock()
		// Another request may have adopted it meanwhile: that copy it is.
		if sess, ok = s.sessions[id]; !ok && adopted != nil {
			if err := s.admitLocked(); err != nil {
				s.closeLater(adopted)
				return nil, http.StatusServiceUnavailable, err
			}
			sess, ok = s.adoptLocked(adopted), true
		} else if adopted != nil {
			s.closeLater(adopted)
		}
	}
	if !ok || sess.scope != scope || sess.principal != principal {
		return nil, http.StatusNotFound, s.notFoundLocked(id, scope, principal) // another client's: as good as none
	}
	if sess.backend != nil {
		if err := sess.backend.Err(); err != nil { // ended on its own; watch is closing it
			return nil, http.StatusNotFound, fmt.Errorf("session %q ended: %v", id, err)
		}
	}
	now := time.Now()
	// A session in use on this instance is renewed in the shared store now
	// and then, so that it does not expire there while it lives here; one
	// that is gone from there was ended elsewhere. One request renews it at
	// a time; the others go on meanwhile.
	if s.isShared(sess) && now.Sub(sess.savedAt) > s.idle/4 && !sess.renewing {
		sess.renewing = true
		s.mu.Unlock()
		alive, renewed := s.renew(r.Context(), id)
		s.mu.Lock()
		sess.renewing = false
		if renewed {
			sess.savedAt = now
		}
		if s.sessions[id] != sess { // ended meanwhile
			return nil, http.StatusNotFound, s.notFoundLocked(id, scope, principal)
		}
		if !alive {
			s.forgetLocked(sess)
			return nil, http.StatusNotFound, s.notFoundLocked(id, scope, principal)
		}
	}
	sess.lastSeen = now
	sess.lease.touch()
	if use != nil {
		if err := use(sess); err != nil {
			return nil, http.StatusNotFound, fmt.Errorf("session %q ended: %w", id, err)
		}
	}
	return sess, 0, nil
}

// notFoundLocked is the error for a request on session id that is not (or
// no longer) here, with why it ended when mcpgate ended it lately. It is
// read under s.mu, as evict notes it: a session ended while this request
// was on its way is not found with its reason. The caller holds s.mu.
func (s *Streamable) notFoundLocked(id, scope, principal string) error {
	if why, ok := s.ended.why(id, scope, principal); ok {
		return fmt.Errorf("session %q ended: %s", id, why)
	}
	return fmt.Errorf("session %q not found: it ended or expired; send initialize again", id)
}

// beginCallLocked starts a POST's call on sess (a session use): while it
// is in flight the session is neither ended to make room nor swept as
// idle. callDone ends it. The caller holds s.mu.
func (s *Streamable) beginCallLocked(sess *session) error {
	if err := sess.lease.begin(); err != nil {
		return err
	}
	sess.calls++
	return nil
}

// callDone ends a call that beginCallLocked, or open for the initialize,
// started; the session's idle time runs from now.
func (s *Streamable) callDone(sess *session) {
	s.mu.Lock()
	sess.calls--
	sess.lastSeen = time.Now()
	s.mu.Unlock()
	sess.lease.touch()
	sess.lease.done()
}

// renew renews session id in the shared store: alive is false when it is
// no longer there (ended elsewhere); renewed, whether the store answered
// that it is. A failure to reach the store keeps the session. It waits on
// the store (bounded by sharedTimeout), so the caller must not hold s.mu.
func (s *Streamable) renew(ctx context.Context, id string) (alive, renewed bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	ok, err := s.shared.Renew(ctx, id, s.idle)
	if err != nil {
		s.sharing.warn("could not renew a session among the other instances; it goes on on this one", err)
		return true, false
	}
	return ok, ok
}

// Forget drops this instance's copy of a session another instance ended
// (DELETE): its GET streams close, and its next request is 404 here too.
func (s *Streamable) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[id]; ok && s.isShared(sess) {
		s.forgetLocked(sess)
		if sess.backend != nil {
			s.closeLater(sess)
		}
	}
}

// isShared reports whether sess is kept in SharedSessions.
func (s *Streamable) isShared(sess *session) bool {
	return s.shared != nil && (sess.backend == nil || s.resumable)
}

// closeLater closes the backend of a session that is not (or no longer)
// held, on a goroutine Close waits for: closing one may wait on the
// network.
func (s *Streamable) closeLater(sess *session) {
	if sess.backend != nil {
		s.closing.Go(func() { s.closeBackend(sess) })
	}
}

// forgetLocked drops a session that has no backend. The caller holds s.mu.
func (s *Streamable) forgetLocked(sess *session) {
	close(sess.closed)
	delete(s.sessions, sess.id)
	sess.lease.release()
}

// loadShared looks session id up among the sessions other instances
// opened: found only if it is there and principal opened it. It
// waits on the store (bounded by sharedTimeout), so the caller must not
// hold s.mu.
func (s *Streamable) loadShared(ctx context.Context, id, principal string) (sharedSession, bool) {
	var shared sharedSession
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	defer cancel()
	record, ok, err := s.shared.Load(ctx, id)
	if err != nil {
		s.sharing.warn("could not look a session up among the other instances'", err)
		return shared, false
	}
	if !ok {
		return shared, false
	}
	if err := json.Unmarshal(record, &shared); err != nil {
		s.logger.Warn("a shared session's record is not one; treating the session as unknown", "err", err)
		return shared, false
	}
	return shared, shared.Principal == principal
}

// resume builds this instance's copy of a session another instance
// opened, as loadShared found it: with a Backend opened again from its
// initialize when the Streamable is Resumable. It returns nil when that
// fails. The caller must not hold s.mu: Open runs here.
func (s *Streamable) resume(r *http.Request, id string, shared sharedSession) *session {
	now := time.Now()
	sess := &session{id: id, principal: shared.Principal, protocolVersion: shared.ProtocolVersion, lastSeen: now, savedAt: now,
		initialize: shared.Initialize, closed: make(chan struct{})}
	if s.opener == nil {
		return sess
	}
	initialize := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("0"), Method: "initialize", Params: shared.Initialize}
	in := dispatch.Inbound{Header: r.Header, RequestID: s.requestID(r)}
	backend, _, err := s.opener(r.Context(), r, initialize, in, func(m jsonrpc.Message) { s.push(sess, m) })
	if err != nil {
		s.logger.Warn("could not resume a session another instance opened", "err", err, "request_id", in.RequestID)
		return nil
	}
	sess.backend = backend
	return sess
}

// adoptLocked takes over a session another instance opened, as resume
// built it. The caller holds s.mu and has checked admitLocked.
func (s *Streamable) adoptLocked(sess *session) *session {
	s.sessions[sess.id] = sess
	if sess.backend != nil {
		s.watchers.Add(1)
		go s.watch(sess)
	}
	return sess
}

func (s *Streamable) get(w http.ResponseWriter, r *http.Request) {
	if !acceptsEventStream(r) {
		http.Error(w, "GET /mcp opens an event stream: send Accept: text/event-stream", http.StatusNotAcceptable)
		return
	}
	select {
	case <-s.draining:
		http.Error(w, "the server is shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	ch := make(chan jsonrpc.Message, 64)
	var backlog []jsonrpc.Message
	// The stream opens as the session is found, under one lock.
	sess, status, err := s.session(r, func(sess *session) error {
		sess.streams = append(sess.streams, ch)
		sess.lease.streamOpened() // a session with an open stream is ended to make room last
		backlog, sess.backlog = sess.backlog, nil
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	defer func() {
		s.mu.Lock()
		sess.streams = slices.DeleteFunc(sess.streams, func(c chan jsonrpc.Message) bool { return c == ch })
		sess.lastSeen = time.Now()
		s.mu.Unlock()
		sess.lease.touch()
		sess.lease.streamClosed()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sw := newSSEWriter(w, s.writeTimeout)
	err = sw.flush()
	for _, m := range backlog {
		if err != nil {
			break
		}
		err = sw.send(m)
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for err == nil {
		select {
		case <-r.Context().Done():
			return
		case <-sess.closed:
			return
		case <-s.draining:
			return
		case m := <-ch:
			err = sw.send(m)
		case <-keepalive.C:
			err = sw.comment("keepalive")
		}
	}
	// The stream ends here, so that its session is no longer held open by
	// it; what it had queued is lost, as with a client that went away.
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.logger.Warn("closed a GET stream whose client stopped reading: a write did not complete within the write timeout",
			"write_timeout", s.writeTimeout, "session_scope", sess.scope, "request_id", s.requestID(r))
		return
	}
	s.logger.Debug("a GET stream ended: a write to its client failed", "err", err, "request_id", s.requestID(r))
}

func (s *Streamable) delete(w http.ResponseWriter, r *http.Request) {
	// One opened on another instance too; it ends as it is found, under
	// one lock, so that of two DELETEs only one finds it.
	sess, status, err := s.session(r, func(sess *session) error {
		close(sess.closed)
		delete(s.sessions, sess.id)
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	s.release([]*session{sess})
	if s.isShared(sess) {
		ctx, cancel := context.WithTimeout(r.Context(), sharedTimeout)
		defer cancel()
		if err := s.shared.Delete(ctx, sess.id); err != nil {
			s.sharing.warn("could not end a session among the other instances; it expires there after SESSION_IDLE_TIMEOUT", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// fromRequest is what an optional Scope or Principal function says of r,
// or "" without one.
func fromRequest(f func(*http.Request) string, r *http.Request) string {
	if f == nil {
		return ""
	}
	return f(r)
}
