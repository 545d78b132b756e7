package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// headerTransport adds headers to every request.
type headerTransport struct {
	add http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.add {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestClientCredentialNeverReachesUpstreams: the value a client
// authenticates to mcpgate with reaches no upstream under any name — not as
// X-Upstream-Authorization (which becomes the upstream's Authorization), not
// through the auth_type none rule, not through an allowlisted header, with
// or without its Bearer scheme — on /rpc, /mcp, /sse, /ws (with the token in
// AUTH_HEADER_NAME or offered as the subprotocol bearer.<token>) and the
// 1:1 relay;
// while the other allowlisted headers still go (spec §2.2-2.3, D4). It runs
// with the default AUTH_HEADER_NAME and with one of its own. The database
// plays no part, so SQLite only.
func TestClientCredentialNeverReachesUpstreams(t *testing.T) {
	for _, authHeader := range []string{"Authorization", "X-Api-Key"} {
		t.Run(authHeader, func(t *testing.T) {
			up := mcptest.NewStreamableHTTP(t)
			gw := startGateway(t, "sqlite:///"+filepath.Join(t.TempDir(), "mcpgate.db"), map[string]string{
				"AUTH_HEADER_NAME":            authHeader,
				"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id,X-Copy,X-Trace-Id,Authorization",
				"PASSTHROUGH_HEADERS_SOURCE":  "env",
			})
			var ownHeader []string // the harness sends Authorization itself
			if authHeader != "Authorization" {
				ownHeader = []string{authHeader, gw.token}
			}
			status, out := gw.do("POST", "/gateways", map[string]any{"name": "open", "url": up.URL, "auth_type": "none"}, ownHeader...)
			var registered struct{ ID string }
			if err := json.Unmarshal(out, &registered); status != http.StatusCreated || err != nil {
				t.Fatalf("register: %d %s", status, out)
			}
			id := registered.ID

			// Every request carries the token in AUTH_HEADER_NAME (the
			// harness puts "Authorization: Bearer <token>" on each one
			// too) and copies of it under other names.
			copies := http.Header{
				"X-Upstream-Authorization": {"Bearer " + gw.token},
				"X-Tenant-Id":              {gw.token},
				"X-Copy":                   {"bearer  " + gw.token},
				"X-Trace-Id":               {"t1"},
			}
			if authHeader != "Authorization" {
				copies.Set(authHeader, gw.token)
			}
			all := http.Header{"Authorization": {"Bearer " + gw.token}}
			for k, v := range copies {
				all[k] = v
			}
			var pairs []string
			for k, v := range copies {
				pairs = append(pairs, k, v[0])
			}

			t.Run("rpc", func(t *testing.T) {
				if res := gw.call("tools/call", map[string]any{"name": "open-echo", "arguments": map[string]any{"text": "x"}}, pairs...); res.Error != nil {
					t.Fatal(res.Error.Message)
				}
			})
			t.Run("mcp", func(t *testing.T) {
				s := connectSDK(t, &mcp.StreamableClientTransport{Endpoint: gw.url + "/mcp",
					HTTPClient: &http.Client{Transport: headerTransport{all}}}, nil)
				callEcho(t, s, "open-echo")
			})
			t.Run("sse", func(t *testing.T) {
				s := connectSDK(t, &mcp.SSEClientTransport{Endpoint: gw.url + "/sse",
					HTTPClient: &http.Client{Transport: headerTransport{all}}}, nil)
				callEcho(t, s, "open-echo")
			})
			t.Run("ws", func(t *testing.T) { callEcho(t, connectWS(t, gw, all, nil), "open-echo") })
			t.Run("ws with the token as subprotocol", func(t *testing.T) {
				h := copies.Clone()
				h.Del(authHeader)
				s := connectSDK(t, &wsTransport{url: wsURL(gw), opts: &websocket.DialOptions{HTTPHeader: h,
					Subprotocols: []string{"mcp", subprotocolTokenPrefix + gw.token}}}, nil)
				callEcho(t, s, "open-echo")
			})
			t.Run("relay", func(t *testing.T) {
				s := connectSDK(t, &mcp.StreamableClientTransport{Endpoint: gw.url + "/gateways/" + id + "/mcp",
					HTTPClient: &http.Client{Transport: headerTransport{all}}}, nil)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil || res.IsError {
					t.Fatalf("call through the relay: %v %+v", err, res)
				}
			})

			calls := 0
			leaks := map[string]int{} // "header in method" -> requests
			for _, req := range up.Requests() {
				for name, vals := range req.Header {
					for _, v := range vals {
						if strings.Contains(v, gw.token) {
							leaks[fmt.Sprintf("%s in %s %s", name, req.Method, req.JSONRPCMethod)]++
						}
					}
				}
				if req.JSONRPCMethod == "tools/call" {
					calls++
					if got := req.Header.Get("X-Trace-Id"); got != "t1" {
						t.Errorf("a tools/call carried X-Trace-Id %q, want t1: the other headers still go", got)
					}
				}
			}
			for where, n := range leaks {
				t.Errorf("the client's mcpgate token reached the upstream as %s (%d requests)", where, n)
			}
			if calls != 6 {
				t.Errorf("the upstream got %d tools/call, want 6 (rpc, mcp, sse, ws twice, relay)", calls)
			}
		})
	}
}
