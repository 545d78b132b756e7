package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// The 1:1 relay, /gateways/{id}/mcp: one upstream exposed as itself.

// relayClient connects the official Go SDK client, as a client that can
// sample, elicit and list roots, to the Streamable HTTP relay of the
// upstream id.
func relayClient(t *testing.T, gw *running, id string, opts *mcp.ClientOptions) *mcp.ClientSession {
	return relayClientOver(t, gw, id, "streamable", opts)
}

// relayClientOver is relayClient over the relay's Streamable HTTP
// ("streamable", /gateways/{id}/mcp) or legacy SSE ("sse",
// /gateways/{id}/sse) endpoint.
func relayClientOver(t *testing.T, gw *running, id, over string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "relay-e2e", Version: "1"}, opts)
	client.AddRoots(&mcp.Root{URI: "file:///work/project", Name: "project"})
	// The SDK's legacy SSE transport ties its stream to Connect's context,
	// so that lives as long as the test.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hc := &http.Client{Transport: bearerTransport{gw.token}}
	var transport mcp.Transport = &mcp.StreamableClientTransport{Endpoint: gw.url + "/gateways/" + id + "/mcp", HTTPClient: hc}
	if over == "sse" {
		transport = &mcp.SSEClientTransport{Endpoint: gw.url + "/gateways/" + id + "/sse", HTTPClient: hc}
	}
	session, err := client.Connect(ctx, transport, legacySession)
	if err != nil {
		t.Fatalf("connect to the relay: %v", err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

// TestRelayExposesTheUpstreamAsItself: through the relay the client sees
// the upstream's own names (no prefix) and server info, and a call's
// progress and log notifications, and the upstream's requests to the
// client mid-call — sampling, elicitation, roots and ping — travel to the
// client and their answers back.
//
// It runs with the client on each of the relay's endpoints (Streamable
// HTTP, legacy SSE) and an upstream of each transport: an SSE-only
// upstream is relayed to a Streamable HTTP client too, and the other way
// round.
func TestRelayExposesTheUpstreamAsItself(t *testing.T) {
	for _, over := range []string{"streamable", "sse"} {
		for _, transport := range []string{"STREAMABLEHTTP", "SSE"} {
			t.Run(over+" client/"+transport+" upstream", func(t *testing.T) { testRelayExposesTheUpstreamAsItself(t, over, transport) })
		}
	}
}

func testRelayExposesTheUpstreamAsItself(t *testing.T, over, transport string) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		var up *mcptest.Server
		if transport == "SSE" {
			up = mcptest.NewSSE(t, mcptest.WithName("crm-server"))
		} else {
			up = mcptest.NewStreamableHTTP(t, mcptest.WithName("crm-server"))
		}
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "transport": transport})

		var mu sync.Mutex
		var progress []float64
		var logs, sampled []string
		session := relayClientOver(t, gw, id, over, &mcp.ClientOptions{
			CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				q := ""
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					q = tc.Text
				}
				mu.Lock()
				sampled = append(sampled, q)
				mu.Unlock()
				return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant", Content: &mcp.TextContent{Text: "sampled answer to " + q}}, nil
			},
			ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
			},
			ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
				mu.Lock()
				progress = append(progress, r.Params.Progress)
				mu.Unlock()
			},
			LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
				mu.Lock()
				logs = append(logs, fmt.Sprint(r.Params.Data))
				mu.Unlock()
			},
		})
		if got := session.InitializeResult().ServerInfo.Name; got != "crm-server" {
			t.Errorf("serverInfo.name through the relay = %q, want the upstream's own", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()

		tools, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		if !strings.Contains(","+strings.Join(names, ",")+",", ",consult,") {
			t.Fatalf("tools through the relay %v, want the upstream's own names (consult)", names)
		}

		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "consult", Arguments: map[string]any{"question": "what is 6x7?"}})
		if err != nil || res.IsError {
			t.Fatalf("consult: %v %+v", err, res)
		}
		var answers struct {
			Sampling    string `json:"sampling"`
			Elicitation struct {
				Action  string         `json:"action"`
				Content map[string]any `json:"content"`
			} `json:"elicitation"`
		}
		if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &answers); err != nil {
			t.Fatal(err)
		}
		if answers.Sampling != "sampled answer to what is 6x7?" {
			t.Errorf("the upstream's sampling request got %q, want the client's answer", answers.Sampling)
		}
		if answers.Elicitation.Action != "accept" || answers.Elicitation.Content["name"] != "Ada" {
			t.Errorf("the upstream's elicitation got %+v, want the client's answer", answers.Elicitation)
		}

		res, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "ask"})
		if err != nil || res.IsError {
			t.Fatalf("ask: %v %+v", err, res)
		}
		var asked map[string]string
		_ = json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &asked)
		if asked["ping"] != "ok" || !strings.Contains(asked["roots/list"], "file:///work/project") {
			t.Errorf("the upstream's ping and roots/list got %v, want ok and the client's root", asked)
		}

		params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 5, "steps": 3}}
		params.SetProgressToken("p-relay")
		if err := session.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		if res, err := session.CallTool(ctx, params); err != nil || res.IsError {
			t.Fatalf("slow: %v %+v", err, res)
		}
		var gotProgress []float64
		var gotLogs []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			gotProgress, gotLogs = append([]float64(nil), progress...), append([]string(nil), logs...)
			mu.Unlock()
			if (len(gotProgress) >= 3 && len(gotLogs) >= 1) || time.Now().After(deadline) {
				break
			}
		}
		sort.Float64s(gotProgress)
		if fmt.Sprint(gotProgress) != "[1 2 3]" {
			t.Errorf("progress through the relay %v, want steps 1, 2 and 3", gotProgress)
		}
		if len(gotLogs) != 1 || !strings.Contains(gotLogs[0], "slow: done") {
			t.Errorf("log notifications through the relay %v, want the tool's one line", gotLogs)
		}

		// spec §5: everything relayed gets passthrough; mcpgate's own token never.
		h := upstreamSaw(t, up, "tools/call")
		if h.Get("X-Tenant-Id") != "from-sdk-client" {
			t.Errorf("relayed tools/call carried X-Tenant-Id %q", h.Get("X-Tenant-Id"))
		}
		if got := h.Get("Authorization"); got != "" {
			t.Errorf("relayed tools/call carried Authorization %q: mcpgate's own token leaked", got)
		}
		if h := upstreamSaw(t, up, "initialize"); h.Get("X-Tenant-Id") != "from-sdk-client" {
			t.Errorf("relayed initialize carried X-Tenant-Id %q", h.Get("X-Tenant-Id"))
		}
	})
}

