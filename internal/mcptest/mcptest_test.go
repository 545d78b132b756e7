package mcptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

type serverCase struct {
	name      string
	start     func(testing.TB, ...mcptest.Option) *mcptest.Server
	transport func(url string, hc *http.Client) mcp.Transport
}

func servers() []serverCase {
	return []serverCase{
		{"streamable", mcptest.NewStreamableHTTP, func(url string, hc *http.Client) mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: true}
		}},
		{"sse", mcptest.NewSSE, func(url string, hc *http.Client) mcp.Transport {
			return &mcp.SSEClientTransport{Endpoint: url, HTTPClient: hc}
		}},
	}
}

// headerAdder adds headers to every request, as a gateway would.
type headerAdder struct {
	h    http.Header
	next http.RoundTripper
}

func (a headerAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range a.h {
		r.Header[k] = v
	}
	return a.next.RoundTrip(r)
}

func sdkSession(t *testing.T, sc serverCase, srv *mcptest.Server, h http.Header) *mcp.ClientSession {
	t.Helper()
	// The SDK's legacy SSE client ties its event stream to this context:
	// it must outlive the session.
	hc := &http.Client{Transport: headerAdder{h, http.DefaultTransport}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, nil).Connect(t.Context(), sc.transport(srv.URL, hc), nil)
	if err != nil {
		t.Fatalf("SDK client connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolText(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	if len(r.Content) == 0 {
		t.Fatalf("no content in %+v", r)
	}
	tc, ok := r.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content %T, want text", r.Content[0])
	}
	return tc.Text
}

func TestContentThroughTheSDKClient(t *testing.T) {
	for _, sc := range servers() {
		t.Run(sc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv := sc.start(t, mcptest.WithName("content"))
			cs := sdkSession(t, sc, srv, nil)

			if got := cs.InitializeResult().ServerInfo.Name; got != "content" {
				t.Errorf("server name = %q, want content", got)
			}
			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range tools.Tools {
				names = append(names, tool.Name)
				if tool.InputSchema == nil {
					t.Errorf("tool %s has no input schema", tool.Name)
				}
			}
			if got := strings.Join(names, ","); got != "add,ask,consult,echo,fail,headers,impatient,slow,touch" {
				t.Errorf("tools = %s", got)
			}

			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
			if err != nil || toolText(t, r) != "hi" {
				t.Errorf("echo: %v, %v", r, err)
			}
			r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "fail", Arguments: map[string]any{}})
			if err != nil || !r.IsError {
				t.Errorf("fail: %+v, %v; want isError", r, err)
			}
			r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 3.5}})
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(r.StructuredContent); string(b) != `{"sum":5.5}` {
				t.Errorf("add structured content = %s", b)
			}

			res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://hello"})
			if err != nil || res.Contents[0].Text != "hello" {
				t.Errorf("test://hello: %+v, %v", res, err)
			}
			res, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://items/42"})
			if err != nil || res.Contents[0].Text != "item 42" {
				t.Errorf("test://items/42: %+v, %v", res, err)
			}
			templates, err := cs.ListResourceTemplates(ctx, nil)
			if err != nil || len(templates.ResourceTemplates) != 1 || templates.ResourceTemplates[0].URITemplate != "test://items/{id}" {
				t.Errorf("templates: %+v, %v", templates, err)
			}

			p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "Ada"}})
			if err != nil || p.Messages[0].Content.(*mcp.TextContent).Text != "Hello, Ada!" {
				t.Errorf("greet: %+v, %v", p, err)
			}
			c, err := cs.Complete(ctx, &mcp.CompleteParams{
				Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "greet"},
				Argument: mcp.CompleteParamsArgument{Name: "name", Value: "b"},
			})
			if err != nil || strings.Join(c.Completion.Values, ",") != "bob" {
				t.Errorf("complete: %+v, %v", c, err)
			}
		})
	}
}

func TestHeadersToolReportsTheCallsHeaders(t *testing.T) {
	for _, sc := range servers() {
		t.Run(sc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv := sc.start(t)
			cs := sdkSession(t, sc, srv, http.Header{"X-Tenant-Id": {"acme"}})
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "headers", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			var h http.Header
			if err := json.Unmarshal([]byte(toolText(t, r)), &h); err != nil {
				t.Fatal(err)
			}
			if h.Get("X-Tenant-Id") != "acme" || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", h)
			}
			if got := srv.LastHeader("tools/call").Get("X-Tenant-Id"); got != "acme" {
				t.Errorf("LastHeader(tools/call) X-Tenant-Id = %q", got)
			}
			if srv.LastHeader("no/such/method") != nil {
				t.Error("LastHeader of a method never sent is not nil")
			}
		})
	}
}

func TestSlowReportsProgressAndLogs(t *testing.T) {
	for _, sc := range servers() {
		t.Run(sc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv := sc.start(t)
			progress := make(chan float64, 10)
			logs := make(chan any, 10)
			client := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress <- r.Params.Progress },
				LoggingMessageHandler:       func(_ context.Context, r *mcp.LoggingMessageRequest) { logs <- r.Params.Data },
			})
			cs, err := client.Connect(t.Context(), sc.transport(srv.URL, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 1, "steps": 3}}
			params.SetProgressToken("p")
			r, err := cs.CallTool(ctx, params)
			if err != nil || toolText(t, r) != "done" {
				t.Fatalf("slow: %v, %v", r, err)
			}
			for want := 1.0; want <= 3; want++ {
				select {
				case got := <-progress:
					if got != want {
						t.Errorf("progress %v, want %v", got, want)
					}
				case <-ctx.Done():
					t.Fatal("missing progress")
				}
			}
			select {
			case got := <-logs:
				if got != "slow: done after 3 steps" {
					t.Errorf("log = %v", got)
				}
			case <-ctx.Done():
				t.Fatal("missing log message")
			}
		})
	}
}

