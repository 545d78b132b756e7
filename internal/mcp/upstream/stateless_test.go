package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A seen request: what reached the upstream, as its HTTP handler saw it.
type seen struct {
	httpMethod string
	method     string // the JSON-RPC method in the body; "" for none
	header     http.Header
	body       []byte
}

// sdkUpstream is a go-sdk server behind its Streamable HTTP handler on
// 127.0.0.1, with every request recorded before the SDK sees it.
type sdkUpstream struct {
	URL    string
	server *mcp.Server

	mu   sync.Mutex
	seen []seen
}

// startSDKUpstream serves srv; stateless serves it as the go-sdk serves
// the 2026-07-28 revision (StreamableHTTPOptions.Stateless). intercept,
// when set, may answer a request itself (true) before the SDK sees it.
func startSDKUpstream(t testing.TB, srv *mcp.Server, stateless bool, intercept func(w http.ResponseWriter, s seen) bool) *sdkUpstream {
	t.Helper()
	u := &sdkUpstream{server: srv}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless: stateless,
		// The go-sdk lets the closing of a 2026-07-28 request's stream end
		// its handler (the revision's cancellation over HTTP) only when
		// asked to.
		PropagateRequestCancellation: stateless,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s := seen{httpMethod: r.Method, header: r.Header.Clone(), body: body}
		if m, err := jsonrpc.DecodeMessage(body); err == nil {
			s.method = m.Method
		}
		u.mu.Lock()
		u.seen = append(u.seen, s)
		u.mu.Unlock()
		if intercept != nil && intercept(w, s) {
			return
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	u.URL = "http://" + ln.Addr().String() + "/mcp"
	return u
}

// requests returns the requests seen so far.
func (u *sdkUpstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// last returns the last request seen of JSON-RPC method.
func (u *sdkUpstream) last(t *testing.T, method string) seen {
	t.Helper()
	rs := u.requests()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].method == method {
			return rs[i]
		}
	}
	t.Fatalf("the upstream saw no %s", method)
	return seen{}
}

// methods lists the JSON-RPC methods seen, in order.
func (u *sdkUpstream) methods() []string {
	var out []string
	for _, r := range u.requests() {
		out = append(out, r.method)
	}
	return out
}

// searchSchema annotates two parameters with x-mcp-header (MCP 2026-07-28
// "Custom Headers from Tool Parameters").
const searchSchema = `{"type":"object","properties":{
	"query":{"type":"string"},
	"region":{"type":"string","x-mcp-header":"Region"},
	"city":{"type":"string","x-mcp-header":"City"}}}`

// newStatelessServer is a go-sdk server that speaks 2026-07-28 only, with:
// tool search (its schema annotated, answers "found"), tool ask (asks for
// sampling and elicitation in an InputRequiredResult, then reports the
// answers), tool again (asks for roots again and again, counting), tool
// block (waits for its context to end, telling started and cancelled), and
// resource test://r.
type statelessServer struct {
	*mcp.Server
	againCalls             chan struct{}
	blockStart, blockEnded chan struct{}
}

func newStatelessServer(t *testing.T) *statelessServer {
	s := &statelessServer{
		Server: mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "2.0"}, &mcp.ServerOptions{
			SupportedProtocolVersions: []string{protocol.Version20260728},
			Instructions:              "ask the crm",
			// Announces resources.subscribe, which listen's
			// resourceSubscriptions needs.
			SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
			UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		}),
		againCalls: make(chan struct{}, 64),
		blockStart: make(chan struct{}, 1),
		blockEnded: make(chan struct{}, 1),
	}
	s.AddTool(&mcp.Tool{Name: "search", InputSchema: json.RawMessage(searchSchema)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "found"}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "ask", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if len(req.Params.InputResponses) == 0 {
				return &mcp.CallToolResult{
					InputRequests: mcp.InputRequestMap{
						"model": &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "6*7?"}}}},
						"user":  &mcp.ElicitParams{Message: "Your name?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)},
					},
					RequestState: "state-1",
				}, nil
			}
			answers, _ := json.Marshal(req.Params.InputResponses)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "state=" + req.Params.RequestState + " answers=" + string(answers)}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "again", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			s.againCalls <- struct{}{}
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"roots": &mcp.ListRootsParams{}}, RequestState: "more"}, nil
		})
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			s.blockStart <- struct{}{}
			<-ctx.Done()
			s.blockEnded <- struct{}{}
			return nil, ctx.Err()
		})
	s.AddResource(&mcp.Resource{URI: "test://r", Name: "r"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "test://r", Text: "r"}}}, nil
		})
	return s
}

