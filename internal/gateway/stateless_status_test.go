package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStatelessErrorsKeepTheirHTTPStatus: at 2026-07-28 an error's HTTP
// status is part of the answer (SEP-2575: -32601 is 404; -32602, -32021
// and -32022 are 400), so an upstream's MissingRequiredClientCapability
// error reaches the client with 400 through the relay and /mcp alike, not
// with 200; and an initialize sent as a 2026-07-28 request (its _meta
// names the revision) is a removed method, 404 with -32601, while one
// without that _meta stays a handshake (TestStatelessDiscoverAndRemovedMethods).
func TestStatelessErrorsKeepTheirHTTPStatus(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "modern", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: []string{protocol.Version20260728}})
	srv.AddTool(&mcp.Tool{Name: "needs-sampling", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, &jsonrpc.Error{Code: mcp.CodeMissingRequiredClientCapabilities, Message: "this tool needs sampling, which the client did not declare",
				Data: json.RawMessage(`{"requiredCapabilities":{"sampling":{}}}`)}
		})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(up.Close)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "modern", "url": up.URL + "/mcp"})

	for _, door := range []struct{ path, tool string }{{"/gateways/" + id + "/mcp", "needs-sampling"}, {"/mcp", "modern-needs-sampling"}} {
		status, a := gw.post(door.path, modernRequest("tools/call", `{"name":"`+door.tool+`","arguments":{}}`),
			"MCP-Protocol-Version", protocol.Version20260728, "Mcp-Method", "tools/call", "Mcp-Name", door.tool)
		if status != http.StatusBadRequest || a.Error == nil || a.Error.Code != mcp.CodeMissingRequiredClientCapabilities {
			t.Errorf("%s: a -32021 answer came with HTTP %d %s, want 400 with -32021", door.path, status, a.raw)
		}
		status, a = gw.post(door.path, modernRequest("initialize", ""), "MCP-Protocol-Version", protocol.Version20260728, "Mcp-Method", "initialize")
		if status != http.StatusNotFound || a.Error == nil || a.Error.Code != -32601 {
			t.Errorf("%s: a 2026-07-28 initialize got HTTP %d %s, want 404 with -32601", door.path, status, a.raw)
		}
	}
}
