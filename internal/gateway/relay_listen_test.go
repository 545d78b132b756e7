package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestRelayForwardsListenToAStatelessUpstream: on the relay to a
// 2026-07-28 upstream, the client's subscriptions/listen is the
// upstream's own stream: the upstream gets the listen request with the
// client's filter as it asked it (mcpgate's own relay session asks for
// more), acknowledges it, and its list_changed reach the client on that
// stream under the client's subscriptionId.
func TestRelayForwardsListenToAStatelessUpstream(t *testing.T) {
	srv := modernServer()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	filters := make(chan string, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Method") == "subscriptions/listen" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Params struct {
					Notifications json.RawMessage `json:"notifications"`
				} `json:"params"`
			}
			_ = json.Unmarshal(body, &m)
			filters <- string(m.Params.Notifications)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "modern", "url": up.URL + "/mcp"})

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	resp := listenRaw(ctx, t, gw, "/gateways/"+id+"/mcp", `{"toolsListChanged":true}`)
	lines := bufio.NewScanner(resp.Body)
	next := func(method string) string {
		t.Helper()
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok && strings.Contains(data, `"`+method+`"`) {
				return data
			}
		}
		t.Fatalf("the listen stream ended without %s: %v", method, lines.Err())
		return ""
	}
	next("notifications/subscriptions/acknowledged")
	forwarded := false
	for !forwarded {
		select {
		case f := <-filters:
			forwarded = f == `{"toolsListChanged":true}`
		default:
			t.Fatal("no subscriptions/listen with the client's own filter reached the upstream before the acknowledgement")
		}
	}
	srv.AddTool(&mcp.Tool{Name: "brand-new", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	if data := next("notifications/tools/list_changed"); !strings.Contains(data, `"io.modelcontextprotocol/subscriptionId":7`) {
		t.Errorf("list_changed %s, want the client's subscriptionId, 7", data)
	}
}

// listenRaw opens a 2026-07-28 subscriptions/listen stream of gw's
// client on path (id 7, modernRequest) asking for notifications, over raw
// HTTP, until ctx ends; the test's end closes it.
func listenRaw(ctx context.Context, t *testing.T, gw *running, path, notifications string) *http.Response {
	t.Helper()
	body := modernRequest("subscriptions/listen", `{"notifications":`+notifications+`}`)
	req, err := http.NewRequestWithContext(ctx, "POST", gw.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
		"Authorization": "Bearer " + gw.token, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