func TestRecordsRequests(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	sdkSession(t, servers()[0], srv, http.Header{"X-Trace-Id": {"t1"}})
	reqs := srv.Requests()
	// The SDK client may try server/discover (MCP 2026-07-28) first.
	i := slices.IndexFunc(reqs, func(r mcptest.Request) bool { return r.JSONRPCMethod == "initialize" })
	if i < 0 || i+1 >= len(reqs) {
		t.Fatalf("no initialize followed by more in %d requests", len(reqs))
	}
	init := reqs[i]
	if init.Method != http.MethodPost || init.Path != "/mcp" || init.Header.Get("X-Trace-Id") != "t1" || !bytes.Contains(init.Body, []byte(`"initialize"`)) {
		t.Errorf("initialize recorded as %+v", init)
	}
	if reqs[i+1].JSONRPCMethod != "notifications/initialized" {
		t.Errorf("after initialize came %q", reqs[i+1].JSONRPCMethod)
	}
	reqs[i].Header.Set("X-Trace-Id", "changed")
	if srv.Requests()[i].Header.Get("X-Trace-Id") != "t1" {
		t.Error("Requests returns the server's own header maps")
	}
}

// post sends one JSON-RPC message by hand.
func post(t *testing.T, url, body string, h http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func TestOptions(t *testing.T) {
	t.Run("WithRequireAuthorization", func(t *testing.T) {
		srv := mcptest.NewStreamableHTTP(t, mcptest.WithRequireAuthorization("Bearer k"))
		if resp := post(t, srv.URL, initialize, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without: %d, want 401", resp.StatusCode)
		}
		if resp := post(t, srv.URL, initialize, http.Header{"Authorization": {"Bearer k"}}); resp.StatusCode != http.StatusOK {
			t.Errorf("with: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("WithStatus and SetStatus", func(t *testing.T) {
		srv := mcptest.NewSSE(t, mcptest.WithStatus(http.StatusBadGateway))
		if resp := post(t, srv.URL, initialize, nil); resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", resp.StatusCode)
		}
		srv.SetStatus(0)
		if resp := post(t, srv.URL, initialize, nil); resp.StatusCode == http.StatusBadGateway {
			t.Error("SetStatus(0) did not restore service")
		}
	})
	t.Run("WithDelay", func(t *testing.T) {
		srv := mcptest.NewStreamableHTTP(t, mcptest.WithDelay(50*time.Millisecond))
		start := time.Now()
		post(t, srv.URL, initialize, nil)
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("answered after %v, want at least 50ms", d)
		}
	})
	t.Run("WithOnRequest", func(t *testing.T) {
		var seen []string
		srv := mcptest.NewStreamableHTTP(t, mcptest.WithOnRequest(func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			seen = append(seen, string(b))
		}))
		if resp := post(t, srv.URL, initialize, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d: the handler did not get the body back", resp.StatusCode)
		}
		if len(seen) != 1 || seen[0] != initialize {
			t.Errorf("seen = %q", seen)
		}
	})
}

func TestRawServer(t *testing.T) {
	result := `{ "content": [{"type":"hologram","x":1}], "extra": true }`
	srv := mcptest.NewRaw(t, func(req jsonrpc.Message, h http.Header) jsonrpc.Message {
		if req.Method != "tools/call" || h.Get("X-Tenant-Id") != "acme" {
			return jsonrpc.NewError(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "unexpected"))
		}
		return jsonrpc.Message{Result: json.RawMessage(result)}
	})
	resp := post(t, srv.URL, initialize, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(`"protocolVersion":"2025-06-18"`)) {
		t.Errorf("initialize result = %s", body)
	}
	session := http.Header{"Mcp-Session-Id": {sid}, "X-Tenant-Id": {"acme"}}
	if resp := post(t, srv.URL, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session); resp.StatusCode != http.StatusAccepted {
		t.Errorf("notification: %d, want 202", resp.StatusCode)
	}
	resp = post(t, srv.URL, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a"}}`, session)
	body, _ = io.ReadAll(resp.Body)
	if want := `{"jsonrpc":"2.0","id":"x","result":` + result + `}`; string(body) != want {
		t.Errorf("tools/call answer:\n got %s\nwant %s", body, want)
	}
	if resp := post(t, srv.URL, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, http.Header{"Mcp-Session-Id": {"unknown"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown session: %d, want 404", resp.StatusCode)
	}
	srv.ExpireSessions()
	if resp := post(t, srv.URL, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, session); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired session: %d, want 404", resp.StatusCode)
	}
	get, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", get.StatusCode)
	}
	if srv.MCPServer() != nil {
		t.Error("a raw server has an SDK server")
	}
}

func TestKill(t *testing.T) {
	for _, sc := range servers() {
		t.Run(sc.name, func(t *testing.T) {
			srv := sc.start(t)
			sdkSession(t, sc, srv, nil)
			srv.Kill()
			if _, err := http.Post(srv.URL, "application/json", strings.NewReader(initialize)); err == nil {
				t.Error("a killed server still answers")
			}
			srv.Close() // and again at cleanup: idempotent
		})
	}
}
