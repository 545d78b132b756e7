package frontdoor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// fakeBackend is a session Backend (as a relay session is) that notes
// whether it was closed while a call it had accepted was in flight, and
// whose Close waits for closeGate when one is set.
type fakeBackend struct {
	inflight       atomic.Int32
	closedInFlight *atomic.Int32
	done           chan struct{}
	closeGate      chan struct{} // nil: Close returns at once
	closeStarted   chan struct{} // closed as Close starts, when set
	closed         atomic.Bool   // Close has returned
}

func (b *fakeBackend) Request(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) jsonrpc.Message {
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	time.Sleep(2 * time.Millisecond) // a call takes a while: the window an eviction must not hit
	return jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: msg.ID, Result: []byte(`{}`)}
}
func (b *fakeBackend) Notify(context.Context, jsonrpc.Message, dispatch.Inbound) error  { return nil }
func (b *fakeBackend) Respond(context.Context, jsonrpc.Message, dispatch.Inbound) error { return nil }
func (b *fakeBackend) ProtocolVersion() string                                          { return "2025-06-18" }
func (b *fakeBackend) Done() <-chan struct{}                                            { return b.done }
func (b *fakeBackend) Err() error                                                       { return nil }
func (b *fakeBackend) Close() error {
	if b.inflight.Load() > 0 && b.closedInFlight != nil {
		b.closedInFlight.Add(1)
	}
	if b.closeStarted != nil {
		close(b.closeStarted)
	}
	if b.closeGate != nil {
		<-b.closeGate
	}
	b.closed.Store(true)
	return nil
}

// fakeOpener opens a session on a backend newBackend makes.
func fakeOpener(newBackend func() *fakeBackend) Opener {
	return func(ctx context.Context, r *http.Request, init jsonrpc.Message, in dispatch.Inbound, push func(jsonrpc.Message)) (Backend, jsonrpc.Message, error) {
		return newBackend(), jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: init.ID, Result: []byte(`{"protocolVersion":"2025-06-18"}`)}, nil
	}
}

