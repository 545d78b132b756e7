package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/passthrough"
)

// These tests drive the legacy SSE transport (/sse) and the WebSocket
// transport (/ws) with the official Go SDK's client, in front of real MCP
// servers, and check what the upstreams receive: each session's calls carry
// the headers of the request that opened it (spec §4), under the allowlist
// in force at the time of each call (D12).

// sessionTransport opens client sessions over one of the two transports.
type sessionTransport struct {
	name string
	// connect opens a session whose opening request carries the client
	// token and opening; later requests (SSE POSTs) carry the token and
	// X-Tenant-Id: from-a-post, which must not be forwarded.
	connect func(t *testing.T, gw *running, opening http.Header, opts *mcp.ClientOptions) *mcp.ClientSession
}

func sessionTransports() []sessionTransport {
	return []sessionTransport{{"sse", connectSSE}, {"ws", connectWS}}
}

func connectSSE(t *testing.T, gw *running, opening http.Header, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: openingHeaders{token: gw.token, opening: opening}}
	return connectSDK(t, &mcp.SSEClientTransport{Endpoint: gw.url + "/sse", HTTPClient: hc}, opts)
}

func connectWS(t *testing.T, gw *running, opening http.Header, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	h := opening.Clone()
	if h == nil {
		h = http.Header{}
	}
	if gw.token != "" && h.Get("Authorization") == "" {
		h.Set("Authorization", "Bearer "+gw.token)
	}
	return connectSDK(t, &wsTransport{url: wsURL(gw), opts: &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{"mcp"}}}, opts)
}

func connectSDK(t *testing.T, tr mcp.Transport, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	// The SDK's SSE client keeps its stream for as long as this context.
	session, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, opts).Connect(t.Context(), tr, legacySession)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

func wsURL(gw *running) string { return "ws" + strings.TrimPrefix(gw.url, "http") + "/ws" }

// openingHeaders puts the opening headers on the GET that opens a legacy
// SSE session only, and the client token on every request.
type openingHeaders struct {
	token   string
	opening http.Header
}

func (o openingHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Method == http.MethodGet {
		for k, v := range o.opening {
			r.Header[k] = v
		}
	} else {
		r.Header.Set("X-Tenant-Id", "from-a-post")
	}
	if o.token != "" && r.Header.Get("Authorization") == "" {
		r.Header.Set("Authorization", "Bearer "+o.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// wsTransport is an MCP client transport over mcpgate's /ws, for the SDK's
// client: one JSON-RPC message per text message.
type wsTransport struct {
	url  string
	opts *websocket.DialOptions
}

func (w *wsTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	conn, _, err := websocket.Dial(ctx, w.url, w.opts)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(-1)
	return &wsConnection{conn: conn}, nil
}

type wsConnection struct{ conn *websocket.Conn }

func (c *wsConnection) Read(ctx context.Context) (jsonrpc.Message, error) {
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	return jsonrpc.DecodeMessage(data)
}

func (c *wsConnection) Write(ctx context.Context, m jsonrpc.Message) error {
	data, err := jsonrpc.EncodeMessage(m)
	if err != nil {
		return err
	}
	return c.conn.Write(ctx, websocket.MessageText, data)
}

func (c *wsConnection) Close() error      { return c.conn.Close(websocket.StatusNormalClosure, "") }
func (c *wsConnection) SessionID() string { return "" }

func callEcho(t *testing.T, s *mcp.ClientSession, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("call %s: %v %+v", name, err, res)
	}
}

func setGlobalList(t *testing.T, gw *running, names ...string) {
	t.Helper()
	if status, out := gw.do("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": names}); status != http.StatusOK {
		t.Fatalf("set the global list: %d %s", status, out)
	}
}

// TestSessionsForwardTheOpeningHeaders: over /sse and /ws, initialize,
// tools/list and tools/call work; calls reach the upstream with the headers
// of the opening request only; and a change of the allowlist mid-session
// applies to the very next call (spec §4, D12).
func TestSessionsForwardTheOpeningHeaders(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		for _, tr := range sessionTransports() {
			t.Run(tr.name, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				gw := startGateway(t, dbURL(t), nil)
				gw.register(map[string]any{"name": "crm", "url": up.URL})
				setGlobalList(t, gw, "X-Tenant-Id")

				s := tr.connect(t, gw, http.Header{"X-Tenant-Id": {"acme"}, "X-Region": {"eu"}}, nil)
				if info := s.InitializeResult().ServerInfo; info == nil || info.Name != "mcpgate" {
					t.Errorf("initialize answered by %+v, want mcpgate", info)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				tools, err := s.ListTools(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !hasTool(tools, "crm-echo") {
					t.Fatalf("tools/list lacks crm-echo: %v", tools.Tools)
				}

				callEcho(t, s, "crm-echo")
				h := upstreamSaw(t, up, "tools/call")
				if got := h.Get("X-Tenant-Id"); got != "acme" {
					t.Errorf("upstream got X-Tenant-Id %q, want the opening request's acme", got)
				}
				if got := h.Get("X-Region"); got != "" {
					t.Errorf("upstream got X-Region %q, not allowlisted", got)
				}

				setGlobalList(t, gw, "X-Region")
				callEcho(t, s, "crm-echo")
				h = upstreamSaw(t, up, "tools/call")
				if h.Get("X-Region") != "eu" || h.Get("X-Tenant-Id") != "" {
					t.Errorf("after the allowlist changed the upstream got X-Region %q, X-Tenant-Id %q; want eu and nothing",
						h.Get("X-Region"), h.Get("X-Tenant-Id"))
				}
			})
		}
	})
}