// clientCaps are the capabilities of the client behind a per-client
// upstream session: it can sample and elicit.
const clientCaps = `{"sampling":{},"elicitation":{"form":{}},"roots":{}}`

// connectStateless connects a relay-mode Client (as a per-client session
// is) to u.
func connectStateless(t *testing.T, u *sdkUpstream, opts ...func(*upstream.Options)) *upstream.Client {
	t.Helper()
	return connectWith(t, upstream.Options{URL: u.URL, Relay: true, Capabilities: json.RawMessage(clientCaps)}, opts...)
}

func call(t *testing.T, c *upstream.Client, method string, params any, headers http.Header, onNote func(jsonrpc.Message)) jsonrpc.Message {
	t.Helper()
	req, err := jsonrpc.NewRequest(json.RawMessage(`"caller-1"`), method, params)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(testContext(t), req, headers, onNote)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if string(resp.ID) != `"caller-1"` {
		t.Errorf("%s: response id %s, want the caller's", method, resp.ID)
	}
	return resp
}

func TestStatelessUpstreamIsDiscoveredNotInitialized(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u)
	if got := c.ProtocolVersion(); got != protocol.Version20260728 {
		t.Fatalf("ProtocolVersion() = %q, want %s", got, protocol.Version20260728)
	}
	var init struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      struct{ Name, Version string }
		Instructions    string
	}
	if err := json.Unmarshal(c.InitializeResult(), &init); err != nil {
		t.Fatalf("InitializeResult() = %s: %v", c.InitializeResult(), err)
	}
	if init.ServerInfo.Name != "crm" || init.Instructions != "ask the crm" || !bytes.Contains(init.Capabilities, []byte(`"tools"`)) {
		t.Errorf("InitializeResult() = %s, want the discover result's serverInfo, instructions and capabilities", c.InitializeResult())
	}
	if init.ProtocolVersion != upstream.ProtocolVersion {
		t.Errorf("InitializeResult().protocolVersion = %q, want the session-era %s its callers speak", init.ProtocolVersion, upstream.ProtocolVersion)
	}
	if m := u.methods(); len(m) != 1 || m[0] != protocol.MethodDiscover {
		t.Errorf("requests at connect = %q, want only server/discover", m)
	}
}

