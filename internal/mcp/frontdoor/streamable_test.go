package frontdoor

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// startStreamable serves a Streamable made with cfg at /mcp on a loopback
// port and returns it with its URL; both stop when the test ends.
func startStreamable(t *testing.T, cfg StreamableConfig) (*Streamable, string) {
	t.Helper()
	if cfg.RequestID == nil {
		cfg.RequestID = func(*http.Request) string { return "test" }
	}
	s := NewStreamable(cfg)
	mux := http.NewServeMux()
	mux.Handle("/mcp", s)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		s.Close()
		srv.Close()
	})
	return s, srv.URL + "/mcp"
}

// postMCP sends one message to url as client "a" on session (none: "")
// and returns the status, the session id answered and the body. Unlike
// limitServer.post it does not fail the test itself, so that goroutines
// may use it.
func postMCP(ctx context.Context, url, session, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b), err
}

// initialize opens a session at url and returns its id.
func initialize(t *testing.T, url string) string {
	t.Helper()
	status, id, body, err := postMCP(t.Context(), url, "", initializeBody)
	if err != nil || status != http.StatusOK || id == "" {
		t.Fatalf("initialize: %d %q %s %v", status, id, body, err)
	}
	return id
}

// TestSessionIsCreatedByInitializeAndRequiredAfter: initialize answers a
// fresh, unguessable session id; a request without one is 400 naming the
// header, one with an unknown id 404 telling the client to initialise again.
func TestSessionIsCreatedByInitializeAndRequiredAfter(t *testing.T) {
	s, url := startStreamable(t, StreamableConfig{Handler: newTestHandler()})
	a, b := initialize(t, url), initialize(t, url)
	if a == b {
		t.Fatalf("two initializes answered the same session id %q", a)
	}
	if raw, err := hex.DecodeString(a); err != nil || len(raw) != 16 {
		t.Errorf("session id %q: want 128 random bits in hex", a)
	}
	if n := s.Sessions(); n != 2 {
		t.Errorf("%d sessions held after two initializes, want 2", n)
	}
	for _, tc := range []struct {
		name, session string
		status        int
		says          string
	}{
		{"known", a, http.StatusOK, `"result"`},
		{"no header", "", http.StatusBadRequest, "Mcp-Session-Id header is required"},
		{"unknown", strings.Repeat("0", 32), http.StatusNotFound, "send initialize again"},
	} {
		status, _, body, err := postMCP(t.Context(), url, tc.session, ping(2))
		if err != nil || status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s session: %d %s %v, want %d saying %q", tc.name, status, body, err, tc.status, tc.says)
		}
	}
}

// TestIdleSessionsExpire: a session unused for SESSION_IDLE_TIMEOUT is
// ended by the sweeper, and its next request is 404; one in use lives on.
func TestIdleSessionsExpire(t *testing.T) {
	const idle = 300 * time.Millisecond
	s, url := startStreamable(t, StreamableConfig{Handler: newTestHandler(), IdleTimeout: idle})
	idleOne, busyOne := initialize(t, url), initialize(t, url)
	testenv.WaitFor(t, 10*idle, "the idle session to be swept", func() bool {
		if status, _, body, err := postMCP(t.Context(), url, busyOne, ping(3)); err != nil || status != http.StatusOK {
			t.Fatalf("ping on the session in use: %d %s %v", status, body, err)
		}
		return s.Sessions() == 1
	})
	status, _, body, err := postMCP(t.Context(), url, idleOne, ping(4))
	if err != nil || status != http.StatusNotFound || !strings.Contains(body, "send initialize again") {
		t.Errorf("ping on the expired session: %d %s %v, want 404", status, body, err)
	}
}

