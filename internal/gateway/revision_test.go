package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveSDK serves a go-sdk server over Streamable HTTP on 127.0.0.1 until
// the test ends; stateless as the go-sdk serves the 2026-07-28 revision.
// The headers of the last request of each Mcp-Method go to saw, if given.
func serveSDK(t *testing.T, srv *mcp.Server, stateless bool, saw ...*sync.Map) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: stateless})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range saw {
			m.Store(r.Header.Get("Mcp-Method"), r.Header.Clone())
		}
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// sdkServer is a go-sdk server speaking only the given revisions, with one
// tool, echo, whose text is mirrored into Mcp-Param-Text (x-mcp-header).
func sdkServer(versions ...string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "sdk", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: versions})
	srv.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string","x-mcp-header":"Text"}}}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var in struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil
		})
	return srv
}

// TestGatewaysShowTheNegotiatedRevision: each upstream's negotiated MCP
// revision is in GET /gateways (and GET /gateways/{id}): 2026-07-28 for a
// stateless upstream, reached by server/discover, and the revision an older
// one answered initialize with; a client of /rpc calls either, and the
// stateless one gets the per-hop headers of its own hop: its own tool name
// in Mcp-Name whatever the client sent, Mcp-Param-* from its schema.
func TestGatewaysShowTheNegotiatedRevision(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		// Allowlisted, and still the client's per-hop headers go no further
		// (spec §2.3).
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": `["Mcp-Method","Mcp-Name","Mcp-Param-Text"]`})
		var saw sync.Map
		ids := map[string]string{
			"modern": gw.register(map[string]any{"name": "modern", "url": serveSDK(t, sdkServer(protocol.Version20260728), true, &saw)}),
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
			res := gw.call("tools/call", map[string]any{"name": name + "-echo", "arguments": map[string]any{"text": "via " + name}},
				"Mcp-Method", "tools/call", "Mcp-Name", name+"-echo", "Mcp-Param-Text", "forged")
			if res.Error != nil || !strings.Contains(string(res.Result), "via "+name) {
				t.Errorf("tools/call %s-echo: %s %+v", name, res.Result, res.Error)
			}
		}
		v, ok := saw.Load("tools/call")
		if !ok {
			t.Fatal("the stateless upstream saw no tools/call")
		}
		h := v.(http.Header)
		for k, want := range map[string]string{"Mcp-Name": "echo", "Mcp-Param-Text": "via modern", "Mcp-Protocol-Version": protocol.Version20260728, "Mcp-Session-Id": ""} {
			if got := h.Get(k); got != want || len(h.Values(k)) > 1 {
				t.Errorf("the stateless upstream's tools/call: %s %q, want %q", k, h.Values(k), want)
			}
		}
	})
}

// modernServer is a go-sdk server speaking 2026-07-28 only, with tool ask
// (which asks for sampling and elicitation in an InputRequiredResult, then
// reports the answers) and resource test://doc, whose subscriptions it
// announces.
func modernServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "modern", Version: "1"}, &mcp.ServerOptions{
		SupportedProtocolVersions: []string{protocol.Version20260728},
		SubscribeHandler:          func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler:        func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	srv.AddTool(&mcp.Tool{Name: "ask", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if len(req.Params.InputResponses) == 0 {
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
					"model": &mcp.CreateMessageParams{MaxTokens: 5, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}},
					"user":  &mcp.ElicitParams{Message: "name?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)},
				}, RequestState: "s"}, nil
			}
			answers, _ := json.Marshal(req.Params.InputResponses)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(answers)}}}, nil
		})
	srv.AddResource(&mcp.Resource{URI: "test://doc", Name: "doc"},
		func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "test://doc", Text: "doc"}}}, nil
		})
	return srv
}

// TestOlderClientsReachAStatelessUpstream: go-sdk clients at 2025-11-25
// and 2025-06-18, federated (/mcp) and through the relay, call a tool of a
// 2026-07-28 upstream that asks for sampling and elicitation mid-call (each
// client is asked on its own session and the call completes), and
// subscribe to its resource (the update reaches them).
func TestOlderClientsReachAStatelessUpstream(t *testing.T) {
	srv := modernServer()
	gw := startGateway(t, "sqlite:///"+t.TempDir()+"/mcpgate.db", nil)
	id := gw.register(map[string]any{"name": "modern", "url": serveSDK(t, srv, true)})
	doors := map[string]struct{ endpoint, tool string }{
		"federated": {"/mcp", "modern-ask"},
		"relay":     {"/gateways/" + id + "/mcp", "ask"},
	}
	for door, d := range doors {
		for _, version := range []string{protocol.Version20251125, protocol.Version20250618} {
			t.Run(door+"/"+version, func(t *testing.T) {
				who := door + "-" + version
				updated := make(chan string, 4)
				client := mcp.NewClient(&mcp.Implementation{Name: "older", Version: "1"}, &mcp.ClientOptions{
					CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
						return &mcp.CreateMessageResult{Role: "assistant", Model: "m", Content: &mcp.TextContent{Text: "sampled by " + who}}, nil
					},
					ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
						return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "elicited by " + who}}, nil
					},
					ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
						updated <- req.Params.URI
					},
				})
				session, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: gw.url + d.endpoint,
					HTTPClient: &http.Client{Transport: bearerTransport{gw.token}}}, &mcp.ClientSessionOptions{ProtocolVersion: version})
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				defer session.Close()
				if got := session.InitializeResult().ProtocolVersion; got != version {
					t.Errorf("negotiated %q with mcpgate, want %q", got, version)
				}
				res, err := session.CallTool(t.Context(), &mcp.CallToolParams{Name: d.tool})
				if err != nil {
					t.Fatalf("tools/call %s: %v", d.tool, err)
				}
				text := ""
				if len(res.Content) > 0 {
					text = res.Content[0].(*mcp.TextContent).Text
				}
				for _, want := range []string{"sampled by " + who, "elicited by " + who} {
					if !strings.Contains(text, want) {
						t.Errorf("tools/call %s = %q, want %q in it", d.tool, text, want)
					}
				}
				if err := session.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "test://doc"}); err != nil {
					t.Fatalf("resources/subscribe: %v", err)
				}
				if err := srv.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "test://doc"}); err != nil {
					t.Fatal(err)
				}
				select {
				case uri := <-updated:
					if uri != "test://doc" {
						t.Errorf("resources/updated for %q", uri)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no notifications/resources/updated reached the client")
				}
			})
		}
	}
}