func hasTool(tools *mcp.ListToolsResult, name string) bool {
	for _, tl := range tools.Tools {
		if tl.Name == name {
			return true
		}
	}
	return false
}

// neverForwardedNames is the never-forwarded set of spec §2.3 as a client
// could send it (one name for each prefix), with the WebSocket handshake.
func neverForwardedNames() []string {
	return []string{
		"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "TE", "Trailer", "Upgrade",
		"Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "Mcp-Param-Region", "X-Mcp-Session-Id",
		"X-Authenticated-User", "Accept", "Last-Event-Id", "X-Mcpgate-Internal", "X-Forwarded-Internally",
		"X-Contextforge-Auth-Context", "Authorization",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Sec-Websocket-Accept",
	}
}

// TestSessionsNeverForwardTheNeverForwarded: a session opened with every
// never-forwarded header, all of them allowlisted, mcpgate's token in
// Authorization (and, on /ws, in the subprotocol bearer.<token>) forwards
// none of them (spec §2.3, D4, D11).
func TestSessionsNeverForwardTheNeverForwarded(t *testing.T) {
	const marker = "leakmarker"
	policy := passthrough.NewPolicy(passthrough.DefaultSettings())
	names := neverForwardedNames()
	for _, n := range names {
		if policy.NeverForwarded(n) == 0 {
			t.Fatalf("%s is forwardable; the list of this test is wrong", n)
		}
	}
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		for _, tr := range sessionTransports() {
			t.Run(tr.name, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				gw := startGateway(t, dbURL(t), nil)
				gw.register(map[string]any{"name": "open", "url": up.URL, "auth_type": "none"})
				setGlobalList(t, gw, append([]string{"X-Tenant-Id"}, names...)...)

				opening := http.Header{"X-Tenant-Id": {"acme"}}
				for _, n := range names {
					opening.Set(n, marker)
				}
				opening.Set("Authorization", "Bearer "+gw.token)
				opening.Set("Sec-Websocket-Protocol", "mcp, bearer."+gw.token)
				var s *mcp.ClientSession
				if tr.name == "ws" {
					for _, handshake := range []string{"Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"} {
						opening.Del(handshake) // the dialer sets its own
					}
					s = connectSDK(t, &wsTransport{url: wsURL(gw), opts: &websocket.DialOptions{HTTPHeader: opening,
						Subprotocols: []string{"mcp", "bearer." + gw.token}}}, nil)
				} else {
					s = tr.connect(t, gw, opening, nil)
				}
				before := len(up.Requests())
				callEcho(t, s, "open-echo")
				if got := upstreamSaw(t, up, "tools/call").Get("X-Tenant-Id"); got != "acme" {
					t.Errorf("upstream got X-Tenant-Id %q, want acme: the allowlist does not apply", got)
				}
				for _, req := range up.Requests()[before:] {
					for name, vals := range req.Header {
						v := strings.Join(vals, ",")
						if strings.Contains(v, marker) || strings.Contains(v, gw.token) ||
							strings.HasPrefix(strings.ToLower(name), "sec-websocket-") || strings.EqualFold(v, "websocket") {
							t.Errorf("%s %s reached the upstream with %s: %q", req.Method, req.JSONRPCMethod, name, v)
						}
					}
				}
			})
		}
	})
}

