package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// These tests are MCP 2026-07-28 clients of mcpgate (no initialize, no
// session: every request carries its revision and client in _meta, and
// headers mirror the body) on /mcp and the relay, side by side with
// clients of earlier revisions, in front of go-sdk servers on sessions.

// searchSchema is a tool whose region argument is mirrored into the
// Mcp-Param-Region header (MCP 2026-07-28, x-mcp-header).
const searchSchema = `{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}`

// searchUpstream is mcptest's Streamable HTTP server with a search tool
// that declares x-mcp-header, answering "found <q> in <region>".
func searchUpstream(t *testing.T) *mcptest.Server {
	t.Helper()
	up := mcptest.NewStreamableHTTP(t)
	up.MCPServer().AddTool(&mcp.Tool{Name: "search", InputSchema: json.RawMessage(searchSchema)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct{ Region, Q string }
			_ = json.Unmarshal(req.Params.Arguments, &args)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "found " + args.Q + " in " + args.Region}}}, nil
		})
	return up
}

// statelessClient connects the go-sdk client at its newest revision,
// 2026-07-28 (server/discover, then no session), to endpoint of gw.
func statelessClient(t *testing.T, gw *running, endpoint string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return sdkClient(t, gw, endpoint, opts, nil, protocol.Version20260728)
}

// sdkClient connects the go-sdk client over Streamable HTTP with session
// options so (nil: its newest revision) and checks it speaks want.
func sdkClient(t *testing.T, gw *running, endpoint string, opts *mcp.ClientOptions, so *mcp.ClientSessionOptions, want string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "revisions-e2e", Version: "1"}, opts)
	session, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: gw.url + endpoint, HTTPClient: &http.Client{Transport: bearerTransport{gw.token}},
	}, so)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = session.Close() })
	if v := session.InitializeResult().ProtocolVersion; v != want {
		t.Fatalf("the client speaks %s with %s, want %s", v, endpoint, want)
	}
	return session
}

// searchThrough lists the tools (the client mirrors region into
// Mcp-Param-Region only for a tool it has seen declare it), then calls
// tool, searchUpstream's search under its name there, and checks its
// answer.
func searchThrough(t *testing.T, s *mcp.ClientSession, tool, region, q string) {
	t.Helper()
	tools, err := s.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, tl := range tools.Tools {
		listed = listed || tl.Name == tool
	}
	if !listed {
		t.Fatalf("%s not listed: %d tools", tool, len(tools.Tools))
	}
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"region": region, "q": q}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := textOf(t, res), "found "+q+" in "+region; got != want {
		t.Errorf("%s answered %q, want %q", tool, got, want)
	}
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tool failed: %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content %T, want text", res.Content[0])
	}
	return tc.Text
}

// TestStatelessClientCallsThroughMCP: a 2026-07-28 client discovers
// mcpgate (serverInfo from the result's _meta), lists and calls a tool on
// /mcp without a session; the upstream gets the passthrough header and
// none of the client's per-hop headers (its Mcp-Name names the federated
// tool, crm-search, which is no name of the upstream's).
func TestStatelessClientCallsThroughMCP(t *testing.T) {
	up := searchUpstream(t)
	gw := startGateway(t, sqliteURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
	gw.register(map[string]any{"name": "crm", "url": up.URL})

	s := statelessClient(t, gw, "/mcp", nil)
	if info := s.InitializeResult().ServerInfo; info == nil || info.Name != "mcpgate" {
		t.Errorf("serverInfo = %+v, want mcpgate's (from server/discover's _meta)", info)
	}
	searchThrough(t, s, "crm-search", "eu-west", "acme")
	h := upstreamSaw(t, up, "tools/call")
	if got := h.Get("X-Tenant-Id"); got != "from-sdk-client" {
		t.Errorf("upstream got X-Tenant-Id %q, want the passthrough header", got)
	}
	if got := h.Get("Mcp-Name"); got == "crm-search" {
		t.Error("the client's Mcp-Name reached the upstream: per-hop headers must never be copied")
	}
	if got := h.Get("Mcp-Param-Region"); got != "" && got != "eu-west" {
		t.Errorf("upstream got Mcp-Param-Region %q", got)
	}
	if streamable, _, _ := gw.gateway.OpenSessions(); streamable != 0 {
		t.Errorf("%d Streamable HTTP sessions open, want none for a 2026-07-28 client", streamable)
	}
}

// post sends one JSON-RPC message to path with headers (name, value
// pairs) and the client token; it returns the status and the answer.
func (r *running) post(path, body string, headers ...string) (int, rpcAnswer) {
	r.t.Helper()
	req, err := http.NewRequest("POST", r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+r.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		r.lastSessionID = id
	}
	out, _ := io.ReadAll(resp.Body)
	var a rpcAnswer
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		// The last data line is the answer.
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if d, ok := strings.CutPrefix(lines[i], "data: "); ok {
				out = []byte(d)
				break
			}
		}
	}
	if err := json.Unmarshal(out, &a); err != nil {
		r.t.Fatalf("POST %s: HTTP %d, not JSON-RPC: %s", path, resp.StatusCode, out)
	}
	a.raw = out
	return resp.StatusCode, a
}

type rpcAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
	raw []byte
}

// modernRequest is a 2026-07-28 request body: method, params (an object
// without _meta) and the _meta a client puts in every request.
func modernRequest(method, params string) string {
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	if params == "" || params == "{}" {
		params = "{" + meta + "}"
	} else {
		params = strings.TrimSuffix(params, "}") + "," + meta + "}"
	}
	return `{"jsonrpc":"2.0","id":7,"method":"` + method + `","params":` + params + `}`
}

// TestStatelessHeadersMustMatchTheBody: a 2026-07-28 request whose
// headers do not mirror its body is refused with HTTP 400 and the
// HeaderMismatch error (-32020) naming the header, before any upstream
// sees it; one missing a required _meta member gets -32602 naming it.
func TestStatelessHeadersMustMatchTheBody(t *testing.T) {
	up := searchUpstream(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	call := modernRequest("tools/call", `{"name":"crm-search","arguments":{"region":"eu-west","q":"acme"}}`)
	good := []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "crm-search", "Mcp-Param-Region", "eu-west"}
	with := func(name, value string) []string {
		h := append([]string(nil), good...)
		for i := 0; i < len(h); i += 2 {
			if h[i] == name {
				h[i+1] = value
			}
		}
		return h
	}
	tests := []struct {
		name    string
		body    string
		headers []string
		code    int
		names   string // what the message must name
	}{
		{"wrong Mcp-Name", call, with("Mcp-Name", "search"), protocol.CodeHeaderMismatch, "Mcp-Name"},
		{"wrong Mcp-Param", call, with("Mcp-Param-Region", "us-east"), protocol.CodeHeaderMismatch, "Mcp-Param-Region"},
		{"missing Mcp-Param", call, good[:6], protocol.CodeHeaderMismatch, "Mcp-Param-Region"},
		{"wrong Mcp-Method", call, with("Mcp-Method", "tools/list"), protocol.CodeHeaderMismatch, "Mcp-Method"},
		{"version header differs from _meta", strings.Replace(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`, `"io.modelcontextprotocol/protocolVersion":"2025-11-25"`, 1),
			good, protocol.CodeHeaderMismatch, "MCP-Protocol-Version"},
		{"no clientCapabilities", strings.Replace(call, `,"io.modelcontextprotocol/clientCapabilities":{}`, "", 1), good, -32602, "clientCapabilities"},
		{"no protocolVersion in _meta", strings.Replace(call, `"io.modelcontextprotocol/protocolVersion":"2026-07-28",`, "", 1), good, -32602, "protocolVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := gw.post("/mcp", tt.body, tt.headers...)
			if status != http.StatusBadRequest || a.Error == nil || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.names) {
				t.Fatalf("HTTP %d %s, want 400 with error %d naming %s", status, a.raw, tt.code, tt.names)
			}
			if string(a.ID) != "7" {
				t.Errorf("the error answers id %s, want the request's, 7", a.ID)
			}
		})
	}
	if n := len(requestsOf(up, "tools/call")); n != 0 {
		t.Errorf("the upstream got %d tools/call, want none", n)
	}
	// The same request with matching headers goes through.
	status, a := gw.post("/mcp", call, good...)
	if status != http.StatusOK || a.Error != nil || !strings.Contains(string(a.Result), "found acme in eu-west") {
		t.Fatalf("the matching request: HTTP %d %s", status, a.raw)
	}
}

// TestStatelessDiscoverAndRemovedMethods: server/discover answers with
// the revisions mcpgate speaks, the capabilities initialize answers with,
// mcpgate's identity and instructions; every result carries serverInfo in
// its _meta and resultType complete; ping, removed in 2026-07-28, is
// method-not-found with HTTP 404.
func TestStatelessDiscoverAndRemovedMethods(t *testing.T) {
	up := searchUpstream(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	hop := func(method string) []string {
		return []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", method}
	}
	status, a := gw.post("/mcp", modernRequest("server/discover", ""), hop("server/discover")...)
	if status != http.StatusOK || a.Error != nil {
		t.Fatalf("server/discover: HTTP %d %s", status, a.raw)
	}
	var d struct {
		ResultType        string         `json:"resultType"`
		SupportedVersions []string       `json:"supportedVersions"`
		Capabilities      map[string]any `json:"capabilities"`
		ServerInfo        struct{ Name string }
		Instructions      string                           `json:"instructions"`
		TTLMs             *int                             `json:"ttlMs"`
		CacheScope        string                           `json:"cacheScope"`
		Meta              map[string]struct{ Name string } `json:"_meta"`
	}
	if err := json.Unmarshal(a.Result, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.SupportedVersions) == 0 || d.SupportedVersions[0] != protocol.Version20260728 || !contains(d.SupportedVersions, protocol.Version20251125) {
		t.Errorf("supportedVersions %v, want 2026-07-28 first and the handshake revisions", d.SupportedVersions)
	}
	if d.Capabilities["tools"] == nil || d.ServerInfo.Name != "mcpgate" || !strings.Contains(d.Instructions, "crm") {
		t.Errorf("discover %s: want tools, serverInfo mcpgate and instructions naming crm", a.Result)
	}
	if d.ResultType != "complete" || d.Meta["io.modelcontextprotocol/serverInfo"].Name != "mcpgate" || d.TTLMs == nil || d.CacheScope == "" {
		t.Errorf("discover %s: want resultType complete, _meta serverInfo, ttlMs and cacheScope", a.Result)
	}
	for _, body := range []string{modernRequest("ping", ""), `{"jsonrpc":"2.0","id":7,"method":"ping"}`} { // the go-sdk client's has no _meta
		status, a = gw.post("/mcp", body, hop("ping")...)
		if status != http.StatusNotFound || a.Error == nil || a.Error.Code != -32601 {
			t.Errorf("ping: HTTP %d %s, want 404 with -32601", status, a.raw)
		}
	}
	// An initialize asking for 2026-07-28 (a client falling back) is
	// answered with the newest revision that has one, and a session.
	status, a = gw.post("/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if status != http.StatusOK || !strings.Contains(string(a.Result), `"protocolVersion":"2025-11-25"`) {
		t.Errorf("initialize asking 2026-07-28: HTTP %d %s, want 2025-11-25", status, a.raw)
	}
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// cachingUpstream is a go-sdk server with one tool, name, whose lists
// carry ttlMs and cacheScope as given.
func cachingUpstream(t *testing.T, name string, ttlMs int, scope string) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		SetCacheable: func(_ context.Context, _ mcp.Request, c *mcp.Cacheable) { c.TTLMs, c.CacheScope = ttlMs, scope },
	})
	mcp.AddTool(srv, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestStatelessListsCarryMergedCacheHints: a federated tools/list at
// 2026-07-28 carries the smallest ttlMs of its upstreams', and is private
// when any of theirs is.
func TestStatelessListsCarryMergedCacheHints(t *testing.T) {
	// Started first, so that they close after the gateway, which holds
	// streams open with them.
	long, short := cachingUpstream(t, "long", 30_000, "public"), cachingUpstream(t, "short", 5_000, "private")
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "long", "url": long})
	gw.register(map[string]any{"name": "short", "url": short})
	status, a := gw.post("/mcp", modernRequest("tools/list", ""), "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list")
	if status != http.StatusOK || a.Error != nil {
		t.Fatalf("tools/list: HTTP %d %s", status, a.raw)
	}
	var l struct {
		Tools      []struct{ Name string }
		TTLMs      *int   `json:"ttlMs"`
		CacheScope string `json:"cacheScope"`
	}
	if err := json.Unmarshal(a.Result, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Tools) != 2 || l.TTLMs == nil || *l.TTLMs != 5_000 || l.CacheScope != "private" {
		t.Errorf("tools/list %s: want both tools, ttlMs 5000 (the smaller) and cacheScope private (one is)", a.Result)
	}
}

// TestStatelessListenDeliversListChangedAndUpdates: a 2026-07-28 client's
// subscriptions/listen stream carries the tools list_changed of mcpgate's
// catalogue, and resources/updated for the URI it listed, which mcpgate
// subscribed to on the client's pooled upstream session.
func TestStatelessListenDeliversListChangedAndUpdates(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})

	changed := make(chan struct{}, 8)
	s := statelessClient(t, gw, "/mcp", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	up.AddTool("brand-new")
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no tools list_changed on the subscriptions/listen stream")
	}

	// A listen stream of its own for the resource, over raw HTTP.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	resp := listenRaw(ctx, t, gw, "/mcp", `{"resourceSubscriptions":["test://hello"]}`)
	events := make(chan string, 16)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				events <- string(buf[:n])
			}
			if err != nil {
				close(events)
				return
			}
		}
	}()
	waitFor := func(what string) {
		t.Helper()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the listen stream ended before %s", what)
				}
				if strings.Contains(e, what) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s on the listen stream", what)
			}
		}
	}
	waitFor("notifications/subscriptions/acknowledged")
	if _, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "crm-touch", Arguments: map[string]any{"uri": "test://hello"}}); err != nil {
		t.Fatal(err)
	}
	waitFor("notifications/resources/updated")
}

// TestLegacyAndStatelessClientsSideBySide: a 2025-11-25 client with a
// session and a 2026-07-28 client without one use one gateway at once.
func TestLegacyAndStatelessClientsSideBySide(t *testing.T) {
	up := searchUpstream(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	legacy := sdkClient(t, gw, "/mcp", nil, legacySession, protocol.Version20251125)
	modern := statelessClient(t, gw, "/mcp", nil)
	for _, s := range []*mcp.ClientSession{legacy, modern, legacy} {
		searchThrough(t, s, "crm-search", "eu", "x")
	}
	if streamable, _, _ := gw.gateway.OpenSessions(); streamable != 1 {
		t.Errorf("%d Streamable HTTP sessions, want the legacy client's only", streamable)
	}
}

// TestStatelessClientThroughTheRelay: a 2026-07-28 client uses the relay
// of an upstream on an earlier revision without a session of the front
// door: tools keep the upstream's own names, and its calls go on an
// upstream session pooled for the client. A second instance sharing the
// store serves the same client's next request: nothing ties it to the
// first.
func TestStatelessClientThroughTheRelay(t *testing.T) {
	up := searchUpstream(t)
	db := databases()[1].url(t)
	gw := startGateway(t, db, nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})

	s := statelessClient(t, gw, "/gateways/"+id+"/mcp", nil)
	searchThrough(t, s, "search", "eu", "relay")
	if n := gw.gateway.relay.Sessions(); n != 0 {
		t.Errorf("%d relay sessions, want none", n)
	}

	other := startGateway(t, db, nil)
	other.token = gw.token
	call := modernRequest("tools/call", `{"name":"search","arguments":{"region":"us","q":"elsewhere"}}`)
	status, a := other.post("/gateways/"+id+"/mcp", call, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call",
		"Mcp-Name", "search", "Mcp-Param-Region", "us")
	if status != http.StatusOK || a.Error != nil || !strings.Contains(string(a.Result), "found elsewhere in us") {
		t.Fatalf("the second instance: HTTP %d %s", status, a.raw)
	}
}

// legacySession pins a go-sdk client to MCP 2025-11-25, a revision with a
// session: the tests of what sessions do (sampling, elicitation and roots
// mid-call, GET streams, logging/setLevel) use it, since the go-sdk
// client speaks 2026-07-28 to mcpgate by default.
var legacySession = &mcp.ClientSessionOptions{ProtocolVersion: protocol.Version20251125}

// TestStatelessClientIsAskedByInputRequiredResult: an upstream's sampling
// and elicitation requests in the middle of a 2026-07-28 client's call
// reach the client as InputRequiredResults (MRTR): the go-sdk client
// answers them and retries with inputResponses and the requestState, and
// the upstream, which waited on its session, gets each answer and
// finishes the call.
func TestStatelessClientIsAskedByInputRequiredResult(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	var asked atomic.Int32
	s := statelessClient(t, gw, "/mcp", &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked.Add(1)
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled by the modern client"}}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Add(1)
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "crm-consult", Arguments: map[string]any{"question": "q"}})
	if err != nil {
		t.Fatal(err)
	}
	got := textOf(t, res)
	if !strings.Contains(got, "sampled by the modern client") || !strings.Contains(got, `"action":"decline"`) {
		t.Errorf("the upstream answered %s, want the client's sampling and elicitation answers", got)
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the client was asked %d times, want 2 (sampling, then elicitation)", n)
	}
}

// TestStatelessRequestStateCannotBeForged: a retry whose requestState
// mcpgate did not issue (or issued to another client, or has seen used)
// is refused, naming it, and reaches no upstream.
func TestStatelessRequestStateCannotBeForged(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	for _, state := range []string{"forged", "0123456789abcdef0123456789abcdef.99999999999.00"} {
		body := modernRequest("tools/call", `{"name":"crm-consult","arguments":{"question":"q"},"inputResponses":{"mcpgate-input-1":{"action":"decline"}},"requestState":"`+state+`"}`)
		status, a := gw.post("/mcp", body, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "crm-consult")
		if status != http.StatusBadRequest || a.Error == nil || a.Error.Code != -32602 || !strings.Contains(a.Error.Message, "requestState") { // SEP-2575: -32602 is 400
			t.Errorf("requestState %q: HTTP %d %s, want 400 with -32602 naming requestState", state, status, a.raw)
		}
	}
	if n := len(requestsOf(up, "tools/call")); n != 0 {
		t.Errorf("the upstream got %d tools/call", n)
	}
}

// TestStatelessRequestStateIsUsedOnce: a requestState mcpgate issued
// resumes its call once; the same state again (a replay) is refused.
func TestStatelessRequestStateIsUsedOnce(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	// The client's own retry loop is off: the test answers by hand.
	s := statelessClient(t, gw, "/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}})
	first, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "crm-consult", Arguments: map[string]any{"question": "q"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.RequestState == "" || len(first.InputRequests) != 1 {
		t.Fatalf("want an InputRequiredResult with one input request, got %+v", first)
	}
	var id string
	for k := range first.InputRequests {
		id = k
	}
	retry := &mcp.CallToolParams{Name: "crm-consult", Arguments: map[string]any{"question": "q"}, RequestState: first.RequestState,
		InputResponses: mcp.InputResponseMap{id: &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "by hand"}}}}
	second, err := s.CallTool(t.Context(), retry)
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, second); !strings.Contains(got, "by hand") {
		t.Fatalf("the retry was answered %s, want the call's result with the answer given", got)
	}
	if _, err := s.CallTool(t.Context(), retry); err == nil || !strings.Contains(err.Error(), "requestState") {
		t.Errorf("the same requestState again: %v, want it refused", err)
	}
}

// TestRelayedInitializeFor20260728AsksTheHandshakeRevision: a client that
// asks the relay's initialize for 2026-07-28 (which has none: it fell
// back) has the upstream asked for 2025-11-25, the revision mcpgate
// answers such a client with, not for an older pinned one.
func TestRelayedInitializeFor20260728AsksTheHandshakeRevision(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	before := len(requestsOf(up, "initialize"))
	status, a := gw.post("/gateways/"+id+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if status != http.StatusOK || a.Error != nil {
		t.Fatalf("initialize: HTTP %d %s", status, a.raw)
	}
	asked := requestsOf(up, "initialize")
	if len(asked) <= before || !strings.Contains(asked[len(asked)-1], `"protocolVersion":"2025-11-25"`) {
		t.Errorf("the upstream was asked %v, want protocolVersion 2025-11-25", asked[before:])
	}
}
