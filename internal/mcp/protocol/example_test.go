package protocol_test

import (
	"fmt"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// A server answers initialize with the client's revision when it has
// initialize, else with the newest that has: 2026-07-28 has none.
func ExampleNegotiate() {
	fmt.Println(protocol.Negotiate("2025-03-26"))
	fmt.Println(protocol.Negotiate("2026-07-28"))
	fmt.Println(protocol.Negotiate("1999-01-01") == protocol.LatestHandshake())
	// Output:
	// 2025-03-26
	// 2025-11-25
	// true
}

// Each hop has its own progress token: the client's is swapped for the
// upstream session's, every other byte kept.
func ExampleSwapProgressToken() {
	params := []byte(`{"name":"slow","_meta":{"progressToken":"client-7"}}`)
	out, old, ok := protocol.SwapProgressToken(params, []byte(`42`))
	fmt.Println(string(out), string(old), ok)
	// Output: {"name":"slow","_meta":{"progressToken":42}} "client-7" true
}

// The MCP per-hop headers belong to one hop, whatever their case.
func ExampleIsHopHeader() {
	fmt.Println(protocol.IsHopHeader("mcp-method"), protocol.IsHopHeader("Mcp-Param-Region"), protocol.IsHopHeader("X-Tenant-Id"))
	// Output: true true false
}