// TestRelayRefusesUnknownUpstreamsAndForeignSessions: an id that names no
// upstream is 404, and a session opened on one upstream's relay is not found
// on another's.
func TestRelayRefusesUnknownUpstreamsAndForeignSessions(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		a := mcptest.NewStreamableHTTP(t)
		b := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		idA := gw.register(map[string]any{"name": "a", "url": a.URL})
		idB := gw.register(map[string]any{"name": "b", "url": b.URL})

		initialize := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
			"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
		status, out := gw.do("POST", "/gateways/no-such-id/mcp", initialize, "Accept", "application/json, text/event-stream")
		if status != http.StatusNotFound || !strings.Contains(string(out), "no-such-id") {
			t.Errorf("relay to an unknown id: %d %s, want 404 naming it", status, out)
		}

		sessionID := openSessionAt(t, gw, "/gateways/"+idA+"/mcp", initialize)
		list := map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
		status, out = gw.do("POST", "/gateways/"+idB+"/mcp", list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", sessionID)
		if status != http.StatusNotFound {
			t.Errorf("another upstream's session on b's relay: %d %s, want 404", status, out)
		}
		status, out = gw.do("POST", "/gateways/"+idA+"/mcp", list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", sessionID)
		if status != http.StatusOK || !strings.Contains(string(out), `"echo"`) {
			t.Errorf("tools/list on a's relay: %d %s", status, out)
		}
	})
}