// TestWebSocketAuthentication: /ws takes the client token from
// Authorization or, for browsers, from the subprotocol bearer.<token>,
// answering with the subprotocol mcp only; without a valid token it is 401.
func TestWebSocketAuthentication(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), nil)
		dial := func(header http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return websocket.Dial(ctx, wsURL(gw), &websocket.DialOptions{HTTPHeader: header, Subprotocols: subprotocols})
		}
		for _, tt := range []struct {
			name         string
			header       http.Header
			subprotocols []string
			ok           bool
		}{
			{"Authorization", http.Header{"Authorization": {"Bearer " + gw.token}}, []string{"mcp"}, true},
			{"subprotocol", nil, []string{"mcp", "bearer." + gw.token}, true},
			{"subprotocol first", nil, []string{"bearer." + gw.token, "mcp"}, true},
			{"no token", nil, []string{"mcp"}, false},
			{"bad subprotocol token", nil, []string{"mcp", "bearer.not-a-jwt"}, false},
			{"bad Authorization beats a good subprotocol", http.Header{"Authorization": {"Bearer not-a-jwt"}}, []string{"mcp", "bearer." + gw.token}, false},
		} {
			conn, resp, err := dial(tt.header, tt.subprotocols...)
			if !tt.ok {
				if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s: %v, want 401", tt.name, err)
				}
				if conn != nil {
					conn.CloseNow()
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if got := conn.Subprotocol(); got != "mcp" {
				t.Errorf("%s: subprotocol %q, want mcp", tt.name, got)
			}
			if got := strings.Join(resp.Header.Values("Sec-Websocket-Protocol"), ","); got != "mcp" {
				t.Errorf("%s: answered Sec-WebSocket-Protocol %q, want mcp alone", tt.name, got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := conn.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)); err != nil {
				t.Errorf("%s: write: %v", tt.name, err)
			} else if _, data, err := conn.Read(ctx); err != nil || string(data) != `{"jsonrpc":"2.0","id":1,"result":{}}` {
				t.Errorf("%s: ping answered %s %v", tt.name, data, err)
			}
			cancel()
			conn.Close(websocket.StatusNormalClosure, "")
		}
		// The 401 tells a browser what to do.
		req, _ := http.NewRequest("GET", gw.url+"/ws", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "subprotocols mcp and bearer.") {
			t.Errorf("no token: %d %s, want 401 naming the subprotocol", resp.StatusCode, body)
		}
		// The subprotocol is a /ws alternative only.
		req, _ = http.NewRequest("GET", gw.url+"/sse", nil)
		req.Header.Set("Sec-WebSocket-Protocol", "mcp, bearer."+gw.token)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /sse with a subprotocol token: %v %v, want 401", resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
	})
}

// TestSessionsCarryNotifications: progress and log notifications an
// upstream sends during a call, and catalogue changes, reach the client
// over /sse and /ws.
func TestSessionsCarryNotifications(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		for _, tr := range sessionTransports() {
			t.Run(tr.name, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				gw := startGateway(t, dbURL(t), nil)
				gw.register(map[string]any{"name": "crm", "url": up.URL})
				var seen slowToolNotifications
				changed := make(chan struct{}, 8)
				s := tr.connect(t, gw, nil, seen.record(&mcp.ClientOptions{
					ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
						select {
						case changed <- struct{}{}:
						default:
						}
					},
				}))
				seen.callSlow(t, s)

				gw.register(map[string]any{"name": "more", "url": up.URL})
				select {
				case <-changed:
				case <-time.After(5 * time.Second):
					t.Error("no tools/list_changed reached the client")
				}
			})
		}
	})
}