func TestStatelessRequestsCarryMetaAndPerHopHeaders(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u)

	// A caller's hop headers and _meta describe its own hop, never this one.
	given := http.Header{
		"Mcp-Method":       {"tools/list"},
		"Mcp-Name":         {"crm-search"},
		"Mcp-Param-Region": {"forged"},
		"Mcp-Session-Id":   {"the-clients"},
		"X-Tenant":         {"acme"},
	}
	params := map[string]any{
		"name":      "search",
		"arguments": map[string]any{"query": "q", "region": "eu-west", "city": "Zürich"},
		"_meta":     map[string]any{protocol.MetaProtocolVersion: "1999-01-01", protocol.MetaClientInfo: map[string]string{"name": "caller", "version": "0"}, "keep": "me"},
	}
	resp := call(t, c, "tools/call", params, given, nil)
	if resp.Error != nil || !strings.Contains(string(resp.Result), "found") {
		t.Fatalf("tools/call = %s %v, want found", resp.Result, resp.Error)
	}
	if _, ok := protocol.Meta(resp.Result, protocol.MetaServerInfo); !ok {
		t.Errorf("result %s lost its _meta serverInfo", resp.Result)
	}
	// The schema was not known: one tools/list went first.
	if m := u.methods(); !slices.Equal(m, []string{protocol.MethodDiscover, "tools/list", "tools/call"}) {
		t.Errorf("requests = %q, want discover, tools/list, tools/call", m)
	}
	got := u.last(t, "tools/call")
	want := map[string]string{
		"Mcp-Protocol-Version": protocol.Version20260728,
		"Mcp-Method":           "tools/call",
		"Mcp-Name":             "search",
		"Mcp-Param-Region":     "eu-west",
		"Mcp-Param-City":       "=?base64?WsO8cmljaA==?=",
		"X-Tenant":             "acme",
	}
	for k, v := range want {
		if vs := got.header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("%s = %q, want %q", k, vs, v)
		}
	}
	msg, err := jsonrpc.DecodeMessage(got.body)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := protocol.Meta(msg.Params, protocol.MetaProtocolVersion); string(v) != `"2026-07-28"` {
		t.Errorf("_meta protocolVersion = %s, want 2026-07-28", v)
	}
	if v, _ := protocol.Meta(msg.Params, protocol.MetaClientInfo); !bytes.Contains(v, []byte(`"mcpgate"`)) {
		t.Errorf("_meta clientInfo = %s, want mcpgate's", v)
	}
	if v, _ := protocol.Meta(msg.Params, protocol.MetaClientCapabilities); !bytes.Contains(v, []byte(`"sampling"`)) {
		t.Errorf("_meta clientCapabilities = %s, want the session's", v)
	}
	if v, _ := protocol.Meta(msg.Params, "keep"); string(v) != `"me"` {
		t.Errorf("_meta keep = %s, want the caller's other members kept", v)
	}

	// Another call: the schema is known now, no listing.
	call(t, c, "tools/call", params, nil, nil)
	if n := strings.Count(strings.Join(u.methods(), " "), "tools/list"); n != 1 {
		t.Errorf("tools/list sent %d times, want 1", n)
	}
	// An unknown tool: one listing, then the call without Mcp-Param-*;
	// the next call of it lists no more.
	for range 2 {
		call(t, c, "tools/call", map[string]any{"name": "nosuch", "arguments": map[string]any{"region": "x"}}, nil, nil)
	}
	if n := strings.Count(strings.Join(u.methods(), " "), "tools/list"); n != 2 { // before the caller's own
		t.Errorf("tools/list sent %d times after two calls of an unknown tool, want 2", n)
	}
	if h := u.last(t, "tools/call").header; h.Get("Mcp-Param-Region") != "" || h.Get("Mcp-Name") != "nosuch" {
		t.Errorf("unknown tool's call: Mcp-Param-Region %q, Mcp-Name %q; want none and nosuch", h.Get("Mcp-Param-Region"), h.Get("Mcp-Name"))
	}

	list := call(t, c, "tools/list", map[string]any{}, nil, nil)
	if !bytes.Contains(list.Result, []byte(`"ttlMs":`)) || !bytes.Contains(list.Result, []byte(`"cacheScope":"public"`)) {
		t.Errorf("tools/list result %.200s lost its ttlMs or cacheScope", list.Result)
	}
	call(t, c, "resources/read", map[string]any{"uri": "test://r"}, nil, nil)
	if h := u.last(t, "resources/read").header; h.Get("Mcp-Name") != "test://r" || h.Get("Mcp-Method") != "resources/read" {
		t.Errorf("resources/read: Mcp-Name %q, Mcp-Method %q", h.Get("Mcp-Name"), h.Get("Mcp-Method"))
	}
	if resp := call(t, c, "ping", nil, nil, nil); resp.Error != nil || string(resp.Result) != "{}" {
		t.Errorf("ping = %s %v, want an empty result from the Client itself", resp.Result, resp.Error)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, r := range u.requests() {
		if r.header.Get("Mcp-Session-Id") != "" || r.httpMethod != http.MethodPost || r.method == "ping" || r.method == "initialize" || r.method == "notifications/initialized" {
			t.Errorf("%s %s with Mcp-Session-Id %q: a stateless upstream gets POSTs of its revision only", r.httpMethod, r.method, r.header.Get("Mcp-Session-Id"))
		}
	}
}

