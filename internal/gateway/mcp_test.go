package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// bearerTransport adds the client token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	r.Header.Set("X-Tenant-Id", "from-sdk-client")
	return http.DefaultTransport.RoundTrip(r)
}

// TestStreamableHTTPWithTheOfficialClient: the official Go SDK's client
// talks to /mcp; progress and log notifications an upstream sends during a
// call reach it, and the passthrough headers reach the upstream.
func TestStreamableHTTPWithTheOfficialClient(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		gw.register(map[string]any{"name": "crm", "url": up.URL})

		var seen slowToolNotifications
		client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, seen.record(&mcp.ClientOptions{}))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:   gw.url + "/mcp",
			HTTPClient: &http.Client{Transport: bearerTransport{gw.token}},
		}, legacySession)
		if err != nil {
			t.Fatalf("connect to /mcp: %v", err)
		}
		defer session.Close()

		tools, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, tl := range tools.Tools {
			found = found || tl.Name == "crm-slow"
		}
		if !found {
			t.Fatalf("crm-slow not listed: %v", tools.Tools)
		}
		seen.callSlow(t, session)
		if got := upstreamSaw(t, up, "tools/call").Get("X-Tenant-Id"); got != "from-sdk-client" {
			t.Errorf("upstream got X-Tenant-Id %q from a /mcp call", got)
		}
	})
}

// TestMCPSessionRules: the session header is required after initialize, an
// unknown or ended session is 404 (the client initialises again), and an
// unsupported protocol version is refused.
func TestMCPSessionRules(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), nil)
		post := func(session, version, body string) (*http.Response, string) {
			req, _ := http.NewRequest("POST", gw.url+"/mcp", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+gw.token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if session != "" {
				req.Header.Set("Mcp-Session-Id", session)
			}
			if version != "" {
				req.Header.Set("MCP-Protocol-Version", version)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := new(strings.Builder)
			_, _ = fmt.Fprint(b, readAll(resp))
			return resp, b.String()
		}
		ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
		resp, body := post("", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		session := resp.Header.Get("Mcp-Session-Id")
		if resp.StatusCode != 200 || session == "" || !strings.Contains(body, `"protocolVersion":"2025-06-18"`) {
			t.Fatalf("initialize: %d session %q %s", resp.StatusCode, session, body)
		}
		if resp, body := post("", "2025-06-18", ping); resp.StatusCode != 400 {
			t.Errorf("no session header: %d %s, want 400", resp.StatusCode, body)
		}
		if resp, _ := post("nope", "2025-06-18", ping); resp.StatusCode != 404 {
			t.Errorf("unknown session: %d, want 404", resp.StatusCode)
		}
		if resp, body := post(session, "1999-01-01", ping); resp.StatusCode != 400 || !strings.Contains(body, "1999-01-01") {
			t.Errorf("bad protocol version: %d %s", resp.StatusCode, body)
		}
		if resp, body := post(session, "2025-06-18", ping); resp.StatusCode != 200 || !strings.Contains(body, `"result":{}`) {
			t.Errorf("ping: %d %s", resp.StatusCode, body)
		}
		req, _ := http.NewRequest("DELETE", gw.url+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+gw.token)
		req.Header.Set("Mcp-Session-Id", session)
		if dresp, err := http.DefaultClient.Do(req); err != nil || dresp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %v %v", dresp, err)
		}
		if resp, _ := post(session, "2025-06-18", ping); resp.StatusCode != 404 {
			t.Errorf("after DELETE: %d, want 404", resp.StatusCode)
		}
	})
}

func readAll(resp *http.Response) string {
	b := new(strings.Builder)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestOAuthTokenRefreshedOn401: an OAuth upstream that starts refusing the
// cached token gets one retry with a freshly fetched one.
func TestOAuthTokenRefreshedOn401(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		var issued atomic.Int32
		tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id, secret, ok := r.BasicAuth(); !ok || id != "mcpgate" || secret != "client-secret" || r.FormValue("grant_type") != "client_credentials" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			n := issued.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n)
		}))
		t.Cleanup(tokens.Close) // after the gateway stops: cleanups run last-in first-out

		up := mcptest.NewStreamableHTTP(t)
		var current atomic.Value
		current.Store("Bearer tok-1")
		target, _ := url.Parse(up.URL)
		proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
		proxy.FlushInterval = -1
		guard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != current.Load().(string) {
				http.Error(w, "token refused", http.StatusUnauthorized)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(guard.Close)

		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "crm", "url": guard.URL + target.Path, "auth_type": "oauth",
			"oauth_config": map[string]any{"grant_type": "client_credentials", "token_url": tokens.URL,
				"client_id": "mcpgate", "client_secret": "client-secret", "scopes": []string{"tools"}}})
		args := map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}
		if res := gw.call("tools/call", args); res.Error != nil {
			t.Fatalf("first call: %s", res.Error.Message)
		}
		if n := issued.Load(); n != 1 {
			t.Fatalf("%d tokens fetched before the rotation, want 1 (cached)", n)
		}
		current.Store("Bearer tok-2") // tok-1 revoked upstream
		if res := gw.call("tools/call", args); res.Error != nil {
			t.Fatalf("call after the rotation: %s", res.Error.Message)
		}
		if n := issued.Load(); n != 2 {
			t.Errorf("%d tokens fetched, want 2: one refresh after the 401", n)
		}
		if got := upstreamSaw(t, up, "tools/call").Get("Authorization"); got != "Bearer tok-2" {
			t.Errorf("upstream got %q", got)
		}
	})
}