// TestRelayCancellationBothWays: a client that gives up on a call makes the
// relay cancel it upstream, by the id the upstream knows; an upstream that
// gives up on its own request to the client makes the client's handler see
// the cancellation.
func TestRelayCancellationBothWays(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		id := gw.register(map[string]any{"name": "crm", "url": up.URL})

		handlerCancelled := make(chan struct{}, 1)
		session := relayClient(t, gw, id, &mcp.ClientOptions{
			CreateMessageHandler: func(ctx context.Context, _ *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				select {
				case <-ctx.Done(): // the upstream's notifications/cancelled arrived
					handlerCancelled <- struct{}{}
					return nil, ctx.Err()
				case <-time.After(10 * time.Second):
					return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "late"}}, nil
				}
			},
		})

		// Upstream → client: the upstream abandons its sampling request.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "impatient", Arguments: map[string]any{"ms": 300}})
		if err != nil || res.IsError {
			t.Fatalf("impatient: %v %+v", err, res)
		}
		if text := res.Content[0].(*mcp.TextContent).Text; !strings.HasPrefix(text, "gave up") {
			t.Errorf("impatient answered %q, want it to have given up", text)
		}
		select {
		case <-handlerCancelled:
		case <-time.After(5 * time.Second):
			t.Error("the client's sampling handler never saw the upstream's cancellation")
		}

		// Client → upstream: the client abandons a long call.
		callCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := session.CallTool(callCtx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 100, "steps": 100}})
			done <- err
		}()
		var wireID json.RawMessage
		for deadline := time.Now().Add(5 * time.Second); wireID == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, r := range up.Requests() {
				if r.JSONRPCMethod == "tools/call" && strings.Contains(string(r.Body), `"slow"`) {
					var m struct {
						ID json.RawMessage `json:"id"`
					}
					_ = json.Unmarshal(r.Body, &m)
					wireID = m.ID
				}
			}
		}
		if wireID == nil {
			t.Fatal("the slow call never reached the upstream")
		}
		stop()
		if err := <-done; err == nil {
			t.Error("the abandoned call succeeded")
		}
		var cancelled bool
		for deadline := time.Now().Add(5 * time.Second); !cancelled && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, r := range up.Requests() {
				if r.JSONRPCMethod != "notifications/cancelled" {
					continue
				}
				var m struct {
					Params struct {
						RequestID json.RawMessage `json:"requestId"`
					} `json:"params"`
				}
				_ = json.Unmarshal(r.Body, &m)
				cancelled = cancelled || string(m.Params.RequestID) == string(wireID)
			}
		}
		if !cancelled {
			t.Errorf("the upstream was never sent notifications/cancelled for its request %s", wireID)
		}
	})
}