// TestSessionsAreReleased opens and drops 500 legacy SSE streams, 500
// WebSockets (half closed cleanly, half dropped) and 1000 Streamable HTTP
// sessions (initialized, then abandoned to SESSION_IDLE_TIMEOUT), a few of
// each making a call first; then every transport holds no session, and the
// goroutines are back to what they were.
func TestSessionsAreReleased(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		const (
			sseSessions        = 500
			wsSessions         = 500
			streamableSessions = 1000
			workers            = 8
			margin             = 5
		)
		// One client opens them all: no per-client limit, so that they end
		// by the idle timeout alone.
		gw := startGateway(t, dbURL(t), map[string]string{"SESSION_IDLE_TIMEOUT": "1s", "MAX_SESSIONS_PER_CLIENT": "0"})
		transport := &http.Transport{MaxIdleConnsPerHost: workers}
		hc := &http.Client{Transport: transport}
		defer transport.CloseIdleConnections()
		auth := "Bearer " + gw.token

		openSSE := func(i int) error {
			req, _ := http.NewRequest("GET", gw.url+"/sse", nil)
			req.Header.Set("Authorization", auth)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close() // drops the stream
			br := bufio.NewReader(resp.Body)
			endpoint, err := readEndpoint(br)
			if err != nil || i%50 != 0 {
				return err
			}
			post, _ := http.NewRequest("POST", gw.url+endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			post.Header.Set("Authorization", auth)
			presp, err := hc.Do(post)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, presp.Body)
			presp.Body.Close()
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return fmt.Errorf("no answer on the stream: %w", err)
				}
				if strings.Contains(line, `"result":{}`) {
					return nil
				}
			}
		}
		openWS := func(i int) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, wsURL(gw), &websocket.DialOptions{HTTPClient: hc,
				HTTPHeader: http.Header{"Authorization": {auth}}, Subprotocols: []string{"mcp"}})
			if err != nil {
				return err
			}
			if i%50 == 0 {
				if err := conn.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)); err != nil {
					return err
				}
				if _, _, err := conn.Read(ctx); err != nil {
					return err
				}
			}
			if i%2 == 0 {
				return conn.Close(websocket.StatusNormalClosure, "")
			}
			return conn.CloseNow()
		}
		openStreamable := func(int) error {
			req, _ := http.NewRequest("POST", gw.url+"/mcp", strings.NewReader(
				`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"leak","version":"1"}}}`))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
				return fmt.Errorf("initialize: %d", resp.StatusCode)
			}
			return nil
		}
		// One of each first, so that what starts once is in the baseline.
		for _, open := range []func(int) error{openSSE, openWS, openStreamable} {
			if err := open(0); err != nil {
				t.Fatal(err)
			}
		}
		waitForSessions(t, gw, 10*time.Second)
		transport.CloseIdleConnections()
		baseline := stableGoroutines()

		start := time.Now()
		run(t, workers, sseSessions, openSSE)
		run(t, workers, wsSessions, openWS)
		run(t, workers, streamableSessions, openStreamable)
		opened := time.Since(start)
		if s, _, _ := gw.gateway.OpenSessions(); s < streamableSessions/2 {
			t.Errorf("%d Streamable sessions open right after, want most of the %d (they end by idle timeout)", s, streamableSessions)
		}
		transport.CloseIdleConnections()
		waitForSessions(t, gw, 10*time.Second)
		var now int
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if now = runtime.NumGoroutine(); now <= baseline+margin || time.Now().After(deadline) {
				break
			}
		}
		if now > baseline+margin {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines after %d sessions, %d before; the stacks:\n%s", now, sseSessions+wsSessions+streamableSessions, baseline, buf[:runtime.Stack(buf, true)])
		}
		t.Logf("%d SSE, %d WebSocket and %d Streamable sessions opened and dropped in %s; all released %s later; goroutines %d before, %d after",
			sseSessions, wsSessions, streamableSessions, opened.Round(time.Millisecond), (time.Since(start) - opened).Round(time.Millisecond), baseline, now)
	})
}

// readEndpoint reads a legacy SSE stream up to its endpoint event and
// returns the event's data.
func readEndpoint(br *bufio.Reader) (string, error) {
	for {
		e, err := mcptest.ReadEvent(br)
		if err != nil {
			return "", fmt.Errorf("no endpoint event: %w", err)
		}
		if e.Name == "endpoint" {
			return e.Data, nil
		}
	}
}