func TestSessionEraUpstreamsNegotiateTheirRevision(t *testing.T) {
	for _, version := range []string{protocol.Version20251125, protocol.Version20250618} {
		t.Run(version, func(t *testing.T) {
			srv := mcp.NewServer(&mcp.Implementation{Name: "old", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{version}})
			mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, echoTool)
			u := startSDKUpstream(t, srv, false, nil)
			c := connectStateless(t, u)
			if got := c.ProtocolVersion(); got != version {
				t.Errorf("ProtocolVersion() = %q, want %q", got, version)
			}
			if m := u.methods(); len(m) < 2 || m[0] != protocol.MethodDiscover || m[1] != "initialize" {
				t.Errorf("requests = %q, want server/discover, then initialize", m)
			}
			if !bytes.Contains(u.last(t, "initialize").body, []byte(`"protocolVersion":"2025-11-25"`)) {
				t.Errorf("initialize %s does not ask for 2025-11-25 first", u.last(t, "initialize").body)
			}
			resp := call(t, c, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"text": "hi"}}, nil, nil)
			if !strings.Contains(string(resp.Result), "hi") {
				t.Errorf("tools/call = %s", resp.Result)
			}
			if h := u.last(t, "tools/call").header; h.Get("Mcp-Session-Id") == "" || h.Get("Mcp-Protocol-Version") != version {
				t.Errorf("tools/call: Mcp-Session-Id %q, MCP-Protocol-Version %q; want the session's", h.Get("Mcp-Session-Id"), h.Get("Mcp-Protocol-Version"))
			}
		})
	}
}

func echoTool(_ context.Context, _ *mcp.CallToolRequest, in struct {
	Text string `json:"text"`
}) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
}

// warnings counts the log records at Warn and above.
type warnings struct {
	mu sync.Mutex
	n  []string
}

func (w *warnings) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("level=WARN")) || bytes.Contains(p, []byte("level=ERROR")) {
		w.n = append(w.n, string(p))
	}
	return len(p), nil
}

func TestDiscoverRefusedFallsBackToInitializeQuietly(t *testing.T) {
	refusals := map[string]func(w http.ResponseWriter){
		"-32601": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":0,"error":{"code":-32601,"message":"Method not found"}}`)
		},
		"404": func(w http.ResponseWriter) { http.NotFound(w, nil) },
		"405": func(w http.ResponseWriter) { w.WriteHeader(http.StatusMethodNotAllowed) },
		"400": func(w http.ResponseWriter) { http.Error(w, "no session", http.StatusBadRequest) },
		"not JSON": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>hello</html>")
		},
		"no 2026-07-28 offered": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":0,"result":{"supportedVersions":["2025-11-25"],"capabilities":{}}}`)
		},
	}
	for name, refuse := range refusals {
		t.Run(name, func(t *testing.T) {
			srv := mcp.NewServer(&mcp.Implementation{Name: "old", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{protocol.Version20251125}})
			u := startSDKUpstream(t, srv, false, func(w http.ResponseWriter, s seen) bool {
				if s.method != protocol.MethodDiscover {
					return false
				}
				refuse(w)
				return true
			})
			var logs warnings
			start := time.Now()
			c := connectStateless(t, u, func(o *upstream.Options) {
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Connect took %v", took)
			}
			if c.ProtocolVersion() != protocol.Version20251125 {
				t.Errorf("ProtocolVersion() = %q, want 2025-11-25", c.ProtocolVersion())
			}
			if len(logs.n) > 0 {
				t.Errorf("the fallback logged %q, want nothing at warn or above", logs.n)
			}
		})
	}
}

