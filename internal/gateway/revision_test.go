package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveSDK serves a go-sdk server over Streamable HTTP on 127.0.0.1 until
// the test ends; stateless as the go-sdk serves the 2026-07-28 revision.
func serveSDK(t *testing.T, srv *mcp.Server, stateless bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: stateless}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// sdkServer is a go-sdk server speaking only the given revisions, with one
// tool, echo.
func sdkServer(versions ...string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "sdk", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: versions})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	return srv
}

// TestGatewaysShowTheNegotiatedRevision: each upstream's negotiated MCP
// revision is in GET /gateways (and GET /gateways/{id}): 2026-07-28 for a
// stateless upstream, reached by server/discover, and the revision an older
// one answered initialize with; a client of /rpc calls either.
func TestGatewaysShowTheNegotiatedRevision(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), nil)
		ids := map[string]string{
			"modern": gw.register(map[string]any{"name": "modern", "url": serveSDK(t, sdkServer(protocol.Version20260728), true)}),
			"older":  gw.register(map[string]any{"name": "older", "url": serveSDK(t, sdkServer(protocol.Version20250618), false)}),
		}
		want := map[string]string{"modern": protocol.Version20260728, "older": protocol.Version20250618}

		status, out := gw.do("GET", "/gateways", nil)
		if status != http.StatusOK {
			t.Fatalf("GET /gateways: %d %s", status, out)
		}
		var views []struct {
			Name            string `json:"name"`
			ProtocolVersion string `json:"protocol_version"`
		}
		if err := json.Unmarshal(out, &views); err != nil {
			t.Fatalf("GET /gateways: %v in %s", err, out)
		}
		for _, v := range views {
			if v.ProtocolVersion != want[v.Name] {
				t.Errorf("%s: protocol_version %q, want %q", v.Name, v.ProtocolVersion, want[v.Name])
			}
		}
		if status, out := gw.do("GET", "/gateways/"+ids["modern"], nil); status != http.StatusOK || !strings.Contains(string(out), `"protocol_version":"2026-07-28"`) {
			t.Errorf("GET /gateways/{id}: %d %s", status, out)
		}
		for name := range want {
			res := gw.call("tools/call", map[string]any{"name": name + "-echo", "arguments": map[string]any{"text": "via " + name}})
			if res.Error != nil || !strings.Contains(string(res.Result), "via "+name) {
				t.Errorf("tools/call %s-echo: %s %+v", name, res.Result, res.Error)
			}
		}
	})
}