// TestSlowAndFailingUpstreams: an upstream slower than UPSTREAM_TIMEOUT, or
// answering 5xx, gives a JSON-RPC error naming it, in time.
func TestSlowAndFailingUpstreams(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"UPSTREAM_TIMEOUT": "1s"})
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		start := time.Now()
		res := gw.call("tools/call", map[string]any{"name": "crm-slow", "arguments": map[string]any{"ms": 400, "steps": 5}})
		if res.Error == nil || !strings.Contains(res.Error.Message, `"crm" did not answer within 1s`) {
			t.Errorf("slow upstream: %+v", res.Error)
		}
		if d := time.Since(start); d > 1800*time.Millisecond {
			t.Errorf("timeout error after %s", d)
		}
		up.SetStatus(http.StatusBadGateway)
		res = gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}})
		if res.Error == nil || !strings.Contains(res.Error.Message, `"crm" answered HTTP 502`) {
			t.Errorf("5xx upstream: %+v", res.Error)
		}
	})
}

// TestListChangedRefreshesCatalogue: a tool added upstream appears in
// tools/list without a manual refresh.
func TestListChangedRefreshesCatalogue(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		up.AddTool("extra")
		deadline := time.Now().Add(10 * time.Second)
		for {
			res := gw.call("tools/list", map[string]any{})
			if strings.Contains(string(res.Result), `"crm-extra"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("crm-extra never listed: %s", res.Result)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestGracefulShutdownFinishesInFlightCalls: SIGTERM (the serve context
// ending) lets a call in flight finish and answer.
func TestGracefulShutdownFinishesInFlightCalls(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		done := make(chan rpcResult, 1)
		go func() {
			done <- gw.call("tools/call", map[string]any{"name": "crm-slow", "arguments": map[string]any{"ms": 100, "steps": 5}})
		}()
		for deadline := time.Now().Add(10 * time.Second); up.LastHeader("tools/call") == nil; { // the call reached the upstream
			if time.Now().After(deadline) {
				t.Fatal("the call never reached the upstream")
			}
			time.Sleep(5 * time.Millisecond)
		}
		gw.stop()
		select {
		case res := <-done:
			if res.Error != nil {
				t.Errorf("in-flight call failed at shutdown: %s", res.Error.Message)
			}
			var r struct {
				Content []json.RawMessage `json:"content"`
			}
			if json.Unmarshal(res.Result, &r) != nil || len(r.Content) == 0 {
				t.Errorf("in-flight call answered %s", res.Result)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the in-flight call never answered")
		}
	})
}

// TestClientsHearOfCatalogueChanges: a client with a GET stream open on /mcp
// is told when an upstream is registered.
func TestClientsHearOfCatalogueChanges(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		changed := make(chan struct{}, 8)
		client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
				select {
				case changed <- struct{}{}:
				default:
				}
			},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: gw.url + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{gw.token}},
		}, legacySession)
		if err != nil {
			t.Fatal(err)
		}
		defer session.Close()
		// The SDK opens its GET stream right after initialize; registering
		// until a notification arrives covers the moment it is not open yet.
		for i := 0; ; i++ {
			gw.register(map[string]any{"name": fmt.Sprintf("up%d", i), "url": up.URL})
			select {
			case <-changed:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if i == 10 {
				t.Fatal("no tools/list_changed reached the client")
			}
		}
	})
}

// slowToolNotifications records the progress and log notifications a
// client of the SDK receives while it calls mcptest's slow tool.
type slowToolNotifications struct {
	mu       sync.Mutex
	progress []float64
	logs     []string
}

// record sets the handlers of opts that record, and returns opts.
func (n *slowToolNotifications) record(opts *mcp.ClientOptions) *mcp.ClientOptions {
	opts.ProgressNotificationHandler = func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		n.mu.Lock()
		n.progress = append(n.progress, r.Params.Progress)
		n.mu.Unlock()
	}
	opts.LoggingMessageHandler = func(_ context.Context, r *mcp.LoggingMessageRequest) {
		n.mu.Lock()
		n.logs = append(n.logs, fmt.Sprint(r.Params.Data))
		n.mu.Unlock()
	}
	return opts
}

// callSlow calls crm-slow for three steps with a progress token and checks
// that the three progress notifications and the one log line arrived.
func (n *slowToolNotifications) callSlow(t *testing.T, session *mcp.ClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	params := &mcp.CallToolParams{Name: "crm-slow", Arguments: map[string]any{"ms": 5, "steps": 3}}
	params.SetProgressToken("p-1")
	res, err := session.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("crm-slow: %v %+v", err, res)
	}
	// The SDK runs notification handlers on their own goroutines, so they
	// may finish after CallTool returns: wait for them, boundedly.
	var gotProgress []float64
	var gotLogs []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n.mu.Lock()
		gotProgress, gotLogs = append([]float64(nil), n.progress...), append([]string(nil), n.logs...)
		n.mu.Unlock()
		if (len(gotProgress) >= 3 && len(gotLogs) >= 1) || time.Now().After(deadline) {
			break
		}
	}
	sort.Float64s(gotProgress) // the SDK may run its handlers out of order
	if fmt.Sprint(gotProgress) != "[1 2 3]" {
		t.Errorf("progress notifications %v, want steps 1, 2 and 3", gotProgress)
	}
	if len(gotLogs) != 1 || !strings.Contains(gotLogs[0], "slow: done") {
		t.Errorf("log notifications %v, want the tool's one line", gotLogs)
	}
}
