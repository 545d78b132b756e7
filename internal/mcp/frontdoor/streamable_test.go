package frontdoor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
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

// openGET opens the GET stream of session at url and returns its events,
// closed at the end of the stream; it is closed when the test ends.
func openGET(t *testing.T, url, session string) <-chan mcptest.Event {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /mcp: %d %s", resp.StatusCode, b)
	}
	events := make(chan mcptest.Event, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(events)
		br := bufio.NewReader(resp.Body)
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				return
			}
			if e.Name == "message" {
				events <- e
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close(); <-done })
	return events
}

// streamsOf is how many GET streams session id has open.
func streamsOf(s *Streamable, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[id]; ok {
		return len(sess.streams)
	}
	return 0
}

// seqNotification is a notification carrying its number, padded to at
// least pad bytes.
func seqNotification(t *testing.T, seq, pad int) jsonrpc.Message {
	t.Helper()
	n, err := jsonrpc.NewNotification("notifications/message", map[string]any{"level": "info", "data": map[string]any{"seq": seq, "pad": strings.Repeat("x", pad)}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEachMessageGoesOutOnOneGETStream: with two GET streams open on one
// session, each message the server sends outside a POST (a broadcast
// list_changed, a relay upstream's notification) is written on exactly one
// of them, the newer: MCP 2025-06-18 basic/transports, "the server MUST
// send each of its JSON-RPC messages on only one of the connected streams".
func TestEachMessageGoesOutOnOneGETStream(t *testing.T) {
	for _, via := range []string{"Broadcast", "push"} {
		t.Run(via, func(t *testing.T) {
			var push func(jsonrpc.Message)
			cfg := StreamableConfig{Handler: newTestHandler()}
			if via == "push" {
				cfg = StreamableConfig{Open: func(ctx context.Context, r *http.Request, init jsonrpc.Message, in dispatch.Inbound, p func(jsonrpc.Message)) (Backend, jsonrpc.Message, error) {
					push = p
					return &fakeBackend{done: make(chan struct{})}, jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: init.ID, Result: []byte(`{"protocolVersion":"2025-06-18"}`)}, nil
				}}
			}
			s, url := startStreamable(t, cfg)
			id := initialize(t, url)
			if via == "Broadcast" {
				push = s.Broadcast
			}
			older, newer := openGET(t, url, id), openGET(t, url, id)
			const n = 20
			for i := range n {
				push(seqNotification(t, i, 0))
			}
			got := map[string][]string{} // seq → the streams it came on
			total := 0
			collect := func(want int, within time.Duration) { // until want in all, or within
				timeout := time.After(within)
				for {
					select {
					case e := <-older:
						got[seqOf(t, e.Data)] = append(got[seqOf(t, e.Data)], "older")
					case e := <-newer:
						got[seqOf(t, e.Data)] = append(got[seqOf(t, e.Data)], "newer")
					case <-timeout:
						return
					}
					if total++; total == want {
						return
					}
				}
			}
			collect(n, 5*time.Second)
			if total < n {
				t.Fatalf("%d of %d messages arrived within 5s", total, n)
			}
			// A copy on the other stream would come right along: give it a
			// moment to show before concluding there is none.
			collect(2*n, 300*time.Millisecond)
			for i := range n {
				if on := got[fmt.Sprint(i)]; len(on) != 1 || on[0] != "newer" {
					t.Errorf("message %d went out on %v, want exactly one stream, the newer", i, on)
				}
			}
		})
	}
}

func seqOf(t *testing.T, data string) string {
	t.Helper()
	var m struct {
		Params struct {
			Data struct {
				Seq int `json:"seq"`
			} `json:"data"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("a GET stream message %q: %v", data, err)
	}
	return fmt.Sprint(m.Params.Data.Seq)
}

// syncBuffer is a log destination that is safe to read while written.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestGETStreamOfAClientThatStopsReadingIsClosed: a client that opens a GET
// stream and never reads it does not pin its session: once the server's
// writes fill the connection's buffers, a write misses its deadline, the
// stream is closed with a log line saying why, and the session lives on
// without it (it can be swept again when idle).
func TestGETStreamOfAClientThatStopsReadingIsClosed(t *testing.T) {
	var logs syncBuffer
	const timeout = 300 * time.Millisecond
	s, url := startStreamable(t, StreamableConfig{Handler: newTestHandler(), WriteTimeout: timeout,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	id := initialize(t, url)
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/mcp")
	// A raw client with a small receive buffer, which never reads.
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.DialContext(t.Context(), "tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n\r\n", host, id); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the GET stream to open", func() bool { return streamsOf(s, id) == 1 })
	big := seqNotification(t, 0, 128<<10)
	took := testenv.WaitFor(t, 20*time.Second, "the stream of a client that stopped reading to be closed", func() bool {
		s.Broadcast(big)
		return streamsOf(s, id) == 0
	})
	t.Logf("the stream was closed %s after the pushing began", took.Round(time.Millisecond))
	if line := logs.String(); !strings.Contains(line, "closed a GET stream whose client stopped reading") || !strings.Contains(line, "write_timeout=300ms") {
		t.Errorf("no log line says why the stream closed:\n%s", line)
	}
	if status, _, body, err := postMCP(t.Context(), url, id, ping(5)); err != nil || status != http.StatusOK {
		t.Errorf("the session after its stream was closed: %d %s %v, want it alive", status, body, err)
	}
}
