package upstream_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoServer is a go-sdk server with tool echo, speaking versions.
func echoServer(versions ...string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: versions})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, echoTool)
	return srv
}

// BenchmarkCallByRevision: one tools/call through upstream.Client to a
// go-sdk server of each era on 127.0.0.1, the 2026-07-28 one stateless
// (its _meta and per-hop headers computed per call), the other on its
// session.
func BenchmarkCallByRevision(b *testing.B) {
	for _, tc := range []struct {
		name      string
		version   string
		stateless bool
	}{
		{"2026-07-28", protocol.Version20260728, true},
		{"2025-11-25", protocol.Version20251125, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			u := startSDKUpstream(b, echoServer(tc.version), tc.stateless, nil)
			c, err := upstream.Connect(context.Background(), upstream.Options{URL: u.URL})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if c.ProtocolVersion() != tc.version {
				b.Fatalf("negotiated %s", c.ProtocolVersion())
			}
			req := jsonrpc.Message{ID: json.RawMessage("1"), Method: "tools/call", Params: json.RawMessage(`{"name":"echo","arguments":{"text":"hi"}}`)}
			b.ResetTimer()
			for b.Loop() {
				resp, err := c.Call(context.Background(), req, nil, nil)
				if err != nil || resp.Error != nil {
					b.Fatalf("%v %v", err, resp.Error)
				}
			}
		})
	}
}

// BenchmarkConnectSessionEra: Connect to a go-sdk server at 2025-11-25,
// which answers server/discover without offering 2026-07-28 (what the
// discover-first negotiation costs an older upstream).
func BenchmarkConnectSessionEra(b *testing.B) {
	u := startSDKUpstream(b, echoServer(protocol.Version20251125), false, nil)
	for b.Loop() {
		c, err := upstream.Connect(context.Background(), upstream.Options{URL: u.URL})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
