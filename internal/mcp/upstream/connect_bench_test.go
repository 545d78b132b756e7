package upstream_test

import (
	"context"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// BenchmarkConnectListening: the lazy open of a per-client upstream
// session that listens (Options.OnNotification), to a go-sdk server at
// 2025-11-25, and its Close: server/discover, initialize, the listening
// GET (whose answer notifications/initialized now waits for), the DELETE.
func BenchmarkConnectListening(b *testing.B) {
	u := startSDKUpstream(b, echoServer(protocol.Version20251125), false, nil)
	for b.Loop() {
		c, err := upstream.Connect(context.Background(), upstream.Options{URL: u.URL, OnNotification: func(jsonrpc.Message) {}})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
