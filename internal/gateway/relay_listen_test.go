package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestRelayListenBridgesTheUpstreamsChanges: a 2026-07-28 client's
// subscriptions/listen on the relay gets the upstream's own
// notifications/tools/list_changed, and notifications/resources/updated
// for the URI it subscribed, whether the upstream speaks an earlier
// revision (its session's GET stream carries them) or 2026-07-28 (the
// relay session's own subscriptions/listen does).
func TestRelayListenBridgesTheUpstreamsChanges(t *testing.T) {
	type upstreamCase struct {
		url           string
		uri           string
		change, touch func(ctx context.Context, n int) error
	}
	cases := map[string]func(t *testing.T) upstreamCase{
		"2025-11-25": func(t *testing.T) upstreamCase {
			up := mcptest.NewStreamableHTTP(t)
			return upstreamCase{url: up.URL, uri: "test://hello",
				change: func(_ context.Context, n int) error { up.AddTool(fmt.Sprintf("brand-new-%d", n)); return nil },
				touch: func(ctx context.Context, _ int) error {
					return up.MCPServer().ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "test://hello"})
				}}
		},
		"2026-07-28": func(t *testing.T) upstreamCase {
			srv := modernServer()
			return upstreamCase{url: serveSDK(t, srv, true), uri: "test://doc",
				change: func(_ context.Context, n int) error {
					srv.AddTool(&mcp.Tool{Name: fmt.Sprintf("brand-new-%d", n), InputSchema: map[string]any{"type": "object"}},
						func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
							return &mcp.CallToolResult{}, nil
						})
					return nil
				},
				touch: func(ctx context.Context, _ int) error {
					return srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "test://doc"})
				}}
		},
	}
	for name, start := range cases {
		t.Run(name, func(t *testing.T) {
			up := start(t)
			gw := startGateway(t, sqliteURL(t), nil)
			id := gw.register(map[string]any{"name": "crm", "url": up.url})
			changed, updated := make(chan struct{}, 16), make(chan string, 16)
			s := statelessClient(t, gw, "/gateways/"+id+"/mcp", &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
				ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { updated <- req.Params.URI },
			})
			if err := s.Subscribe(t.Context(), &mcp.SubscribeParams{URI: up.uri}); err != nil {
				t.Fatalf("subscribe to %s on the relay: %v", up.uri, err)
			}
			arrives(t, "notifications/tools/list_changed", changed, func(n int) error { return up.change(t.Context(), n) })
			arrives(t, "notifications/resources/updated for "+up.uri, updated, func(n int) error { return up.touch(t.Context(), n) })
		})
	}
}

// arrives makes a change with do until what it causes comes on got: the
// upstream's streams open on their own time, and a change made before
// one is open reaches no one. It tries a bounded number of times.
func arrives[T any](t *testing.T, what string, got <-chan T, do func(n int) error) {
	t.Helper()
	for n := range 10 {
		if err := do(n); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			return
		case <-time.After(time.Second):
		}
	}
	t.Fatalf("no %s reached the client through the relay in 10 tries", what)
}
