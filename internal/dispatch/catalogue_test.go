package dispatch_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// These tests check what the federated catalogue answers by itself —
// initialize, the lists — and where it sends what it does not know, with
// real upstream MCP servers on 127.0.0.1.

// fullRoute is srv registered as name with everything it lists and what it
// announced at initialize, as the pool reads them.
func fullRoute(t *testing.T, name string, srv *mcptest.Server) *dispatch.Route {
	t.Helper()
	r := route(t, name, srv)
	c := r.Caller.(*upstream.Client)
	var announced struct {
		Capabilities json.RawMessage
		Instructions string
	}
	if err := json.Unmarshal(c.InitializeResult(), &announced); err != nil {
		t.Fatalf("initialize result of %s: %v", name, err)
	}
	r.Catalogue.Capabilities, r.Catalogue.Instructions = announced.Capabilities, announced.Instructions
	for _, l := range []struct {
		method, key string
		into        *[]json.RawMessage
	}{
		{"resources/list", "resources", &r.Catalogue.Resources},
		{"resources/templates/list", "resourceTemplates", &r.Catalogue.ResourceTemplates},
		{"prompts/list", "prompts", &r.Catalogue.Prompts},
	} {
		req, _ := jsonrpc.NewRequest(json.RawMessage("1"), l.method, map[string]any{})
		resp, err := c.Call(testContext(t), req, nil, nil)
		if err != nil || resp.Error != nil {
			continue // not offered
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(resp.Result, &body); err != nil {
			t.Fatalf("%s of %s: %v", l.method, name, err)
		}
		if raw, ok := body[l.key]; !ok {
			continue
		} else if err := json.Unmarshal(raw, l.into); err != nil {
			t.Fatalf("%s of %s: %v", l.method, name, err)
		}
	}
	return r
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

// TestUnknownToolOfAKnownUpstreamGetsItsAnswer: a prefixed name whose
// upstream is known but whose tool or prompt the catalogue does not list
// (added since the last listing, or never listed) goes to that upstream,
// under its own name, and its answer comes back as it gave it: a tool that
// exists is called, and an unknown one is answered in the upstream's own
// shape (the go-sdk's -32602, the TypeScript SDK's isError result).
func TestUnknownToolOfAKnownUpstreamGetsItsAnswer(t *testing.T) {
	a := mcptest.NewStreamableHTTP(t)
	// The TypeScript SDK's McpServer answers an unknown tool with a tool
	// result (server/mcp.js, createToolError).
	const tsAnswer = `{"content":[{"type":"text","text":"MCP error -32602: Tool nothing not found"}],"isError":true}`
	ts := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		if req.Method == "tools/call" {
			return jsonrpc.Message{Result: json.RawMessage(tsAnswer)}
		}
		return jsonrpc.Message{Result: json.RawMessage(`{"tools":[]}`)}
	})
	d := newDispatcher(t, nil, route(t, "a", a), route(t, "ts", ts))
	a.AddTool("late") // after the catalogue was read

	if got := toolText(t, handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a-late","arguments":{"text":"hi"}}}`)); got != "hi" {
		t.Errorf("a-late answered %q, want hi from the upstream's tool late", got)
	}

	resp := handle(t, d, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a-nothing"}}`)
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams || resp.Error.Message != `unknown tool "nothing"` {
		t.Errorf("a-nothing: %+v, want the go-sdk upstream's own -32602 unknown tool \"nothing\"", resp.Error)
	}
	if calls := requestsOf(a, "tools/call"); len(calls) != 2 || !strings.Contains(calls[1], `"name":"nothing"`) {
		t.Errorf("upstream a got %v, want the second call under its own name nothing", calls)
	}

	resp = handle(t, d, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ts-nothing"}}`)
	if resp.Error != nil || string(resp.Result) != tsAnswer {
		t.Errorf("ts-nothing: result %s error %+v, want the upstream's isError result byte for byte", resp.Result, resp.Error)
	}

	resp = handle(t, d, `{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"a-nothing"}}`)
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams || resp.Error.Message != `unknown prompt "nothing"` {
		t.Errorf("prompt a-nothing: %+v, want the upstream's own -32602 unknown prompt \"nothing\"", resp.Error)
	}
}

// TestDuplicateResourceURIs: two upstreams that list one resource URI and
// one URI template: the federated lists show each uri once — the first
// upstream in slug order keeps the plain one, the other's is scoped as
// mcpgate://<slug>/<uri> — and every one of them reads from its own
// upstream, under the URI the client asked for.
func TestDuplicateResourceURIs(t *testing.T) {
	a, b := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	d := newDispatcher(t, nil, fullRoute(t, "b", b), fullRoute(t, "a", a))

	uris := func(method, list, key string) []string {
		var body map[string][]map[string]any
		if err := json.Unmarshal(handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"`+method+`"}`).Result, &body); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, item := range body[list] {
			out = append(out, item[key].(string))
		}
		return out
	}
	if got, want := uris("resources/list", "resources", "uri"), []string{"test://hello", "mcpgate://b/test://hello"}; !slices.Equal(got, want) {
		t.Errorf("resources/list uris = %q, want %q", got, want)
	}
	if got, want := uris("resources/templates/list", "resourceTemplates", "uriTemplate"),
		[]string{"test://items/{id}", "mcpgate://b/test://items/{id}"}; !slices.Equal(got, want) {
		t.Errorf("resources/templates/list uriTemplates = %q, want %q", got, want)
	}

	tests := []struct {
		uri      string
		from     *mcptest.Server
		sent     string // the uri the upstream gets
		wantText string
	}{
		{"test://hello", a, "test://hello", "hello"},
		{"mcpgate://b/test://hello", b, "test://hello", "hello"},
		{"test://items/7", a, "test://items/7", "item 7"},
		{"mcpgate://b/test://items/8", b, "test://items/8", "item 8"},
		{"mcpgate://a/test://items/9", a, "test://items/9", "item 9"}, // any upstream's, by its scope
	}
	for _, tt := range tests {
		beforeA, beforeB := len(requestsOf(a, "resources/read")), len(requestsOf(b, "resources/read"))
		resp := handle(t, d, `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"`+tt.uri+`"}}`)
		var r struct {
			Contents []struct{ URI, Text string }
		}
		if resp.Error != nil || json.Unmarshal(resp.Result, &r) != nil || len(r.Contents) != 1 {
			t.Errorf("read %s: result %s error %+v", tt.uri, resp.Result, resp.Error)
			continue
		}
		if r.Contents[0].URI != tt.uri || r.Contents[0].Text != tt.wantText {
			t.Errorf("read %s: contents %+v, want uri %s text %q", tt.uri, r.Contents[0], tt.uri, tt.wantText)
		}
		other, before := b, beforeB
		if tt.from == b {
			other, before = a, beforeA
		}
		if n := len(requestsOf(other, "resources/read")); n != before {
			t.Errorf("read %s reached the other upstream too", tt.uri)
		}
		reads := requestsOf(tt.from, "resources/read")
		if len(reads) == 0 || !strings.Contains(reads[len(reads)-1], `"uri":"`+tt.sent+`"`) {
			t.Errorf("read %s: its upstream got %v, want uri %s", tt.uri, reads, tt.sent)
		}
	}

	// A completion of the scoped template's argument reaches b, naming
	// the template as b knows it.
	resp := handle(t, d, `{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"mcpgate://b/test://items/{id}"},"argument":{"name":"id","value":"1"}}}`)
	if resp.Error != nil {
		t.Errorf("completion of the scoped template: %+v", resp.Error)
	}
	if got := requestsOf(b, "completion/complete"); len(got) != 1 || !strings.Contains(got[0], `"ref":{"type":"ref/resource","uri":"test://items/{id}"}`) {
		t.Errorf("completion of the scoped template: b got %v, want the ref under b's own template", got)
	}
	if got := requestsOf(a, "completion/complete"); len(got) != 0 {
		t.Errorf("completion of b's scoped template reached a: %v", got)
	}

	resp = handle(t, d, `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"mcpgate://c/test://hello"}}`)
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeResourceNotFound {
		t.Errorf("a scope no upstream has: %+v, want -32002", resp.Error)
	}
}

// TestInitializeFederatesCapabilities: initialize announces the union of
// the upstreams' capabilities — the federated lists with listChanged,
// subscribe only when an upstream supports it, completions, logging and
// tasks only when one offers them (tasks to 2025-11-25 clients only),
// nothing mcpgate cannot route (experimental) — and instructions naming
// each upstream and its prefix, quoting each one's own instructions, cut
// at 2 KiB.
func TestInitializeFederatesCapabilities(t *testing.T) {
	sdk := mcptest.NewStreamableHTTP(t, mcptest.WithInstructions("Call echo to hear yourself."))
	long := strings.Repeat("é", 3000) // 6000 bytes, cut on a character boundary
	tasks := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		return jsonrpc.Message{Result: json.RawMessage(`{"tools":[]}`)}
	}, mcptest.WithInstructions(long), mcptest.WithCapabilities(map[string]any{
		"tools":        map[string]any{},
		"resources":    map[string]any{"subscribe": true},
		"tasks":        map[string]any{"list": map[string]any{}, "requests": map[string]any{"tools": map[string]any{"call": map[string]any{}}}},
		"experimental": map[string]any{"x-thing": map[string]any{}},
	}))
	plain := mcptest.NewRaw(t, nil, mcptest.WithCapabilities(map[string]any{"tools": map[string]any{}}))

	initialize := func(d *dispatch.Dispatcher, version string) (map[string]json.RawMessage, string) {
		t.Helper()
		resp := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+version+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		var r struct {
			Capabilities map[string]json.RawMessage
			Instructions string
		}
		if resp.Error != nil || json.Unmarshal(resp.Result, &r) != nil {
			t.Fatalf("initialize: %s %+v", resp.Result, resp.Error)
		}
		return r.Capabilities, r.Instructions
	}
	show := func(caps map[string]json.RawMessage) string {
		b, _ := json.Marshal(caps)
		return string(b)
	}

	unavailable := fullRoute(t, "gone", plain)
	unavailable.Caller, unavailable.Unavailable = nil, "down"
	d := newDispatcher(t, nil, fullRoute(t, "tasks", tasks), fullRoute(t, "sdk", sdk), unavailable)
	caps, text := initialize(d, "2025-11-25")
	want := map[string]string{
		"tools":       `{"listChanged":true}`,
		"resources":   `{"listChanged":true,"subscribe":true}`,
		"prompts":     `{"listChanged":true}`,
		"completions": `{}`,
		"logging":     `{}`,
		"tasks":       `{"list":{},"requests":{"tools":{"call":{}}}}`,
	}
	if len(caps) != len(want) {
		t.Errorf("capabilities %s, want exactly %v", show(caps), want)
	}
	for name, w := range want {
		if got := string(caps[name]); got != w {
			t.Errorf("capabilities.%s = %s, want %s", name, got, w)
		}
	}
	if caps, _ := initialize(d, "2025-06-18"); caps["tasks"] != nil {
		t.Errorf("a 2025-06-18 client is told of tasks: %s", caps["tasks"])
	}

	for _, line := range []string{`- gone: prefix "gone-", slug "gone" (unavailable at the moment)`, `- sdk: prefix "sdk-", slug "sdk"`,
		`- tasks: prefix "tasks-", slug "tasks"`, "Instructions of the server sdk (prefix \"sdk-\"), as it gave them:\nCall echo to hear yourself."} {
		if !strings.Contains(text, line) {
			t.Errorf("instructions lack %q:\n%s", line, text)
		}
	}
	if strings.Index(text, "- gone") > strings.Index(text, "- sdk") || strings.Index(text, "- sdk") > strings.Index(text, "- tasks") {
		t.Errorf("instructions do not name the upstreams in slug order:\n%s", text)
	}
	_, quoted, _ := strings.Cut(text, "Instructions of the server tasks (prefix \"tasks-\"), as it gave them:\n")
	if !utf8.ValidString(quoted) || len(quoted) > 2048 || !strings.HasPrefix(quoted, "éé") || !strings.HasSuffix(quoted, "[…cut by mcpgate]") {
		t.Errorf("the quote of a 6000-byte text is %d bytes (valid UTF-8: %v), ending %q; want at most 2048, marked cut",
			len(quoted), utf8.ValidString(quoted), quoted[max(0, len(quoted)-30):])
	}

	// Only what is offered: no subscribe, completions, logging or tasks.
	caps, _ = initialize(newDispatcher(t, nil, fullRoute(t, "plain", plain)), "2025-11-25")
	if got := string(caps["resources"]); got != `{"listChanged":true}` || caps["completions"] != nil || caps["logging"] != nil || caps["tasks"] != nil {
		t.Errorf("with one upstream offering tools only: capabilities %s", show(caps))
	}
}
