package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// These tests are MCP 2026-07-28 clients of the relay (/gateways/{id}/mcp)
// whose calls need the client's answer mid-call (MRTR, SEP-2322): they get
// what they would get from the upstream directly.

// callAsking calls a tool through endpoint as a 2026-07-28 go-sdk client
// that answers sampling with "sampled by the relayed client" and
// elicitation with accept, name "relayed", and checks that it was asked
// both and that the upstream's answer holds the sampled text and
// elicited (what the upstream reports of the elicitation answer).
func callAsking(t *testing.T, gw *running, endpoint string, params *mcp.CallToolParams, elicited string) {
	t.Helper()
	var asked atomic.Int32
	s := statelessClient(t, gw, endpoint, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked.Add(1)
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "sampled by the relayed client"}}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked.Add(1)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "relayed"}}, nil
		},
	})
	res, err := s.CallTool(t.Context(), params)
	if err != nil {
		t.Fatalf("tools/call %s: %v", params.Name, err)
	}
	got := textOf(t, res)
	if !strings.Contains(got, "sampled by the relayed client") || !strings.Contains(got, elicited) {
		t.Errorf("the upstream answered %s, want the client's sampling and elicitation answers", got)
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the client was asked %d times, want 2 (sampling, elicitation)", n)
	}
}

// TestRelayPassesInputRequiredToAStatelessUpstream: through the relay to
// a 2026-07-28 upstream, the upstream's InputRequiredResult reaches the
// client as the upstream sent it (its own requestState, "s", and its own
// input request keys), and the client's retry with inputResponses and
// that requestState reaches the upstream as it is, which completes the
// call with the client's answers. The retry carries per-hop headers of
// its own hop (Mcp-Name of the upstream's tool).
func TestRelayPassesInputRequiredToAStatelessUpstream(t *testing.T) {
	var saw sync.Map
	up := serveSDK(t, modernServer(), true, &saw)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "modern", "url": up})

	// By hand first: the InputRequiredResult is the upstream's own.
	manual := statelessClient(t, gw, "/gateways/"+id+"/mcp", &mcp.ClientOptions{MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true}})
	first, err := manual.CallTool(t.Context(), &mcp.CallToolParams{Name: "ask"})
	if err != nil {
		t.Fatalf("tools/call ask: %v", err)
	}
	if first.RequestState != "s" || first.InputRequests["model"] == nil || first.InputRequests["user"] == nil {
		t.Fatalf("want the upstream's InputRequiredResult (requestState \"s\", inputs model and user), got state %q inputs %v", first.RequestState, first.InputRequests)
	}

	callAsking(t, gw, "/gateways/"+id+"/mcp", &mcp.CallToolParams{Name: "ask"}, `"relayed"`)
	h, ok := saw.Load("tools/call")
	if !ok {
		t.Fatal("the upstream saw no tools/call")
	}
	hop := h.(http.Header)
	for k, want := range map[string]string{"Mcp-Name": "ask", "Mcp-Protocol-Version": "2026-07-28", "Mcp-Session-Id": "", "Authorization": ""} {
		if got := hop.Get(k); got != want {
			t.Errorf("the upstream's retry had %s %q, want %q (per-hop headers are this hop's, never the client's)", k, got, want)
		}
	}
}

// TestRelayAsksAStatelessClientForAnOlderUpstream: through the relay to
// an upstream of an earlier revision (a session of mcpgate's, pooled for
// the client), the upstream's sampling and elicitation requests mid-call
// reach the 2026-07-28 client as InputRequiredResults of mcpgate's, and
// the call completes with the client's answers.
func TestRelayAsksAStatelessClientForAnOlderUpstream(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	callAsking(t, gw, "/gateways/"+id+"/mcp", &mcp.CallToolParams{Name: "consult", Arguments: map[string]any{"question": "q"}}, `"accept"`)
}
