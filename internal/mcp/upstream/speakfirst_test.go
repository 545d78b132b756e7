package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// speakFirstServer is a Streamable HTTP server (raw net/http) that speaks
// first on its listening GET stream: when notifications/initialized
// arrives, it sends roots/list on the session's GET stream if one is open
// at that moment and drops it otherwise, as a server without an event
// store does (the TypeScript SDK's keeps it for a replay that mcpgate never
// asks for). What happened to each session's roots/list goes to outcome.
type speakFirstServer struct {
	URL string
	// getStatus, when not 0, answers every GET with it and no stream.
	getStatus int
	// holdGET, when not nil, keeps every GET waiting for it before its
	// response headers are sent.
	holdGET chan struct{}

	outcome chan speakFirstOutcome

	answers chan string // the session of every response the server gets

	mu      sync.Mutex
	next    int
	streams map[string]*sseWriter // the open GET streams, by session id
	gets    map[string]int        // GETs received, by session id
}

// speakFirstOutcome is what became of one session's roots/list.
type speakFirstOutcome struct {
	session string
	sent    bool // false: no GET stream was open, so it was dropped
}

// sseWriter writes events to one open GET stream; guarded by
// speakFirstServer.mu.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSpeakFirstServer(t *testing.T, configure func(*speakFirstServer)) *speakFirstServer {
	t.Helper()
	s := &speakFirstServer{
		outcome: make(chan speakFirstOutcome, 1000),
		answers: make(chan string, 1000),
		streams: make(map[string]*sseWriter),
		gets:    make(map[string]int),
	}
	if configure != nil {
		configure(s)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if s.holdGET != nil {
		t.Cleanup(func() { close(s.holdGET) }) // before srv.Close, which waits for handlers
	}
	s.URL = srv.URL
	return s
}

func (s *speakFirstServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get("Mcp-Session-Id")
	switch r.Method {
	case http.MethodGet:
		s.serveGET(w, r, sid)
	case http.MethodPost:
		s.servePOST(w, r, sid)
	case http.MethodDelete:
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// serveGET registers the listening stream before its headers go out, as
// the TypeScript SDK does: a client that has the headers knows the stream
// is registered.
func (s *speakFirstServer) serveGET(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	s.gets[sid]++
	s.mu.Unlock()
	if s.getStatus != 0 {
		w.WriteHeader(s.getStatus)
		return
	}
	if s.holdGET != nil {
		select {
		case <-s.holdGET:
		case <-r.Context().Done():
			return
		}
	}
	sw := &sseWriter{w: w, f: w.(http.Flusher)}
	s.mu.Lock()
	if _, open := s.streams[sid]; open {
		s.mu.Unlock()
		http.Error(w, "Conflict: Only one SSE stream is allowed per session", http.StatusConflict) // as the TypeScript SDK
		return
	}
	s.streams[sid] = sw
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	sw.f.Flush()
	s.mu.Unlock()
	<-r.Context().Done()
	s.mu.Lock()
	delete(s.streams, sid)
	s.mu.Unlock()
}

func (s *speakFirstServer) servePOST(w http.ResponseWriter, r *http.Request, sid string) {
	b, _ := io.ReadAll(r.Body)
	m, err := jsonrpc.DecodeMessage(b)
	switch {
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
	case m.Method == "initialize":
		s.mu.Lock()
		s.next++
		sid = fmt.Sprintf("session-%d", s.next)
		s.mu.Unlock()
		w.Header().Set("Mcp-Session-Id", sid)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"speak-first","version":"0"}}}`, m.ID)
	case m.Method == "notifications/initialized":
		s.mu.Lock()
		sw, open := s.streams[sid]
		if open {
			fmt.Fprintf(sw.w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"roots-%s\",\"method\":\"roots/list\"}\n\n", sid)
			sw.f.Flush()
		}
		s.mu.Unlock()
		s.outcome <- speakFirstOutcome{session: sid, sent: open}
		w.WriteHeader(http.StatusAccepted)
	case m.IsResponse():
		s.answers <- sid
		w.WriteHeader(http.StatusAccepted)
	case m.IsRequest(): // server/discover and anything else: a session-era server knows none
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`, m.ID)
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// getsOf returns how many GETs the session received.
func (s *speakFirstServer) getsOf(sid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[sid]
}

// takeOutcome waits for the outcome of the next session's roots/list.
func (s *speakFirstServer) takeOutcome(t *testing.T) speakFirstOutcome {
	t.Helper()
	select {
	case o := <-s.outcome:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no notifications/initialized")
		return speakFirstOutcome{}
	}
}

// rootsCapability declares roots, so that a server asks for them.
var rootsCapability = json.RawMessage(`{"roots":{"listChanged":true}}`)

// TestFirstMessageOnTheListeningStreamIsNotLost: a server that sends
// roots/list on its GET stream the moment notifications/initialized
// arrives, and drops it when no GET stream is open then, reaches the
// relayed client's handler on every one of 50 sessions: the listening
// stream is open before notifications/initialized is sent.
func TestFirstMessageOnTheListeningStreamIsNotLost(t *testing.T) {
	srv := newSpeakFirstServer(t, nil)
	const sessions = 50
	got := make(chan jsonrpc.Message, sessions)
	reached, dropped := 0, 0
	for range sessions {
		c := connectWith(t, upstream.Options{
			URL: srv.URL, Relay: true, Capabilities: rootsCapability,
			OnNotification: func(m jsonrpc.Message) { got <- m },
		})
		o := srv.takeOutcome(t)
		if !o.sent {
			dropped++
			c.Close()
			continue
		}
		select {
		case m := <-got:
			if m.Method != "roots/list" || string(m.ID) != fmt.Sprintf("%q", "roots-"+o.session) {
				t.Fatalf("the handler got %s (id %s), want roots/list of %s", m.Method, m.ID, o.session)
			}
			reached++
		case <-time.After(10 * time.Second):
			t.Fatalf("roots/list sent on %s's open GET stream never reached the handler", o.session)
		}
		if n := srv.getsOf(o.session); n != 1 {
			t.Errorf("%s: %d GETs, want the one listening stream", o.session, n)
		}
		c.Close()
	}
	if reached != sessions {
		t.Fatalf("roots/list reached the handler on %d of %d sessions; %d were dropped for want of an open GET stream", reached, sessions, dropped)
	}
}

