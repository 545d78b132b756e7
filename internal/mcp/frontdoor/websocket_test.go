package frontdoor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// dialWS opens a WebSocket to the test server's /ws.
func dialWS(t *testing.T, ts *testServer, opts *websocket.DialOptions) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/ws", opts)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { conn.CloseNow() })
	return conn, resp
}

func wsSend(t *testing.T, conn *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func wsRead(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Errorf("message type %v, want text", typ)
	}
	return string(data)
}

// wsCloseStatus reads until the socket closes and returns how.
func wsCloseStatus(t *testing.T, conn *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the socket ended with %v, not a close frame", err)
		}
		return ce
	}
}

// TestWebSocketAnswers: a message, a batch, and what cannot be read are
// each answered with a text message; the socket stays usable.
func TestWebSocketAnswers(t *testing.T) {
	ts := startTestServer(t)
	conn, _ := dialWS(t, ts, &websocket.DialOptions{Subprotocols: []string{"mcp"}})
	if n := ts.ws.Sessions(); n != 1 {
		t.Errorf("Sessions() = %d, want 1", n)
	}
	for _, tt := range []struct{ send, want string }{
		{ping(1), `{"jsonrpc":"2.0","id":1,"result":{}}`},
		{`[` + ping(2) + `,{"jsonrpc":"2.0","method":"notifications/initialized"},` + ping(3) + `]`,
			`[{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":3,"result":{}}]`},
		{`{"jsonrpc":"2.0","id":4,`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,`},
		{`{"jsonrpc":"1.0","id":5,"method":"ping"}`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,`},
		{ping(6), `{"jsonrpc":"2.0","id":6,"result":{}}`},
	} {
		wsSend(t, conn, tt.send)
		if got := wsRead(t, conn); !strings.HasPrefix(got, tt.want) {
			t.Errorf("sent %s, got %s, want %s", tt.send, got, tt.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte(ping(7))); err != nil {
		t.Fatal(err)
	}
	if got := wsRead(t, conn); !strings.Contains(got, "text messages") {
		t.Errorf("binary message answered %s", got)
	}
}

// TestWebSocketSelectsOnlyMCP: the subprotocol mcp is selected when
// offered, and nothing else ever is: a bearer.<token> offered beside it is
// never echoed.
func TestWebSocketSelectsOnlyMCP(t *testing.T) {
	ts := startTestServer(t)
	for _, tt := range []struct {
		offer []string
		want  string
	}{
		{[]string{"mcp"}, "mcp"},
		{[]string{"bearer.secret-token", "mcp"}, "mcp"},
		{[]string{"bearer.secret-token"}, ""},
		{nil, ""},
	} {
		conn, resp := dialWS(t, ts, &websocket.DialOptions{Subprotocols: tt.offer})
		if got := conn.Subprotocol(); got != tt.want {
			t.Errorf("offered %v: selected %q, want %q", tt.offer, got, tt.want)
		}
		if got := resp.Header.Values("Sec-WebSocket-Protocol"); strings.Contains(strings.Join(got, ","), "secret") {
			t.Errorf("offered %v: the answer echoes the token: %v", tt.offer, got)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	}
}

// TestWebSocketSessionHeadersAreTheUpgrades: calls see the upgrade's
// headers as captured: none of the handshake, nor mcpgate's credential.
func TestWebSocketSessionHeadersAreTheUpgrades(t *testing.T) {
	ts := startTestServer(t)
	conn, _ := dialWS(t, ts, &websocket.DialOptions{
		Subprotocols: []string{"mcp", "bearer.secret-token"},
		HTTPHeader:   http.Header{"X-Tenant-Id": {"acme"}, "Authorization": {"Bearer mcpgate-token"}},
	})
	wsSend(t, conn, call(1, "headers"))
	var answer struct {
		Result http.Header `json:"result"`
	}
	if err := json.Unmarshal([]byte(wsRead(t, conn)), &answer); err != nil {
		t.Fatal(err)
	}
	if answer.Result.Get("X-Tenant-Id") != "acme" {
		t.Errorf("the call saw X-Tenant-Id %q, want acme", answer.Result.Get("X-Tenant-Id"))
	}
	for name, v := range answer.Result {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "sec-websocket-") || lower == "upgrade" || lower == "connection" || lower == "authorization" {
			t.Errorf("the session kept %s: %q", name, v)
		}
	}
}

// TestWebSocketCallsRunConcurrentlyBounded: a slow call does not hold the
// next message, and at most MaxInFlight run at once.
func TestWebSocketCallsRunConcurrentlyBounded(t *testing.T) {
	const limit = 4
	ts := startTestServer(t, func(c *WebSocketConfig) { c.MaxInFlight = limit })
	conn, _ := dialWS(t, ts, nil)
	for i := 1; i < limit; i++ {
		wsSend(t, conn, call(100+i, "block"))
	}
	wsSend(t, conn, ping(1))
	if got := wsRead(t, conn); got != `{"jsonrpc":"2.0","id":1,"result":{}}` {
		t.Fatalf("ping behind %d blocked calls: %s", limit-1, got)
	}
	for i := limit; i < 2*limit; i++ {
		wsSend(t, conn, call(100+i, "block"))
	}
	testenv.WaitFor(t, 5*time.Second, "the slots to fill", func() bool { blocked, _, _ := ts.handler.counts(); return blocked == limit })
	time.Sleep(50 * time.Millisecond) // room for a wrong extra call to start
	ts.handler.unblock()
	ids := map[string]bool{}
	for i := 1; i < 2*limit; i++ {
		var m struct{ ID json.RawMessage }
		_ = json.Unmarshal([]byte(wsRead(t, conn)), &m)
		ids[string(m.ID)] = true
	}
	if len(ids) != 2*limit-1 {
		t.Errorf("answers for %d distinct calls, want %d", len(ids), 2*limit-1)
	}
	if _, maxBlocked, _ := ts.handler.counts(); maxBlocked != limit {
		t.Errorf("%d calls ran at once, want at most (and here exactly) %d", maxBlocked, limit)
	}
}

// TestWebSocketNotificationsDuringACall: they reach the socket before the
// answer.
func TestWebSocketNotificationsDuringACall(t *testing.T) {
	ts := startTestServer(t)
	conn, _ := dialWS(t, ts, nil)
	wsSend(t, conn, call(5, "notify"))
	for i, want := range []string{`"progress":1`, `"progress":2`, `"id":5,"result"`} {
		if got := wsRead(t, conn); !strings.Contains(got, want) {
			t.Errorf("message %d: %s, want %s", i, got, want)
		}
	}
}

// TestWebSocketCrossOriginRefused: an upgrade from a page of another origin
// is refused (403) unless OriginPatterns allows it; same-origin and
// non-browser clients (no Origin) are accepted.
func TestWebSocketCrossOriginRefused(t *testing.T) {
	ts := startTestServer(t)
	allowing := startTestServer(t, func(c *WebSocketConfig) { c.OriginPatterns = []string{"app.example"} })
	for _, tt := range []struct {
		server *testServer
		origin string
		ok     bool
	}{
		{ts, "", true},
		{ts, ts.url, true},
		{ts, "https://app.example", false},
		{allowing, "https://app.example", true},
		{allowing, "https://evil.example", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(tt.server.url, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h})
		cancel()
		switch {
		case tt.ok && err != nil:
			t.Errorf("origin %q: %v, want accepted", tt.origin, err)
		case !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden):
			t.Errorf("origin %q: accepted or not with 403 (%v)", tt.origin, err)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
	testenv.WaitFor(t, 5*time.Second, "refused upgrades to leave no session", func() bool { return ts.ws.Sessions() == 0 && allowing.ws.Sessions() == 0 })
}

// TestWebSocketKeepAliveAndIdleTimeout: an idle socket is pinged; messages
// keep it alive; without them it is closed after IdleTimeout (1000, naming
// SESSION_IDLE_TIMEOUT) and forgotten.
func TestWebSocketKeepAliveAndIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	ts := startTestServer(t, func(c *WebSocketConfig) { c.KeepAlive = 30 * time.Millisecond; c.IdleTimeout = idle })
	var pings atomic.Int32
	conn, _ := dialWS(t, ts, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true }})
	start := time.Now()
	for time.Since(start) < 2*idle {
		wsSend(t, conn, ping(1))
		if got := wsRead(t, conn); !strings.Contains(got, `"result"`) {
			t.Fatalf("%s after open: %s", time.Since(start), got)
		}
		time.Sleep(idle / 4)
	}
	ce := wsCloseStatus(t, conn)
	if ce.Code != websocket.StatusNormalClosure || !strings.Contains(ce.Reason, "SESSION_IDLE_TIMEOUT") {
		t.Errorf("closed with %v %q, want 1000 naming SESSION_IDLE_TIMEOUT", ce.Code, ce.Reason)
	}
	if n := pings.Load(); n < 2 {
		t.Errorf("%d keep-alive pings, want some", n)
	}
	testenv.WaitFor(t, 5*time.Second, "the session to be forgotten", func() bool { return ts.ws.Sessions() == 0 })
}