// run calls open n times on workers goroutines, stopping and failing the
// test at the first error.
func run(t *testing.T, workers, n int, open func(i int) error) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := open(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := 0; i < n && len(errs) == 0; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// waitForSessions waits until no transport holds a session.
func waitForSessions(t *testing.T, gw *running, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		streamable, sse, ws := gw.gateway.OpenSessions()
		if streamable+sse+ws == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still open after %s: Streamable %d, SSE %d, WebSocket %d", within, streamable, sse, ws)
		}
	}
}

// stableGoroutines returns the goroutine count once it stops falling.
func stableGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// TestSessionTransportsShutDownGracefully: at shutdown a call in flight on
// a legacy SSE or WebSocket session finishes and its answer reaches the
// client, as on /mcp and /rpc, before the session is closed.
func TestSessionTransportsShutDownGracefully(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		for _, tr := range sessionTransports() {
			t.Run(tr.name, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				gw := startGateway(t, dbURL(t), nil)
				gw.register(map[string]any{"name": "crm", "url": up.URL})
				s := tr.connect(t, gw, nil, nil)
				type outcome struct {
					res *mcp.CallToolResult
					err error
				}
				done := make(chan outcome, 1)
				go func() {
					res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "crm-slow", Arguments: map[string]any{"ms": 100, "steps": 5}})
					done <- outcome{res, err}
				}()
				testenv.WaitFor(t, 10*time.Second, "the call to reach the upstream", func() bool { return up.LastHeader("tools/call") != nil })
				gw.stop()
				select {
				case o := <-done:
					if o.err != nil || o.res.IsError || len(o.res.Content) == 0 {
						t.Errorf("in-flight call at shutdown: %v %+v", o.err, o.res)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the in-flight call never answered")
				}
			})
		}
	})
}

// TestSessionsBelongToTheirClient: a session id is not a credential.
// Another authenticated client that learns one gets 404 for it — on /mcp,
// on the relay, and on a legacy SSE session — while its owner goes on.
func TestSessionsBelongToTheirClient(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		id := gw.register(map[string]any{"name": "crm", "url": up.URL})
		j, err := auth.NewJWT([]byte(jwtSecret))
		if err != nil {
			t.Fatal(err)
		}
		mallory, err := j.Mint("mallory", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		initialize := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
			"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
		list := map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

		for _, path := range []string{"/mcp", "/gateways/" + id + "/mcp"} {
			session := openSessionAt(t, gw, path, initialize)
			status, out := doAs(t, gw, mallory, "POST", path, list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", session)
			if status != http.StatusNotFound {
				t.Errorf("%s: another client's POST in the session: %d %s, want 404", path, status, out)
			}
			status, out = doAs(t, gw, mallory, "DELETE", path, nil, "Mcp-Session-Id", session)
			if status != http.StatusNotFound {
				t.Errorf("%s: another client's DELETE of the session: %d %s, want 404", path, status, out)
			}
			if status, out := gw.do("POST", path, list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", session); status != http.StatusOK {
				t.Errorf("%s: the owner's POST after that: %d %s, want 200", path, status, out)
			}
		}

		// Legacy SSE: the owner opens the stream; another client posts to it.
		req, _ := http.NewRequest("GET", gw.url+"/sse", nil)
		req.Header.Set("Authorization", "Bearer "+gw.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		endpoint, err := readEndpoint(bufio.NewReader(resp.Body))
		if err != nil {
			t.Fatal(err)
		}
		status, out := doAs(t, gw, mallory, "POST", endpoint, list)
		if status != http.StatusNotFound {
			t.Errorf("another client's POST to an SSE session: %d %s, want 404", status, out)
		}
		if status, out := gw.do("POST", endpoint, list); status != http.StatusAccepted {
			t.Errorf("the owner's POST to its SSE session: %d %s, want 202", status, out)
		}
	})
}

// doAs is running.do with another client's token.
func doAs(t *testing.T, gw *running, token, method, path string, body any, headers ...string) (int, []byte) {
	t.Helper()
	other := *gw
	other.token = token
	return other.do(method, path, body, headers...)
}

// openSessionAt sends initialize to the Streamable HTTP endpoint at path
// and returns the session id it gave.
func openSessionAt(t *testing.T, gw *running, path string, initialize map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(initialize)
	req, _ := http.NewRequest("POST", gw.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+gw.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := readAll(resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize at %s: %d %s", path, resp.StatusCode, out)
	}
	return resp.Header.Get("Mcp-Session-Id")
}
