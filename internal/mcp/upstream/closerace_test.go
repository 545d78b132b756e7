package upstream_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// renewalServer is a Streamable HTTP upstream that forgets session A as
// soon as the listening stream asks for it, and holds the initialize of the
// session that replaces it (B) until the Client's Close has begun (the
// DELETE of A arrives) or the Client gives up on it.
type renewalServer struct {
	*httptest.Server
	initB    chan struct{} // closed when B's initialize is held
	releaseB chan struct{} // closed when A's DELETE arrives
	bGaveUp  chan struct{} // closed when the Client gave up on B's initialize

	mu          sync.Mutex
	initialized map[string]bool
	deleted     map[string]bool
	deletedB    chan struct{}
}

func newRenewalServer(t *testing.T) *renewalServer {
	s := &renewalServer{initB: make(chan struct{}), releaseB: make(chan struct{}), bGaveUp: make(chan struct{}),
		initialized: map[string]bool{}, deleted: map[string]bool{}, deletedB: make(chan struct{})}
	var inits int
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		switch r.Method {
		case http.MethodGet:
			if sid == "A" {
				http.Error(w, "no such session", http.StatusNotFound)
				return
			}
			http.Error(w, "no listening stream", http.StatusMethodNotAllowed)
			return
		case http.MethodDelete:
			s.mu.Lock()
			s.deleted[sid] = true
			s.mu.Unlock()
			switch sid {
			case "A":
				close(s.releaseB)
				// While Close waits for this answer, a session B that the
				// Client got must be ended too: wait for that, or for the
				// Client to give up on B's initialize; a leak costs 3 s.
				select {
				case <-s.deletedB:
				case <-s.bGaveUp:
				case <-time.After(3 * time.Second):
				}
			case "B":
				close(s.deletedB)
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		body, _ := io.ReadAll(r.Body)
		msgs, _, err := jsonrpc.Decode(body)
		if err != nil || len(msgs) != 1 {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		m := msgs[0]
		switch m.Method {
		case "initialize":
			s.mu.Lock()
			inits++
			id := "A"
			if inits > 1 {
				id = "B"
			}
			s.mu.Unlock()
			if id == "B" {
				close(s.initB)
				select {
				case <-s.releaseB:
				case <-r.Context().Done():
					close(s.bGaveUp)
					return // no session B
				}
			}
			res, _ := jsonrpc.NewResult(m.ID, map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
				"serverInfo": map[string]any{"name": "renewal", "version": "1"}})
			out, _ := json.Marshal(res)
			w.Header().Set("Mcp-Session-Id", id)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(out)
		case "notifications/initialized":
			s.mu.Lock()
			s.initialized[sid] = true
			s.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestCloseDuringARenewalEndsTheNewSession: a session the Client is
// re-establishing (here from its listening stream, which found the first
// session gone) as Close runs is never left open at the upstream: every
// session the upstream saw initialized, and still keeps, has been sent
// DELETE once Close returns.
func TestCloseDuringARenewalEndsTheNewSession(t *testing.T) {
	srv := newRenewalServer(t)
	c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL,
		OnNotification: func(jsonrpc.Message) {}}) // opens the listening stream
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	select {
	case <-srv.initB: // the listening stream found A gone and is renewing
	case <-testContext(t).Done():
		t.Fatal("the Client never re-initialized")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Close()
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !srv.initialized["A"] {
		t.Fatal("session A was never initialized")
	}
	for sid := range srv.initialized {
		// A was forgotten by the upstream (404): nothing to end.
		if sid != "A" && !srv.deleted[sid] {
			t.Errorf("session %s was initialized and never ended: Close leaked it", sid)
		}
	}
}

// forgetfulServer is a Streamable HTTP upstream that forgets a session
// every third call made on it (answering 404), and records which sessions
// were initialized, forgotten and ended.
type forgetfulServer struct {
	*httptest.Server

	mu                            sync.Mutex
	next                          int
	calls                         map[string]int
	initialized, forgotten, ended map[string]bool
}

func newForgetfulServer(t *testing.T) *forgetfulServer {
	s := &forgetfulServer{calls: map[string]int{}, initialized: map[string]bool{}, forgotten: map[string]bool{}, ended: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		s.mu.Lock()
		defer s.mu.Unlock()
		if sid != "" && s.forgotten[sid] {
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		switch r.Method {
		case http.MethodDelete:
			s.ended[sid] = true
			return
		case http.MethodGet:
			http.Error(w, "no listening stream", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		msgs, _, err := jsonrpc.Decode(body)
		if err != nil || len(msgs) != 1 {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		m := msgs[0]
		var res jsonrpc.Message
		switch m.Method {
		case "initialize":
			s.next++
			sid = "s" + strconv.Itoa(s.next)
			w.Header().Set("Mcp-Session-Id", sid)
			res, _ = jsonrpc.NewResult(m.ID, map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
				"serverInfo": map[string]any{"name": "forgetful", "version": "1"}})
		case "notifications/initialized":
			s.initialized[sid] = true
			w.WriteHeader(http.StatusAccepted)
			return
		case "tools/call":
			if s.calls[sid]++; s.calls[sid]%3 == 0 {
				s.forgotten[sid] = true
				http.Error(w, "no such session", http.StatusNotFound)
				return
			}
			res, _ = jsonrpc.NewResult(m.ID, map[string]any{"content": []any{}})
		default:
			w.WriteHeader(http.StatusAccepted)
			return
		}
		out, _ := json.Marshal(res)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestCloseWhileCallsRenewSessionsLeaksNone: Close, racing calls that keep
// re-establishing the session the upstream forgets, leaves no session the
// upstream still keeps un-ended, and returns with every call over. Run it
// with -race.
func TestCloseWhileCallsRenewSessionsLeaksNone(t *testing.T) {
	srv := newForgetfulServer(t)
	for round := range 20 {
		c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL})
		if err != nil {
			t.Fatalf("round %d: Connect: %v", round, err)
		}
		var calls sync.WaitGroup
		answered := make(chan struct{}, 64)
		for range 8 {
			calls.Go(func() {
				for i := 0; ; i++ {
					req, _ := jsonrpc.NewRequest(json.RawMessage(strconv.Itoa(i)), "tools/call", map[string]any{"name": "x"})
					if _, err := c.Call(testContext(t), req, nil, nil); errors.Is(err, upstream.ErrClosed) {
						return
					}
					select {
					case answered <- struct{}{}:
					default:
					}
				}
			})
		}
		for range 2 + round%5 { // a few answers in, at a different point each round
			<-answered
		}
		if err := c.Close(); err != nil {
			t.Logf("round %d: Close: %v", round, err)
		}
		calls.Wait()
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for sid := range srv.initialized {
		if !srv.forgotten[sid] && !srv.ended[sid] {
			t.Errorf("session %s was initialized, is still kept by the upstream and was never ended", sid)
		}
	}
	t.Logf("%d sessions initialized over 20 clients", len(srv.initialized))
}