// TestWebSocketMessageTooBig: a message over MaxBodyBytes closes the socket
// with 1009.
func TestWebSocketMessageTooBig(t *testing.T) {
	ts := startTestServer(t)
	conn, _ := dialWS(t, ts, nil)
	big := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = conn.Write(ctx, websocket.MessageText, []byte(big)) // the server may close before it is all sent
	if ce := wsCloseStatus(t, conn); ce.Code != websocket.StatusMessageTooBig {
		t.Errorf("closed with %v, want 1009", ce.Code)
	}
	testenv.WaitFor(t, 5*time.Second, "the session to be forgotten", func() bool { return ts.ws.Sessions() == 0 })
}

// TestWebSocketBroadcastAndClose: Broadcast reaches every socket; Close
// closes them all with 1001 and refuses new ones.
func TestWebSocketBroadcastAndClose(t *testing.T) {
	ts := startTestServer(t)
	a, _ := dialWS(t, ts, nil)
	b, _ := dialWS(t, ts, nil)
	ts.ws.Broadcast(mustNotification(t, "notifications/tools/list_changed"))
	for _, c := range []*websocket.Conn{a, b} {
		if got := wsRead(t, c); got != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` {
			t.Errorf("broadcast: %s", got)
		}
	}
	closed := make(chan websocket.CloseError, 2)
	for _, c := range []*websocket.Conn{a, b} {
		go func() { closed <- wsCloseStatus(t, c) }()
	}
	ts.ws.Close()
	if n := ts.ws.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Close", n)
	}
	for range 2 {
		if ce := <-closed; ce.Code != websocket.StatusGoingAway || ce.Reason != "mcpgate is shutting down" {
			t.Errorf("closed with %v %q, want 1001 and the reason", ce.Code, ce.Reason)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v, want 503", err)
	}
}

// TestWebSocketClientGoneReleasesTheSession: a dropped socket cancels the
// session's calls in flight and is forgotten.
func TestWebSocketClientGoneReleasesTheSession(t *testing.T) {
	ts := startTestServer(t)
	conn, _ := dialWS(t, ts, nil)
	wsSend(t, conn, call(1, "block"))
	testenv.WaitFor(t, 5*time.Second, "the call to start", func() bool { blocked, _, _ := ts.handler.counts(); return blocked == 1 })
	conn.CloseNow()
	testenv.WaitFor(t, 5*time.Second, "the session to be released", func() bool { return ts.ws.Sessions() == 0 })
	if blocked, _, cancelled := ts.handler.counts(); blocked != 0 || cancelled != 1 {
		t.Errorf("after the client left: %d calls blocked, %d cancelled; want 0 and 1", blocked, cancelled)
	}
}