// TestRelaySessionsAreReleased: 1 000 relay sessions opened and abandoned
// are ended by the idle timeout, each with its upstream session (the
// upstream is sent DELETE), and the goroutines they held return.
func TestRelaySessionsAreReleased(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		// One client opens them all: no per-client limit, so that they end
		// by the idle timeout alone.
		gw := startGateway(t, dbURL(t), map[string]string{"SESSION_IDLE_TIMEOUT": "1s", "MAX_SESSIONS_PER_CLIENT": "0"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL})
		initialize := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
			"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
		openSessionAt(t, gw, "/gateways/"+id+"/mcp", initialize) // warms pools and lazily started goroutines
		testenv.WaitFor(t, 10*time.Second, "the warm-up session to end", func() bool { return gw.gateway.relay.Sessions() == 0 })
		http.DefaultClient.CloseIdleConnections()
		gw.gateway.httpClient.CloseIdleConnections()
		baseline := stableGoroutines()
		deletesBefore, postsBefore := countRequests(up, "DELETE"), countRequests(up, "POST")

		const sessions = 1000
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for range sessions {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				openSessionAt(t, gw, "/gateways/"+id+"/mcp", initialize)
			})
		}
		wg.Wait()
		if n := countRequests(up, "POST") - postsBefore; n < 2*sessions { // initialize and initialized each
			t.Fatalf("the upstream got %d POSTs for %d relay sessions, want an initialize and an initialized each", n, sessions)
		}
		testenv.WaitFor(t, 30*time.Second, "every relay session to end", func() bool { return gw.gateway.relay.Sessions() == 0 })
		testenv.WaitFor(t, 10*time.Second, "every upstream session to be ended with DELETE", func() bool {
			return countRequests(up, "DELETE")-deletesBefore >= sessions
		})
		// Pooled keep-alive connections are bounded per host, not per
		// session: close them on both sides before counting.
		http.DefaultClient.CloseIdleConnections()
		gw.gateway.httpClient.CloseIdleConnections()
		var now int
		ok := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(20 * time.Millisecond) {
			now = runtime.NumGoroutine()
			ok = now <= baseline+10
		}
		if !ok {
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("goroutines: %d before, %d after", baseline, now)
		}
		t.Logf("goroutines: %d before, %d after %d relay sessions", baseline, now, sessions)

		// Over legacy SSE the session lives on the stream: a client that
		// drops it releases the upstream session at once, no timeout needed.
		deletesBefore = countRequests(up, "DELETE")
		const streams = 200
		for range streams / 20 {
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() { openAndDropRelayStream(t, gw, id, initialize) })
			}
			wg.Wait()
		}
		testenv.WaitFor(t, 10*time.Second, "every SSE relay session to end", func() bool { return gw.gateway.relaySSE.Sessions() == 0 })
		testenv.WaitFor(t, 10*time.Second, "every SSE relay session's upstream session to be ended with DELETE", func() bool {
			return countRequests(up, "DELETE")-deletesBefore >= streams
		})
	})
}

