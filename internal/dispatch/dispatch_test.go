package dispatch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/passthrough"
)

// These tests drive a Dispatcher with real upstream MCP servers on
// 127.0.0.1, connected with the real upstream client: routing by prefixed
// name, unknown tools, unavailable upstreams, and what a client is told.

// directory is a fixed federated catalogue.
type directory struct {
	ix atomic.Pointer[dispatch.Index]
}

func (d *directory) Index() *dispatch.Index { return d.ix.Load() }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect opens the upstream client of srv; the one place these tests
// call upstream.Connect.
func connect(t *testing.T, srv *mcptest.Server) *upstream.Client {
	t.Helper()
	c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL})
	if err != nil {
		t.Fatalf("connect to %s: %v", srv.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// route is srv registered as name, with its tools listed by the client.
func route(t *testing.T, name string, srv *mcptest.Server) *dispatch.Route {
	t.Helper()
	c := connect(t, srv)
	req, _ := jsonrpc.NewRequest(json.RawMessage("1"), "tools/list", map[string]any{})
	resp, err := c.Call(testContext(t), req, nil, nil)
	if err != nil || resp.Error != nil {
		t.Fatalf("tools/list of %s: %v %v", name, err, resp.Error)
	}
	var list struct{ Tools []json.RawMessage }
	if err := json.Unmarshal(resp.Result, &list); err != nil {
		t.Fatal(err)
	}
	return &dispatch.Route{ID: name, Name: name, Slug: name, Caller: c,
		Upstream:    passthrough.Upstream{Name: name, AuthType: passthrough.AuthNone},
		Credentials: auth.NewUpstreamAuth(passthrough.AuthNone, auth.Credentials{}, nil, nil),
		Catalogue:   dispatch.Catalogue{Tools: list.Tools}}
}

// newDispatcher federates routes under the separator "-".
func newDispatcher(t *testing.T, log *strings.Builder, routes ...*dispatch.Route) *dispatch.Dispatcher {
	t.Helper()
	dir := &directory{}
	dir.ix.Store(dispatch.NewIndex(routes, "-"))
	logger := slog.New(slog.DiscardHandler)
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	// Header passthrough is off: which headers go is the engine's, tested
	// there and end to end.
	policy := passthrough.NewPolicy(passthrough.Settings{})
	return dispatch.New(dispatch.Config{Directory: dir, Logger: logger, Timeout: 2 * time.Second,
		Policy: policy, Resolver: passthrough.NewAllowlistResolver(policy, nil, nil),
		ServerName: "mcpgate", ServerVersion: "test"})
}

// handle decodes raw as a client's message, as every front door does, and
// hands it to d.
func handle(t *testing.T, d *dispatch.Dispatcher, raw string) jsonrpc.Message {
	t.Helper()
	msg, err := jsonrpc.DecodeMessage([]byte(raw))
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	resp, ok := d.Handle(testContext(t), msg, dispatch.Inbound{})
	if !ok {
		t.Fatalf("no answer to %s", raw)
	}
	return resp
}

func toolText(t *testing.T, resp jsonrpc.Message) string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("error %d: %s", resp.Error.Code, resp.Error.Message)
	}
	var r struct {
		Content []struct{ Text string }
		IsError bool
	}
	if err := json.Unmarshal(resp.Result, &r); err != nil || len(r.Content) == 0 {
		t.Fatalf("result %s: %v", resp.Result, err)
	}
	return r.Content[0].Text
}

// calledTools returns the tools/call bodies srv received.
func calledTools(srv *mcptest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		if r.JSONRPCMethod == "tools/call" {
			out = append(out, string(r.Body))
		}
	}
	return out
}

// TestCallRoutesByPrefixedName: a tool's federated name is its upstream's
// slug, the separator and its own name; the call reaches that upstream
// only, under the upstream's own name, with everything else as it came.
func TestCallRoutesByPrefixedName(t *testing.T) {
	a, b := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	d := newDispatcher(t, nil, route(t, "a", a), route(t, "b", b))

	list := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	for _, want := range []string{`"name":"a-echo"`, `"name":"b-echo"`} {
		if !strings.Contains(string(list.Result), want) {
			t.Errorf("tools/list lacks %s: %s", want, list.Result)
		}
	}
	resp := handle(t, d, `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"b-echo","arguments":{"text":"hi"},"x-new":[1, 2]}}`)
	if got := toolText(t, resp); got != "hi" || string(resp.ID) != `"c-1"` {
		t.Errorf("b-echo answered %q under id %s, want hi under \"c-1\"", got, resp.ID)
	}
	if calls := calledTools(a); len(calls) != 0 {
		t.Errorf("upstream a got %v", calls)
	}
	calls := calledTools(b)
	if len(calls) != 1 || !strings.Contains(calls[0], `"name":"echo","arguments":{"text":"hi"},"x-new":[1, 2]`) {
		t.Errorf("upstream b got %v, want one call of echo with the rest of params byte for byte", calls)
	}
}