// TestFirstRequestOnTheListeningStreamIsAnswered: without Relay, the
// Client answers the server's first roots/list itself (no roots).
func TestFirstRequestOnTheListeningStreamIsAnswered(t *testing.T) {
	srv := newSpeakFirstServer(t, nil)
	connectWith(t, upstream.Options{URL: srv.URL, Capabilities: rootsCapability, OnNotification: func(jsonrpc.Message) {}})
	o := srv.takeOutcome(t)
	if !o.sent {
		t.Fatal("roots/list was dropped: no GET stream was open when notifications/initialized arrived")
	}
	select {
	case sid := <-srv.answers:
		if sid != o.session {
			t.Fatalf("an answer on %s, want %s", sid, o.session)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("roots/list was never answered")
	}
}

// TestRefusedListeningStreamCostsNoWait: a server that answers the GET
// with 405 has no listening stream; Connect goes on at once, and does not
// ask again.
func TestRefusedListeningStreamCostsNoWait(t *testing.T) {
	srv := newSpeakFirstServer(t, func(s *speakFirstServer) { s.getStatus = http.StatusMethodNotAllowed })
	start := time.Now()
	c := connectWith(t, upstream.Options{URL: srv.URL, OnNotification: func(jsonrpc.Message) {}})
	took := time.Since(start)
	o := srv.takeOutcome(t)
	if o.sent {
		t.Fatal("the server had a GET stream it refused")
	}
	if took > time.Second {
		t.Errorf("Connect took %v against a server that refuses the GET at once", took)
	}
	if _, err := c.Call(testContext(t), jsonrpc.Message{ID: json.RawMessage("1"), Method: "tools/list"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := srv.getsOf(o.session); n != 1 {
		t.Errorf("%d GETs after a 405, want 1", n)
	}
}

// TestSlowListeningStreamDelaysConnectBoundedly: a server that holds the
// GET's response headers delays notifications/initialized by a bounded
// wait, no more; the stream, once the server lets it open, listens.
func TestSlowListeningStreamDelaysConnectBoundedly(t *testing.T) {
	hold := make(chan struct{})
	srv := newSpeakFirstServer(t, func(s *speakFirstServer) { s.holdGET = hold })
	start := time.Now()
	connectWith(t, upstream.Options{URL: srv.URL, OnNotification: func(jsonrpc.Message) {}})
	took := time.Since(start)
	o := srv.takeOutcome(t)
	if o.sent {
		t.Fatal("a GET stream was open, though the server held it")
	}
	if took < time.Second || took > 5*time.Second {
		t.Errorf("Connect took %v; want the bounded wait for the listening stream (2s)", took)
	}
	if n := srv.getsOf(o.session); n != 1 {
		t.Errorf("%d GETs, want 1 (the one still waiting)", n)
	}
}

// TestListeningGETPrecedesInitializedOnTheGoSDK: the go-sdk server takes
// the GET that comes between initialize and notifications/initialized, and
// what it says on it afterwards (list_changed of a tool added once Connect
// has returned) reaches OnNotification, without any retry.
func TestListeningGETPrecedesInitializedOnTheGoSDK(t *testing.T) {
	u := startSDKUpstream(t, echoServer(protocol.Version20251125), false, nil)
	got := make(chan jsonrpc.Message, 10)
	connectWith(t, upstream.Options{URL: u.URL, OnNotification: func(m jsonrpc.Message) { got <- m }})
	var order []string
	for _, s := range u.requests() {
		switch {
		case s.httpMethod == http.MethodGet:
			order = append(order, "GET")
		case s.method == "initialize" || s.method == "notifications/initialized":
			order = append(order, s.method)
		}
	}
	if want := []string{"initialize", "GET", "notifications/initialized"}; !slices.Equal(order, want) {
		t.Fatalf("the upstream saw %v, want %v", order, want)
	}
	mcp.AddTool(u.server, &mcp.Tool{Name: "late"}, echoTool)
	select {
	case m := <-got:
		if m.Method != "notifications/tools/list_changed" {
			t.Fatalf("got %s, want notifications/tools/list_changed", m.Method)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed on the listening stream")
	}
}

// TestConnectEndsWhileTheListeningGETIsHeld: Connect's ctx ends the wait
// for the GET's answer; Connect fails with it at once and stops the listen
// loop (Close waits for it).
func TestConnectEndsWhileTheListeningGETIsHeld(t *testing.T) {
	hold := make(chan struct{})
	srv := newSpeakFirstServer(t, func(s *speakFirstServer) { s.holdGET = hold })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err := upstream.Connect(ctx, upstream.Options{URL: srv.URL, OnNotification: func(jsonrpc.Message) {}})
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded, though its ctx ended before notifications/initialized")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the ctx's", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Connect took %v after its ctx ended at 200ms", took)
	}
}