// openAndDropRelayStream opens a legacy SSE session on the relay of id,
// initializes it (so it holds an upstream session), and drops the stream.
func openAndDropRelayStream(t *testing.T, gw *running, id string, initialize map[string]any) {
	req, _ := http.NewRequest("GET", gw.url+"/gateways/"+id+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+gw.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	endpoint, err := readEndpoint(br)
	if err != nil || !strings.HasPrefix(endpoint, "/gateways/"+id+"/message?session_id=") {
		t.Errorf("the relay's endpoint event is %q (%v)", endpoint, err)
		return
	}
	body, _ := json.Marshal(initialize)
	post, _ := http.NewRequest("POST", gw.url+endpoint, strings.NewReader(string(body)))
	post.Header.Set("Authorization", "Bearer "+gw.token)
	post.Header.Set("Content-Type", "application/json")
	presp, err := http.DefaultClient.Do(post)
	if err != nil {
		t.Error(err)
		return
	}
	presp.Body.Close()
	if answer, err := mcptest.ReadEvent(br); err != nil || !strings.Contains(answer.Data, `"protocolVersion"`) {
		t.Errorf("initialize over the SSE relay answered %+v (%v)", answer, err)
	}
}

func countRequests(s *mcptest.Server, method string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

// relayPost posts one JSON-RPC message on a Streamable HTTP relay session
// and returns the status and the body (one SSE event's data, or JSON).
func relayPost(t *testing.T, gw *running, id, session string, msg map[string]any, headers ...string) (int, string) {
	t.Helper()
	status, out := gw.do("POST", "/gateways/"+id+"/mcp", msg,
		append([]string{"Accept", "application/json, text/event-stream", "Mcp-Session-Id", session}, headers...)...)
	return status, string(out)
}

// relayInitialize is an initialize request for the relay.
func relayInitialize() map[string]any {
	return map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
		"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
}

// echoCall is a tools/call of the test upstream's echo tool.
func echoCall(id int) map[string]any {
	return map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{"name": "echo", "arguments": map[string]any{"text": "hi"}}}
}

// openRelayStream opens the GET stream of a Streamable HTTP relay session
// and returns a channel closed when the stream ends.
func openRelayStream(t *testing.T, gw *running, id, session string) <-chan struct{} {
	t.Helper()
	req, _ := http.NewRequest("GET", gw.url+"/gateways/"+id+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+gw.token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream of a relay session: %d %s", resp.StatusCode, readAll(resp))
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		readAll(resp)
		resp.Body.Close()
	}()
	return ended
}

// TestRelaySessionFollowsUpstreamChanges: an open relay session takes its
// upstream's new passthrough list and new credentials with its very next
// message (spec §4: calls use what is in force at call time), and ends at
// once when the upstream is disabled or deleted: its GET stream closes,
// and its next request is 404 saying why.
func TestRelaySessionFollowsUpstreamChanges(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "old-token",
			"passthrough_headers": []string{"X-Tenant-Id"}})
		session := openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())

		call := func(n int) http.Header {
			t.Helper()
			status, out := relayPost(t, gw, id, session, echoCall(n), "X-Tenant-Id", "acme")
			if status != http.StatusOK || !strings.Contains(out, `"result"`) {
				t.Fatalf("tools/call %d on the relay session: %d %s", n, status, out)
			}
			return upstreamSaw(t, up, "tools/call")
		}
		h := call(2)
		if h.Get("X-Tenant-Id") != "acme" || h.Get("Authorization") != "Bearer old-token" {
			t.Fatalf("before any change the upstream saw X-Tenant-Id %q, Authorization %q", h.Get("X-Tenant-Id"), h.Get("Authorization"))
		}

		if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": []string{}}); status != http.StatusOK {
			t.Fatalf("PUT passthrough_headers: %d %s", status, out)
		}
		if h := call(3); h.Get("X-Tenant-Id") != "" {
			t.Errorf("after the upstream's list was emptied, the session's next call still forwarded X-Tenant-Id %q", h.Get("X-Tenant-Id"))
		}

		if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"auth_type": "bearer", "auth_token": "new-token"}); status != http.StatusOK {
			t.Fatalf("PUT auth_token: %d %s", status, out)
		}
		if h := call(4); h.Get("Authorization") != "Bearer new-token" {
			t.Errorf("after a new auth_token, the session's next call carried Authorization %q, want the new one", h.Get("Authorization"))
		}

		// Another address: the session's upstream session lives at the old one.
		moved := mcptest.NewStreamableHTTP(t)
		if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"url": moved.URL}); status != http.StatusOK {
			t.Fatalf("PUT url: %d %s", status, out)
		}
		status, out := relayPost(t, gw, id, session, echoCall(5))
		if status != http.StatusNotFound || !strings.Contains(out, `upstream \"crm\" moved`) {
			t.Errorf("a call on the session after its upstream moved: %d %s, want 404 saying it moved", status, out)
		}
		session = openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())

		stream := openRelayStream(t, gw, id, session)
		calls := countRequests(moved, "POST")
		if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"enabled": false}); status != http.StatusOK {
			t.Fatalf("PUT enabled false: %d %s", status, out)
		}
		select {
		case <-stream:
		case <-time.After(5 * time.Second):
			t.Error("the session's GET stream stayed open after its upstream was disabled")
		}
		status, out = relayPost(t, gw, id, session, echoCall(6))
		if status != http.StatusNotFound || !strings.Contains(out, `upstream \"crm\" was disabled`) {
			t.Errorf("a call on the session after its upstream was disabled: %d %s, want 404 saying it was disabled", status, out)
		}
		if n := countRequests(moved, "POST") - calls; n > 0 {
			t.Errorf("the disabled upstream got %d POSTs from the ended session", n)
		}

		// Deleted: enable again, open a session, delete the upstream.
		if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"enabled": true}); status != http.StatusOK {
			t.Fatalf("PUT enabled true: %d %s", status, out)
		}
		session = openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())
		stream = openRelayStream(t, gw, id, session)
		if status, out := gw.do("DELETE", "/gateways/"+id, nil); status != http.StatusNoContent && status != http.StatusOK {
			t.Fatalf("DELETE: %d %s", status, out)
		}
		select {
		case <-stream:
		case <-time.After(5 * time.Second):
			t.Error("the session's GET stream stayed open after its upstream was deleted")
		}
		status, out = relayPost(t, gw, id, session, echoCall(7))
		if status != http.StatusNotFound || !strings.Contains(out, `upstream \"crm\" was deleted`) {
			t.Errorf("a call on the session after its upstream was deleted: %d %s, want 404 saying it was deleted", status, out)
		}
		testenv.WaitFor(t, 5*time.Second, "the ended sessions to be released", func() bool { return gw.gateway.relay.Sessions() == 0 })
	})
}