func TestInputRequiredIsFulfilledThroughTheCaller(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u)
	var asked []string
	answer := func(m jsonrpc.Message) {
		if !m.IsRequest() {
			return
		}
		asked = append(asked, m.Method)
		var resp jsonrpc.Message
		switch m.Method {
		case "sampling/createMessage":
			resp, _ = jsonrpc.NewResult(m.ID, map[string]any{"role": "assistant", "model": "m", "content": map[string]string{"type": "text", "text": "forty-two"}})
		case "elicitation/create":
			resp, _ = jsonrpc.NewResult(m.ID, map[string]any{"action": "accept", "content": map[string]string{"name": "Ada"}})
		}
		go func() { // as a client answers: later, on its own request
			if err := c.Respond(context.Background(), resp, nil); err != nil {
				t.Errorf("Respond: %v", err)
			}
		}()
	}
	resp := call(t, c, "tools/call", map[string]any{"name": "ask"}, nil, answer)
	if resp.Error != nil {
		t.Fatalf("tools/call ask: %v", resp.Error)
	}
	text := string(resp.Result)
	for _, want := range []string{"state=state-1", "forty-two", "Ada"} {
		if !strings.Contains(text, want) {
			t.Errorf("result %s lacks %q", text, want)
		}
	}
	if !slices.Equal(asked, []string{"sampling/createMessage", "elicitation/create"}) {
		t.Errorf("the caller was asked %q, want sampling then elicitation", asked)
	}
	if n := strings.Count(strings.Join(u.methods(), " "), "tools/call"); n != 2 {
		t.Errorf("tools/call sent %d times, want 2 (the call and its retry)", n)
	}
}

func TestInputRefusedByTheClientFailsTheCall(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u)
	resp := call(t, c, "tools/call", map[string]any{"name": "ask"}, nil, func(m jsonrpc.Message) {
		if m.IsRequest() {
			go c.Respond(context.Background(), jsonrpc.NewError(m.ID, jsonrpc.Errorf(-1, "user said no")), nil)
		}
	})
	if resp.Error == nil || resp.Error.Code != -1 || !strings.Contains(resp.Error.Message, "user said no") {
		t.Fatalf("tools/call = %s %v, want the client's error -1", resp.Result, resp.Error)
	}
}

func TestInputRoundsAreBounded(t *testing.T) {
	s := newStatelessServer(t)
	u := startSDKUpstream(t, s.Server, true, nil)
	c := connectStateless(t, u)
	resp := call(t, c, "tools/call", map[string]any{"name": "again"}, nil, func(m jsonrpc.Message) {
		if m.IsRequest() {
			r, _ := jsonrpc.NewResult(m.ID, map[string]any{"roots": []any{}})
			go c.Respond(context.Background(), r, nil)
		}
	})
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInternalError || !strings.Contains(resp.Error.Message, "16 rounds") {
		t.Fatalf("tools/call again = %s %v, want an internal error naming the limit", resp.Result, resp.Error)
	}
	if len(s.againCalls) != upstream.MaxInputRounds {
		t.Errorf("the tool ran %d times, want %d", len(s.againCalls), upstream.MaxInputRounds)
	}
}

func TestPassInputRequiredReturnsItRaw(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u, func(o *upstream.Options) { o.PassInputRequired = true })
	resp := call(t, c, "tools/call", map[string]any{"name": "ask"}, nil, func(m jsonrpc.Message) {
		if m.IsRequest() {
			t.Errorf("the caller was asked %s; with PassInputRequired it answers the result itself", m.Method)
		}
	})
	if rt, _ := jsonrpc.StringMember(resp.Result, "resultType"); rt != protocol.ResultTypeInputRequired {
		t.Fatalf("result %s, want the InputRequiredResult", resp.Result)
	}
	if st, _ := jsonrpc.StringMember(resp.Result, "requestState"); st != "state-1" {
		t.Errorf("requestState %q, want the upstream's", st)
	}
}