// TestUnknownTool: a name that begins with no upstream's prefix (or with
// nothing after it) is invalid params naming it, as an MCP server answers
// an unknown tool, and nothing is sent anywhere. (A name with a known
// prefix is that upstream's to answer: see
// TestUnknownToolOfAKnownUpstreamGetsItsAnswer.)
func TestUnknownTool(t *testing.T) {
	a := mcptest.NewStreamableHTTP(t)
	d := newDispatcher(t, nil, route(t, "a", a))
	for _, name := range []string{"c-echo", "echo", "a-", "aa-echo"} {
		resp := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+name+`"}}`)
		if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidParams || resp.Error.Message != `unknown tool "`+name+`"` {
			t.Errorf("%s: %+v, want -32602 unknown tool", name, resp.Error)
		}
	}
	if calls := calledTools(a); len(calls) != 0 {
		t.Errorf("upstream a got %v", calls)
	}
}

// TestUnavailableUpstream: a listed tool of an upstream without a
// connection is "unavailable" — never "unknown tool" — and the reason,
// which names the upstream's address, goes to the log, not the client.
func TestUnavailableUpstream(t *testing.T) {
	a := mcptest.NewStreamableHTTP(t)
	r := route(t, "a", a)
	r.Caller, r.Unavailable = nil, "connect: dial tcp 127.0.0.1:9: connection refused"
	var log strings.Builder
	d := newDispatcher(t, &log, r)
	resp := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a-echo","arguments":{"text":"x"}}}`)
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeUpstreamError || resp.Error.Message != `upstream "a" is unavailable (mcpgate's log has the cause)` {
		t.Errorf("answer %+v, want -32000 saying a is unavailable", resp.Error)
	}
	if !strings.Contains(log.String(), "127.0.0.1:9") {
		t.Errorf("the log lacks the reason: %s", log.String())
	}
}

// TestUpstreamGoneMidway: an upstream that stops answering is "not
// reachable", and its URL is not in what the client is told.
func TestUpstreamGoneMidway(t *testing.T) {
	a := mcptest.NewStreamableHTTP(t)
	d := newDispatcher(t, nil, route(t, "a", a))
	a.Kill()
	resp := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a-echo","arguments":{"text":"x"}}}`)
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeUpstreamError {
		t.Fatalf("answer %+v, want -32000", resp)
	}
	if host := strings.TrimPrefix(a.URL, "http://"); strings.Contains(resp.Error.Message, host) || strings.Contains(resp.Error.Message, "127.0.0.1") {
		t.Errorf("the client is told %q", resp.Error.Message)
	}
	if !strings.Contains(resp.Error.Message, `upstream "a"`) {
		t.Errorf("the client is told %q, which does not name the upstream", resp.Error.Message)
	}
}

// TestDuplicateKeyNeverReachesDispatch: the parse every front door uses
// refuses a message with a repeated key, so the dispatcher never sees it;
// and a message built past that parse is refused by the dispatcher too,
// never routed on one of the names.
func TestDuplicateKeyNeverReachesDispatch(t *testing.T) {
	a := mcptest.NewStreamableHTTP(t)
	d := newDispatcher(t, nil, route(t, "a", a))
	const raw = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a-echo","arguments":{"text":"x"},"name":"a-fail"}}`
	if _, err := jsonrpc.DecodeMessage([]byte(raw)); err == nil || !strings.Contains(err.Error(), `duplicate key "name" in params`) {
		t.Errorf("decode = %v, want it refused naming the key", err)
	}
	msg := jsonrpc.Message{JSONRPC: "2.0", ID: json.RawMessage("1"), Method: "tools/call",
		Params: json.RawMessage(`{"name":"a-echo","arguments":{"text":"x"},"name":"a-fail"}`)}
	resp, _ := d.Handle(testContext(t), msg, dispatch.Inbound{})
	if resp.Error == nil || resp.Error.Code != jsonrpc.CodeInvalidRequest || !strings.Contains(resp.Error.Message, `duplicate key "name"`) {
		t.Errorf("answer %+v, want -32600 naming the key", resp.Error)
	}
	if calls := calledTools(a); len(calls) != 0 {
		t.Errorf("upstream a got %v", calls)
	}
}

// TestInitializeNegotiates: the dispatcher answers initialize with the
// client's revision when mcpgate speaks it, else the newest it speaks.
func TestInitializeNegotiates(t *testing.T) {
	d := newDispatcher(t, nil)
	for _, v := range append(protocol.Versions(), "1999-01-01") { // 2026-07-28 included: it negotiates down
		resp := handle(t, d, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+v+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		var r struct{ ProtocolVersion string }
		if err := json.Unmarshal(resp.Result, &r); err != nil || r.ProtocolVersion != protocol.Negotiate(v) {
			t.Errorf("initialize asking %s answered %s, want %s", v, resp.Result, protocol.Negotiate(v))
		}
	}
}