// TestMaxSessionsHoldsUnderConcurrentInitializes: MaxSessions is checked
// and the place taken at once, so initializes arriving together never
// open more than MaxSessions between them, however slowly each opens.
func TestMaxSessionsHoldsUnderConcurrentInitializes(t *testing.T) {
	const maxSessions, clients = 4, 24
	var arrived, refused atomic.Int32
	everyone := make(chan struct{}) // closed once each initialize is opening or refused
	var once sync.Once
	settled := func() {
		if arrived.Load()+refused.Load() == clients {
			once.Do(func() { close(everyone) })
		}
	}
	// Each session opens only once every initialize has been admitted or
	// refused: the widest window a check-then-insert could be raced in.
	open := func(ctx context.Context, r *http.Request, init jsonrpc.Message, in dispatch.Inbound, push func(jsonrpc.Message)) (Backend, jsonrpc.Message, error) {
		arrived.Add(1)
		settled()
		select {
		case <-everyone:
		case <-ctx.Done():
			return nil, jsonrpc.Message{}, ctx.Err()
		}
		return &fakeBackend{done: make(chan struct{})}, jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: init.ID, Result: []byte(`{"protocolVersion":"2025-06-18"}`)}, nil
	}
	s, url := startStreamable(t, StreamableConfig{Open: open, MaxSessions: maxSessions})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var opened atomic.Int32
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			status, _, body, err := postMCP(ctx, url, "", initializeBody)
			switch {
			case err != nil:
				t.Errorf("initialize: %v", err)
			case status == http.StatusOK:
				opened.Add(1)
			case status == http.StatusServiceUnavailable && strings.Contains(body, "too many sessions"):
				refused.Add(1)
				settled()
			default:
				t.Errorf("initialize: %d %s, want 200 or 503 too many sessions", status, body)
			}
		})
	}
	wg.Wait()
	if n := opened.Load(); n != maxSessions {
		t.Errorf("%d of %d concurrent initializes opened a session with MaxSessions %d, want exactly %d", n, clients, maxSessions, maxSessions)
	}
	if n := s.Sessions(); n > maxSessions {
		t.Errorf("%d sessions held, more than MaxSessions %d", n, maxSessions)
	}
}

// stallWatch wraps a SharedSessions and says, on entered, when a Load or a
// Save has begun: the moment a request is waiting on the store.
type stallWatch struct {
	SharedSessions
	entered chan struct{}
}

func (w *stallWatch) note() {
	select {
	case w.entered <- struct{}{}:
	default:
	}
}

func (w *stallWatch) Load(ctx context.Context, id string) ([]byte, bool, error) {
	w.note()
	return w.SharedSessions.Load(ctx, id)
}

func (w *stallWatch) Save(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	w.note()
	return w.SharedSessions.Save(ctx, id, record, ttl)
}

// TestStalledRedisDoesNotStallLocalSessions: with Redis paused (SIGSTOP)
// for 2 s, while other requests wait on it (a new session being shared, a
// session id looked up among the other instances'), calls on the sessions
// this instance holds keep answering at once: no call to the shared store
// is made under the lock every request takes.
func TestStalledRedisDoesNotStallLocalSessions(t *testing.T) {
	server := testenv.StartRedisServer(t) // its own: pausing the shared one would disturb other tests
	opts, err := redis.ParseURL(server.URL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	watch := &stallWatch{SharedSessions: bus.NewRedisSessions(rc), entered: make(chan struct{}, 1)}
	_, url := startStreamable(t, StreamableConfig{Handler: newTestHandler(), Shared: watch, IdleTimeout: time.Hour})
	local := []string{initialize(t, url), initialize(t, url), initialize(t, url)}
	select { // forget the Saves of those
	case <-watch.entered:
	default:
	}

	server.Pause()
	defer server.Resume()
	stop := make(chan struct{})
	var stallers sync.WaitGroup
	defer stallers.Wait()
	defer close(stop)
	for i := range 3 {
		stallers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if i == 0 {
					_, _, _, _ = postMCP(context.Background(), url, "", initializeBody) // waits on Save
				} else {
					_, _, _, _ = postMCP(context.Background(), url, fmt.Sprintf("%032x", i), ping(1)) // waits on Load
				}
			}
		})
	}
	select {
	case <-watch.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the shared store within 5s")
	}
	const bound = sharedTimeout / 2 // a call that waited for a stalled store's timeout takes sharedTimeout
	pause := time.Now().Add(2 * time.Second)
	rounds := time.NewTicker(20 * time.Millisecond) // paces the calls over the pause
	defer rounds.Stop()
	calls := 0
	for ; time.Now().Before(pause); <-rounds.C {
		for _, id := range local {
			start := time.Now()
			status, _, body, err := postMCP(t.Context(), url, id, ping(calls))
			took := time.Since(start)
			if err != nil || status != http.StatusOK {
				t.Fatalf("a call on a session this instance holds, with Redis paused: %d %s %v", status, body, err)
			}
			if took > bound {
				t.Fatalf("a call on a session this instance holds took %s with Redis paused (bound %s): it waited for other requests' Redis I/O", took.Round(time.Millisecond), bound)
			}
			calls++
		}
	}
	t.Logf("%d calls on local sessions answered while Redis was paused", calls)
}
