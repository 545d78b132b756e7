package passthrough

import (
	"strings"
	"testing"
)

// TestMCPHopHeadersNeverForwarded: every name of the exported per-hop list,
// in any case, and every Mcp-Param-* header is refused as an MCP per-hop
// header (spec §2.3); names that only resemble them are not.
func TestMCPHopHeadersNeverForwarded(t *testing.T) {
	p := NewPolicy(Settings{})
	names := append(MCPHopHeaders(), MCPParamHeaderPrefix+"Region", "mcp-param-x")
	for _, n := range names {
		for _, spelled := range []string{n, strings.ToLower(n), strings.ToUpper(n)} {
			if !IsMCPHopHeader(spelled) || p.NeverForwarded(spelled) != ReasonMCPHeader {
				t.Errorf("%s: IsMCPHopHeader %v, NeverForwarded %v; want per-hop", spelled, IsMCPHopHeader(spelled), p.NeverForwarded(spelled))
			}
		}
	}
	for _, n := range []string{"Mcp-Param", "Mcp-Names", "X-Mcp-Session", "Mcp", "", "Mcp-Method-X"} {
		if IsMCPHopHeader(n) {
			t.Errorf("IsMCPHopHeader(%q) = true", n)
		}
	}
}
