package upstream_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// TestCallDropsEveryMCPHopHeader: the transport owns every MCP per-hop
// header of the protocol layer's list (the passthrough engine's), not only
// the session and version: a caller's Mcp-Method, Mcp-Name or Mcp-Param-*
// never reaches the upstream, where it would describe another request.
func TestCallDropsEveryMCPHopHeader(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, nil)
			given := http.Header{"X-Tenant-Id": {"acme"}, protocol.HeaderParamPrefix + "Region": {"evil"}}
			for _, h := range protocol.HopHeaders() {
				if h != protocol.HeaderSessionID && h != protocol.HeaderProtocolVersion {
					given[h] = []string{"evil"}
				}
			}
			resp, err := c.Call(testContext(t), toolCall(t, "1", "headers", map[string]any{}, nil), given, nil)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			var seen http.Header
			if err := json.Unmarshal([]byte(text(t, resp)), &seen); err != nil {
				t.Fatalf("headers tool: %v", err)
			}
			if seen.Get("X-Tenant-Id") != "acme" {
				t.Errorf("X-Tenant-Id = %q, want acme", seen.Get("X-Tenant-Id"))
			}
			for name, values := range seen {
				if protocol.IsHopHeader(name) && name != protocol.HeaderSessionID && name != protocol.HeaderProtocolVersion {
					t.Errorf("the upstream got the caller's per-hop header %s: %q", name, values)
				}
			}
		})
	}
}
