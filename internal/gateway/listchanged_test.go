package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestClientsHearOnlyOfListsThatChanged: refreshes that find the same
// catalogue send clients no list_changed; an upstream with tools only,
// registered after them, sends one tools/list_changed and nothing else.
// (Notifications reach a session in order, so any sent for the refreshes
// would arrive before the marker's.)
func TestClientsHearOnlyOfListsThatChanged(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		marker := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
			return jsonrpc.Message{Result: []byte(`{"tools":[{"name":"mark","inputSchema":{"type":"object"}}]}`)}
		})
		gw := startGateway(t, dbURL(t), nil)
		var tools, resources, prompts atomic.Int64
		toolsChanged := make(chan struct{}, 64)
		client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
				tools.Add(1)
				toolsChanged <- struct{}{}
			},
			ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) { resources.Add(1) },
			PromptListChangedHandler:   func(context.Context, *mcp.PromptListChangedRequest) { prompts.Add(1) },
		})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint: gw.url + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{gw.token}},
		}, legacySession)
		if err != nil {
			t.Fatal(err)
		}
		defer session.Close()
		// The SDK opens its GET stream right after initialize; registering
		// until a notification arrives covers the moment it is not open yet.
		var ids []string
		for i := 0; ; i++ {
			ids = append(ids, gw.register(map[string]any{"name": fmt.Sprintf("up%d", i), "url": up.URL}))
			select {
			case <-toolsChanged:
			case <-time.After(500 * time.Millisecond):
				if i == 10 {
					t.Fatal("no tools/list_changed reached the client")
				}
				continue
			}
			break
		}
		deadline := time.Now().Add(10 * time.Second)
		for resources.Load() == 0 || prompts.Load() == 0 { // the same registration's other lists
			if time.Now().After(deadline) {
				t.Fatalf("the registration sent %d resources and %d prompts list_changed, want 1 each", resources.Load(), prompts.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for len(toolsChanged) > 0 {
			<-toolsChanged
		}
		tools.Store(0)
		resources.Store(0)
		prompts.Store(0)

		for range 3 {
			if status, out := gw.do("POST", "/gateways/"+ids[len(ids)-1]+"/tools/refresh", nil); status != http.StatusOK {
				t.Fatalf("refresh: %d %s", status, out)
			}
		}
		gw.register(map[string]any{"name": "marker", "url": marker.URL})
		select {
		case <-toolsChanged:
		case <-time.After(10 * time.Second):
			t.Fatal("the marker's tools/list_changed did not arrive")
		}
		if n, r, p := tools.Load(), resources.Load(), prompts.Load(); n != 1 || r != 0 || p != 0 {
			t.Errorf("after 3 refreshes that changed nothing and one tools-only registration: %d tools, %d resources, %d prompts list_changed; want 1, 0, 0", n, r, p)
		}
	})
}
