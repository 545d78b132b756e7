package gateway

import (
	"os"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestMeasureStatelessAgainstSessionCalls measures, in one run, a
// tools/call through /mcp by a 2026-07-28 client (no session: _meta and
// headers checked on every request, a pooled upstream session looked up)
// against the same call by a 2025-11-25 client on its session, and fails
// when the stateless one costs more than twice as much. It runs only with
// MCPGATE_MEASURE=1: timings on a shared machine are no test of the suite.
func TestMeasureStatelessAgainstSessionCalls(t *testing.T) {
	if os.Getenv("MCPGATE_MEASURE") == "" {
		t.Skip("set MCPGATE_MEASURE=1 to measure")
	}
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	const calls = 300
	measure := func(s *mcp.ClientSession) time.Duration {
		args := &mcp.CallToolParams{Name: "crm-echo", Arguments: map[string]any{"text": "hi"}}
		for range 20 { // warm up: connections, the pooled session
			if _, err := s.CallTool(t.Context(), args); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for range calls {
			if _, err := s.CallTool(t.Context(), args); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start) / calls
	}
	session := sdkClient(t, gw, "/mcp", nil, legacySession, protocol.Version20251125)
	stateless := statelessClient(t, gw, "/mcp", nil)
	var perSession, perStateless time.Duration
	for range 2 { // interleaved, so that neither gets the quieter moment
		perSession += measure(session)
		perStateless += measure(stateless)
	}
	ratio := float64(perStateless) / float64(perSession)
	t.Logf("go-sdk clients, tools/call through /mcp: session (2025-11-25) %v, stateless (2026-07-28) %v per call; ratio %.2f", perSession/2, perStateless/2, ratio)
	if ratio > 2 {
		t.Errorf("a stateless call costs %.2f times a session call", ratio)
	}

	// The same with one raw HTTP client for both, so that only mcpgate's
	// side differs: the session's POSTs against the stateless ones.
	_, init := gw.post("/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if init.Error != nil {
		t.Fatalf("initialize: %s", init.raw)
	}
	sessionID := gw.lastSessionID
	raw := func(body string, headers ...string) time.Duration {
		for range 20 {
			gw.post("/mcp", body, headers...)
		}
		start := time.Now()
		for range calls {
			if status, a := gw.post("/mcp", body, headers...); status != 200 || a.Error != nil {
				t.Fatalf("HTTP %d %s", status, a.raw)
			}
		}
		return time.Since(start) / calls
	}
	legacyBody := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"crm-echo","arguments":{"text":"hi"}}}`
	modernBody := modernRequest("tools/call", `{"name":"crm-echo","arguments":{"text":"hi"}}`)
	var rawSession, rawStateless time.Duration
	for range 2 {
		rawSession += raw(legacyBody, "Mcp-Session-Id", sessionID, "MCP-Protocol-Version", "2025-11-25")
		rawStateless += raw(modernBody, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "crm-echo")
	}
	t.Logf("raw HTTP, tools/call through /mcp: session %v, stateless %v per call; ratio %.2f", rawSession/2, rawStateless/2, float64(rawStateless)/float64(rawSession))
}
