package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// These tests check, with the go-sdk client on /mcp, what the federated
// catalogue answers once the registry and its pool have read real
// upstreams: initialize, resources two upstreams share, and names the
// catalogue does not list.

// federatedSession opens a go-sdk client session on gw's /mcp.
func federatedSession(t *testing.T, gw *running) *mcp.ClientSession {
	t.Helper()
	return connectSDK(t, &mcp.StreamableClientTransport{Endpoint: gw.url + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{gw.token}}}, nil)
}

// TestInitializeAnswersFromTheUpstreams: what a client is told at
// initialize comes from what the registered upstreams announced: their
// names, prefixes and own instructions, and resources.subscribe only once
// an upstream supports it.
func TestInitializeAnswersFromTheUpstreams(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		plain := mcptest.NewRaw(t, func(jsonrpc.Message, http.Header) jsonrpc.Message {
			return jsonrpc.Message{Result: json.RawMessage(`{"resources":[]}`)}
		}, mcptest.WithCapabilities(map[string]any{"resources": map[string]any{}}))
		// mcptest's go-sdk server supports subscriptions (it has a
		// subscribe handler) and gives instructions.
		sdk := mcptest.NewStreamableHTTP(t, mcptest.WithInstructions("Ask alpha-echo to repeat you."))
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "Plain", "url": plain.URL})

		init := federatedSession(t, gw).InitializeResult()
		if caps := init.Capabilities; caps.Resources == nil || caps.Resources.Subscribe || !caps.Resources.ListChanged ||
			caps.Tools == nil || !caps.Tools.ListChanged {
			b, _ := json.Marshal(caps)
			t.Errorf("with an upstream without subscriptions: capabilities %s", b)
		}
		if !strings.Contains(init.Instructions, `- Plain: prefix "plain-", slug "plain"`) {
			t.Errorf("instructions do not name the upstream:\n%s", init.Instructions)
		}

		gw.register(map[string]any{"name": "Alpha", "url": sdk.URL})
		init = federatedSession(t, gw).InitializeResult()
		for _, want := range []string{`- Alpha: prefix "alpha-", slug "alpha"`, `- Plain: prefix "plain-"`,
			"Instructions of the server Alpha (prefix \"alpha-\"), as it gave them:\nAsk alpha-echo to repeat you."} {
			if !strings.Contains(init.Instructions, want) {
				t.Errorf("instructions lack %q:\n%s", want, init.Instructions)
			}
		}
		if caps := init.Capabilities; caps.Resources == nil || !caps.Resources.Subscribe || caps.Completions == nil || caps.Logging == nil {
			b, _ := json.Marshal(caps)
			t.Errorf("with a go-sdk upstream supporting subscriptions, completions and logging: capabilities %s", b)
		}
	})
}

// TestSharedResourceURIThroughTheGateway: two upstreams offering one URI
// are listed once each — the second under mcpgate://<slug>/ — and each is
// read from its own upstream; a tool the catalogue does not list is the
// upstream's to answer, in its own shape.
func TestSharedResourceURIThroughTheGateway(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		one, two := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
		const tsAnswer = "MCP error -32602: Tool nothing not found"
		ts := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
			if req.Method == "tools/call" { // as the TypeScript SDK's McpServer answers
				return jsonrpc.Message{Result: json.RawMessage(`{"content":[{"type":"text","text":"` + tsAnswer + `"}],"isError":true}`)}
			}
			return jsonrpc.Message{Result: json.RawMessage(`{"tools":[]}`)}
		})
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "one", "url": one.URL})
		gw.register(map[string]any{"name": "two", "url": two.URL})
		gw.register(map[string]any{"name": "ts", "url": ts.URL})
		session := federatedSession(t, gw)

		list, err := session.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, r := range list.Resources {
			uris = append(uris, r.URI)
		}
		if want := []string{"test://hello", "mcpgate://two/test://hello"}; !slices.Equal(uris, want) {
			t.Errorf("resources/list uris %q, want %q", uris, want)
		}
		for _, tt := range []struct {
			uri       string
			from, not *mcptest.Server
		}{{"test://hello", one, two}, {"mcpgate://two/test://hello", two, one}} {
			readsFrom, readsNot := len(requestsOf(tt.from, "resources/read")), len(requestsOf(tt.not, "resources/read"))
			res, err := session.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: tt.uri})
			if err != nil || len(res.Contents) != 1 || res.Contents[0].URI != tt.uri || res.Contents[0].Text != "hello" {
				t.Errorf("read %s: %+v %v", tt.uri, res, err)
				continue
			}
			if len(requestsOf(tt.from, "resources/read")) != readsFrom+1 || len(requestsOf(tt.not, "resources/read")) != readsNot {
				t.Errorf("read %s did not go to its own upstream only", tt.uri)
			}
		}

		res, err := session.CallTool(t.Context(), &mcp.CallToolParams{Name: "ts-nothing"})
		if err != nil || !res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != tsAnswer {
			t.Errorf("ts-nothing: %+v %v, want the upstream's own isError result %q", res, err, tsAnswer)
		}
	})
}

// requestsOf returns the bodies of the requests srv received for method.
func requestsOf(srv *mcptest.Server, method string) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.JSONRPCMethod == method {
			out = append(out, string(r.Body))
		}
	}
	return out
}