// TestRelaySSESessionEndsWithItsUpstream: a legacy SSE relay session ends
// when its upstream is deleted: its stream closes saying why, and a later
// POST is 404 saying why.
func TestRelaySSESessionEndsWithItsUpstream(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, "sqlite:///"+t.TempDir()+"/mcpgate.db", nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	req, _ := http.NewRequest("GET", gw.url+"/gateways/"+id+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+gw.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	endpoint, err := readEndpoint(br)
	if err != nil {
		t.Fatal(err)
	}
	if status, out := gw.do("POST", endpoint, relayInitialize()); status != http.StatusAccepted {
		t.Fatalf("initialize: %d %s", status, out)
	}
	if answer, err := mcptest.ReadEvent(br); err != nil || !strings.Contains(answer.Data, `"protocolVersion"`) {
		t.Fatalf("initialize answered %+v (%v)", answer, err)
	}
	if status, out := gw.do("DELETE", "/gateways/"+id, nil); status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", status, out)
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(br)
		rest <- string(b)
	}()
	select {
	case tail := <-rest:
		if !strings.Contains(tail, `upstream "crm" was deleted`) {
			t.Errorf("the stream ended with %q, want it to say the upstream was deleted", tail)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the SSE relay stream stayed open after its upstream was deleted")
	}
	status, out := gw.do("POST", endpoint, echoCall(2))
	if status != http.StatusNotFound || !strings.Contains(string(out), `upstream \"crm\" was deleted`) {
		t.Errorf("a POST on the ended SSE session: %d %s, want 404 saying the upstream was deleted", status, out)
	}
}

// TestRelayCallInFlightEndsWithItsUpstream: a relayed call still running
// when its upstream is deleted is not left to run on: it is answered at
// once with an error saying why, and the upstream is told to cancel it.
func TestRelayCallInFlightEndsWithItsUpstream(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, "sqlite:///"+t.TempDir()+"/mcpgate.db", nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	session := openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())
	type reply struct {
		status int
		body   string
	}
	answered := make(chan reply, 1)
	go func() {
		status, out := relayPost(t, gw, id, session, map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
			"params": map[string]any{"name": "slow", "arguments": map[string]any{"ms": 100, "steps": 100}}})
		answered <- reply{status, out}
	}()
	testenv.WaitFor(t, 5*time.Second, "the slow call to reach the upstream", func() bool { return received(up, "tools/call") })
	deleted := time.Now()
	if status, out := gw.do("DELETE", "/gateways/"+id, nil); status/100 != 2 {
		t.Fatalf("DELETE: %d %s", status, out)
	}
	select {
	case r := <-answered:
		if !strings.Contains(r.body, `upstream \"crm\" was deleted`) || !strings.Contains(r.body, `"error"`) {
			t.Errorf("the call in flight when its upstream was deleted answered %d %s, want an error saying it was deleted", r.status, r.body)
		}
		t.Logf("the call in flight was answered %s after the DELETE", time.Since(deleted).Round(time.Millisecond))
	case <-time.After(5 * time.Second): // the call itself takes 10 s
		t.Fatal("the call in flight ran on after its upstream was deleted")
	}
	testenv.WaitFor(t, 5*time.Second, "the upstream to be told to cancel the call", func() bool {
		return countRequests(up, "DELETE") > 0 || received(up, "notifications/cancelled")
	})
}

// received reports whether s got a message of the JSON-RPC method.
func received(s *mcptest.Server, method string) bool {
	for _, r := range s.Requests() {
		if r.JSONRPCMethod == method {
			return true
		}
	}
	return false
}