func TestListenDeliversSubscribedUpdatesAndListChanged(t *testing.T) {
	s := newStatelessServer(t)
	u := startSDKUpstream(t, s.Server, true, nil)
	notes := make(chan jsonrpc.Message, 16)
	c := connectStateless(t, u, func(o *upstream.Options) { o.OnNotification = func(m jsonrpc.Message) { notes <- m } })

	resp := call(t, c, "resources/subscribe", map[string]string{"uri": "test://r"}, nil, nil)
	if resp.Error != nil || string(resp.Result) != "{}" {
		t.Fatalf("resources/subscribe = %s %v, want an empty result", resp.Result, resp.Error)
	}
	if n := strings.Count(strings.Join(u.methods(), " "), "resources/subscribe"); n != 0 {
		t.Errorf("resources/subscribe reached a 2026-07-28 upstream %d times", n)
	}
	if !bytes.Contains(u.last(t, protocol.MethodListen).body, []byte(`"resourceSubscriptions":["test://r"]`)) {
		t.Errorf("listen %s does not subscribe test://r", u.last(t, protocol.MethodListen).body)
	}
	if err := s.ResourceUpdated(testContext(t), &mcp.ResourceUpdatedNotificationParams{URI: "test://r"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, notes, "notifications/resources/updated", "test://r")
	s.AddTool(&mcp.Tool{Name: "late", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	waitFor(t, notes, "notifications/tools/list_changed", "")

	call(t, c, "resources/unsubscribe", map[string]string{"uri": "test://r"}, nil, nil)
	if body := u.last(t, protocol.MethodListen).body; bytes.Contains(body, []byte("test://r")) {
		t.Errorf("listen after unsubscribe %s still subscribes test://r", body)
	}
}

// waitFor reads notes until a notification of method (whose params hold
// contains) arrives, for at most 10s.
func waitFor(t *testing.T, notes <-chan jsonrpc.Message, method, contains string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-notes:
			if m.Method == method && strings.Contains(string(m.Params), contains) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s arrived", method)
		}
	}
}

func TestCancelledStatelessCallStopsTheUpstreamHandler(t *testing.T) {
	s := newStatelessServer(t)
	u := startSDKUpstream(t, s.Server, true, nil)
	c := connectStateless(t, u)
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		req, _ := jsonrpc.NewRequest(json.RawMessage("1"), "tools/call", map[string]any{"name": "block"})
		_, err := c.Call(ctx, req, nil, nil)
		done <- err
	}()
	select {
	case <-s.blockStart:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool did not start")
	}
	cancel()
	select {
	case <-s.blockEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's handler did not stop when the call was cancelled")
	}
	if err := <-done; err == nil {
		t.Error("the cancelled Call returned no error")
	}
	if n := strings.Count(strings.Join(u.methods(), " "), "notifications/cancelled"); n != 0 {
		t.Errorf("notifications/cancelled sent %d times; over HTTP the closed stream is the cancellation", n)
	}
}

// TestStatelessOwnHeadersGoOnMcpgatesOwnRequests: the upstream's own
// credentials (Options.Headers) go on server/discover and on the listen
// request, which mcpgate makes for itself, and never on a caller's call
// nor on the tools/list made on its behalf (spec §5).
func TestStatelessOwnHeadersGoOnMcpgatesOwnRequests(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	c := connectStateless(t, u, func(o *upstream.Options) {
		o.Headers = upstream.FixedHeaders(http.Header{"Authorization": {"Bearer upstream-own"}})
		o.OnNotification = func(jsonrpc.Message) {}
	})
	call(t, c, "tools/call", map[string]any{"name": "search", "arguments": map[string]any{"query": "q"}}, http.Header{"X-Caller": {"1"}}, nil)
	for _, r := range u.requests() {
		own := r.method == protocol.MethodDiscover || r.method == protocol.MethodListen
		if got := r.header.Get("Authorization"); (got == "Bearer upstream-own") != own {
			t.Errorf("%s carried Authorization %q; want the upstream's own on discover and listen only", r.method, got)
		}
		if got := r.header.Get("X-Caller"); (got == "1") == own {
			t.Errorf("%s carried X-Caller %q; want the caller's headers on its call and the listing for it only", r.method, got)
		}
	}
	if m := u.methods(); !slices.Contains(m, protocol.MethodListen) || !slices.Contains(m, "tools/list") {
		t.Errorf("requests %q, want a listen request and a tools/list among them", m)
	}
}

// TestStatelessCloseStopsEveryGoroutine: a Client of a 2026-07-28 upstream
// with its listen request open leaves nothing running after Close.
func TestStatelessCloseStopsEveryGoroutine(t *testing.T) {
	u := startSDKUpstream(t, newStatelessServer(t).Server, true, nil)
	noGoroutineLeak(t, func() {
		c, err := upstream.Connect(testContext(t), upstream.Options{URL: u.URL, OnNotification: func(jsonrpc.Message) {}})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		call(t, c, "tools/call", map[string]any{"name": "search", "arguments": map[string]any{"query": "q"}}, nil, nil)
		c.Close()
	})
}
