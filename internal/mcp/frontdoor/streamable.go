package frontdoor

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Streamable serves the MCP Streamable HTTP transport at /mcp: POST carries
// client messages (answered as JSON, or as an SSE stream when the upstream
// sends progress or log notifications along the way), GET opens the stream
// of server notifications, DELETE ends the session.
//
// Each POST's calls are forwarded with that POST's own headers, as on /rpc
// (spec §4). Create it with NewStreamable; Close stops its session sweeper.
type Streamable struct {
	handler   Handler
	logger    *slog.Logger
	requestID RequestID
	idle      time.Duration
	max       int

	mu       sync.Mutex
	sessions map[string]*session

	stop chan struct{}
	done chan struct{}
}

type session struct {
	id              string
	protocolVersion string
	lastSeen        time.Time
	streams         map[chan jsonrpc.Message]struct{} // open GET streams
	closed          chan struct{}
}

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
	s := &Streamable{handler: cfg.Handler, logger: cfg.Logger, requestID: cfg.RequestID, idle: cfg.IdleTimeout,
		max: cfg.MaxSessions, sessions: map[string]*session{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.sweep()
	return s
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
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		close(sess.closed)
		delete(s.sessions, id)
	}
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
			s.mu.Lock()
			for id, sess := range s.sessions {
				if now.Sub(sess.lastSeen) > s.idle && len(sess.streams) == 0 {
					close(sess.closed)
					delete(s.sessions, id)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Sessions returns the number of open sessions.
func (s *Streamable) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Broadcast sends a notification (e.g. notifications/tools/list_changed) on
// every open GET stream; streams that are not keeping up miss it.
func (s *Streamable) Broadcast(m jsonrpc.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		for ch := range sess.streams {
			select {
			case ch <- m:
			default:
			}
		}
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
	var sess *session
	var err error
	if i := slices.IndexFunc(msgs, func(m jsonrpc.Message) bool { return m.Method == "initialize" }); i >= 0 {
		if batch {
			writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "initialize must not be part of a batch"))
			return
		}
		if sess, err = s.open(msgs[i]); err != nil {
			writeJSONRPCError(w, http.StatusServiceUnavailable, jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
			return
		}
		w.Header().Set(headerSessionID, sess.id)
	} else {
		var status int
		if sess, status, err = s.session(r); err != nil {
			writeJSONRPCError(w, status, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
			return
		}
		if v := r.Header.Get(headerProtocolVersion); v != "" && !slices.Contains(dispatch.SupportedProtocolVersions(), v) {
			writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
				"unsupported MCP-Protocol-Version %q (supported: %s)", v, strings.Join(dispatch.SupportedProtocolVersions(), ", ")))
			return
		}
	}
	requests := 0
	for _, m := range msgs {
		if m.IsRequest() {
			requests++
		}
	}
	in := dispatch.Inbound{Header: r.Header, RequestID: s.requestID(r)}
	if requests == 0 {
		for _, m := range msgs {
			if m.IsNotification() {
				s.handler.Handle(r.Context(), m, in)
			}
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.answer(w, r, msgs, batch, in)
}

// answer handles the requests of one POST and answers them as JSON, unless
// an upstream sends a notification (progress, a log line) before the
// answers are ready and the client accepts SSE: then the answer becomes an
// event stream carrying the notifications as they come and the answers last.
func (s *Streamable) answer(w http.ResponseWriter, r *http.Request, msgs []jsonrpc.Message, batch bool, in dispatch.Inbound) {
	out := &lazyAnswer{w: w}
	if acceptsEventStream(r) {
		in.Notify = out.notify
	}
	var answers []jsonrpc.Message
	for _, m := range msgs {
		if resp, ok := s.handler.Handle(r.Context(), m, in); ok {
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
	stream   *sseWriter // nil until a notification starts the stream
	finished bool
}

func (a *lazyAnswer) notify(n jsonrpc.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.finished {
		return
	}
	if a.stream == nil {
		a.w.Header().Set("Content-Type", "text/event-stream")
		a.w.Header().Set("Cache-Control", "no-cache")
		a.w.WriteHeader(http.StatusOK)
		a.stream = &sseWriter{w: a.w, flusher: flusherOf(a.w)}
	}
	a.stream.send(n)
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
// silent once closed.
type sseWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	flusher http.Flusher
	closed  bool
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
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	sw.flush()
	return nil
}

func (sw *sseWriter) flush() {
	if sw.flusher != nil {
		sw.flusher.Flush()
	}
}

func (sw *sseWriter) close() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.closed = true
}

func flusherOf(w http.ResponseWriter) http.Flusher {
	if f, ok := w.(http.Flusher); ok {
		return f
	}
	rc := http.NewResponseController(w)
	return flushFunc(func() { _ = rc.Flush() })
}

type flushFunc func()

func (f flushFunc) Flush() { f() }

func (s *Streamable) open(initialize jsonrpc.Message) (*session, error) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(initialize.Params, &p)
	id, err := newSessionID()
	if err != nil {
		return nil, err
	}
	sess := &session{id: id, protocolVersion: dispatch.NegotiateVersion(p.ProtocolVersion), lastSeen: time.Now(),
		streams: map[chan jsonrpc.Message]struct{}{}, closed: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) >= s.max {
		return nil, fmt.Errorf("too many sessions (%d); try again later", s.max)
	}
	s.sessions[id] = sess
	return sess, nil
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
func (s *Streamable) session(r *http.Request) (*session, int, error) {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		return nil, http.StatusBadRequest, fmt.Errorf("the %s header is required after initialize", headerSessionID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return nil, http.StatusNotFound, fmt.Errorf("session %q not found: it ended or expired; send initialize again", id)
	}
	sess.lastSeen = time.Now()
	return sess, 0, nil
}

func (s *Streamable) get(w http.ResponseWriter, r *http.Request) {
	if !acceptsEventStream(r) {
		http.Error(w, "GET /mcp opens an event stream: send Accept: text/event-stream", http.StatusNotAcceptable)
		return
	}
	sess, status, err := s.session(r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	ch := make(chan jsonrpc.Message, 16)
	s.mu.Lock()
	sess.streams[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(sess.streams, ch)
		sess.lastSeen = time.Now()
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, flusher: flusherOf(w)}
	sw.flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sess.closed:
			return
		case m := <-ch:
			sw.send(m)
		case <-keepalive.C:
			sw.comment("keepalive")
		}
	}
}

func (s *Streamable) delete(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(headerSessionID)
	s.mu.Lock()
	sess, ok := s.sessions[id]
	if ok {
		close(sess.closed)
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, fmt.Sprintf("session %q not found", id), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