// serve sends one message to s as client "a", on session (none: ""), and
// returns the answer.
func serve(s *Streamable, session, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Client", "a")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func xClient(r *http.Request) string { return r.Header.Get("X-Client") }

// TestClientLimitNeverEndsASessionWithACallStarting: with
// MAX_SESSIONS_PER_CLIENT=1, a call on session A racing an initialize by
// the same client ends either with A refused (404 saying why: it was ended
// to make room first) or the initialize refused (429: A is busy), never
// with A's backend closed under a call it had accepted.
func TestClientLimitNeverEndsASessionWithACallStarting(t *testing.T) {
	var closedInFlight atomic.Int32
	s := NewStreamable(StreamableConfig{RequestID: func(*http.Request) string { return "" },
		Principal: xClient, Limit: NewClientLimit(1), IdleTimeout: time.Hour,
		Open: fakeOpener(func() *fakeBackend {
			return &fakeBackend{closedInFlight: &closedInFlight, done: make(chan struct{})}
		})})
	defer s.Close()
	const tools = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	id := serve(s, "", initializeBody).Header().Get(headerSessionID)
	for i := 0; i < 1000 && closedInFlight.Load() == 0 && !t.Failed(); i++ {
		var wg sync.WaitGroup
		var callAnswer, initAnswer *httptest.ResponseRecorder
		wg.Go(func() { callAnswer = serve(s, id, tools) })
		wg.Go(func() { initAnswer = serve(s, "", initializeBody) })
		wg.Wait()
		switch c := callAnswer; {
		case c.Code == http.StatusOK:
		case c.Code == http.StatusNotFound && strings.Contains(c.Body.String(), "MAX_SESSIONS_PER_CLIENT"):
		default:
			t.Errorf("call on a session racing its client's initialize: %d %s, want 200, or 404 saying it was ended to make room", c.Code, c.Body)
		}
		switch n := initAnswer; {
		case n.Code == http.StatusOK:
			id = n.Header().Get(headerSessionID)
		case n.Code == http.StatusTooManyRequests:
		default:
			t.Errorf("initialize racing a call on its client's only session: %d %s, want 200 or 429", n.Code, n.Body)
		}
	}
	if n := closedInFlight.Load(); n > 0 {
		t.Errorf("a session was ended to make room (backend closed) while a call it had accepted was in flight (%d times)", n)
	}
}

// TestClientLimitEndsSessionsWithoutAStreamFirst: an open GET stream
// means the session is in use, so to make room a client's least recently
// used session without one ends, not the older one that is listening.
func TestClientLimitEndsSessionsWithoutAStreamFirst(t *testing.T) {
	ls := startLimitServer(t, 2, 0)
	listening := ls.open(t, "a")
	req, _ := http.NewRequest("GET", ls.url+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Client", "a")
	req.Header.Set(headerSessionID, listening)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %d", resp.StatusCode)
	}
	quiet := ls.open(t, "a") // more recently used, but no stream
	ls.open(t, "a")
	if ok, body := ls.alive(t, "a", listening); !ok {
		t.Errorf("the session with an open GET stream was ended to make room: %s", body)
	}
	if ok, body := ls.alive(t, "a", quiet); ok || !strings.Contains(body, "MAX_SESSIONS_PER_CLIENT") {
		t.Errorf("the session without a stream: alive %v, %s; want it ended to make room, saying why", ok, body)
	}
}

// TestClientLimitDoesNotApplyToAnonymousClients: unauthenticated clients
// are all the principal "", many people at once; MAX_SESSIONS_PER_CLIENT
// does not bound them (MaxSessions does).
func TestClientLimitDoesNotApplyToAnonymousClients(t *testing.T) {
	ls := startLimitServer(t, 2, 5)
	var sessions []string
	for range 5 {
		sessions = append(sessions, ls.open(t, ""))
	}
	for _, s := range sessions {
		if ok, body := ls.alive(t, "", s); !ok {
			t.Errorf("anonymous session %s after 5 opened with a per-client limit of 2: %s; want it alive", s, body)
		}
	}
	if status, _, body := ls.post(t, "", "", initializeBody); status != http.StatusServiceUnavailable || !strings.Contains(body, "too many sessions") {
		t.Errorf("anonymous initialize beyond MaxSessions: %d %s, want 503", status, body)
	}
}

// TestIdleSweepSparesASessionWithACallInFlight: a session whose call runs
// longer than SESSION_IDLE_TIMEOUT is in use, not idle: the sweep leaves
// it, and its idle time runs from the call's end.
func TestIdleSweepSparesASessionWithACallInFlight(t *testing.T) {
	h := newTestHandler()
	s := NewStreamable(StreamableConfig{Handler: h, RequestID: func(*http.Request) string { return "" }, IdleTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(s)
	ls := &limitServer{url: srv.URL, handler: h, streamable: s}
	t.Cleanup(func() { h.unblock(); s.Close(); srv.Close() })
	busy := ls.open(t, "")
	answered := make(chan int, 1)
	go func() {
		status, _, _ := ls.post(t, "", busy, call(5, "block"))
		answered <- status
	}()
	testenv.WaitFor(t, 5*time.Second, "the call to be in flight", func() bool {
		blocked, _, _ := h.counts()
		return blocked == 1
	})
	// Opened after the call began, so used more recently: once the sweep
	// has ended it, the busy session is past the idle timeout too.
	idle := ls.open(t, "")
	held := func(id string) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.sessions[id]
		return ok
	}
	testenv.WaitFor(t, 5*time.Second, "the idle session to be swept", func() bool { return !held(idle) })
	if !held(busy) {
		t.Error("the sweep ended a session with a call in flight")
	}
	h.unblock()
	if status := <-answered; status != http.StatusOK {
		t.Errorf("the long call answered %d", status)
	}
	if ok, body := ls.alive(t, "", busy); !ok {
		t.Errorf("the session right after its long call: %s; want it alive", body)
	}
}

// TestClientLimitDoesNotWaitForTheEvictedBackendToClose: ending a session
// to make room closes its backend (a relay's upstream session: network
// I/O) off the new session's initialize; Close waits for it.
func TestClientLimitDoesNotWaitForTheEvictedBackendToClose(t *testing.T) {
	gate := make(chan struct{})
	var backends []*fakeBackend
	var mu sync.Mutex
	s := NewStreamable(StreamableConfig{RequestID: func(*http.Request) string { return "" },
		Principal: xClient, Limit: NewClientLimit(1),
		Open: fakeOpener(func() *fakeBackend {
			b := &fakeBackend{done: make(chan struct{}), closeGate: gate, closeStarted: make(chan struct{})}
			mu.Lock()
			backends = append(backends, b)
			mu.Unlock()
			return b
		})})
	var gateOnce sync.Once
	open := func() { gateOnce.Do(func() { close(gate) }) }
	defer open()
	if rec := serve(s, "", initializeBody); rec.Code != http.StatusOK {
		t.Fatalf("first initialize: %d %s", rec.Code, rec.Body)
	}
	second := make(chan *httptest.ResponseRecorder, 1)
	go func() { second <- serve(s, "", initializeBody) }()
	mu.Lock()
	first := backends[0]
	mu.Unlock()
	select {
	case <-first.closeStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("the first session was not ended to make room for the second")
	}
	select {
	case rec := <-second:
		if rec.Code != http.StatusOK {
			t.Errorf("second initialize: %d %s", rec.Code, rec.Body)
		}
	case <-time.After(5 * time.Second):
		t.Error("the second initialize waited for the evicted session's backend to close")
	}
	open()
	s.Close()
	if !first.closed.Load() {
		t.Error("Close returned before the evicted session's backend had closed")
	}
}
