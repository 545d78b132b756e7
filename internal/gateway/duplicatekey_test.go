package gateway

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestDuplicateKeysRefusedOnEveryFrontDoor: a tools/call whose params name
// one tool first and another last — routing once read the first, the
// upstream runs the last — is refused with -32600 naming the key, on every
// front door, and never reaches an upstream.
func TestDuplicateKeysRefusedOnEveryFrontDoor(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "a", "url": up.URL})
	const twoNames = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a-echo","arguments":{"text":"x"},"name":"fail"}}`
	const relayTwoNames = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"name":"fail"}}`
	initialize := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
		"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
	auth := "Bearer " + gw.token

	streamable := func(path, body string) func(t *testing.T) string {
		return func(t *testing.T) string {
			session := openSessionAt(t, gw, path, initialize)
			_, out := gw.send("POST", path, body, "Content-Type", "application/json",
				"Accept", "application/json, text/event-stream", "Mcp-Session-Id", session)
			return out
		}
	}
	// sse posts body on an initialized legacy SSE session of path and
	// returns what the POST answered and, when it was accepted, the
	// stream's next message.
	sse := func(path, body string) func(t *testing.T) string {
		return func(t *testing.T) string {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", gw.url+path, nil)
			req.Header.Set("Authorization", auth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			endpoint, err := readEndpoint(br)
			if err != nil {
				t.Fatal(err)
			}
			// initialize first, so that the relay has its upstream session.
			if status, out := gw.send("POST", endpoint, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
				"Content-Type", "application/json"); status >= 300 {
				t.Fatalf("initialize: %d %s", status, out)
			}
			if e, err := mcptest.ReadEvent(br); err != nil || !strings.Contains(e.Data, `"protocolVersion"`) {
				t.Fatalf("initialize answered %+v, %v", e, err)
			}
			status, out := gw.send("POST", endpoint, body, "Content-Type", "application/json")
			if status >= 300 {
				return out
			}
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				t.Fatalf("no answer on the stream: %v", err)
			}
			return e.Data
		}
	}
	for _, door := range []struct {
		name string
		send func(t *testing.T) string
	}{
		{"/mcp", streamable("/mcp", twoNames)},
		{"/rpc", func(t *testing.T) string {
			_, out := gw.send("POST", "/rpc", twoNames, "Content-Type", "application/json")
			return out
		}},
		{"/sse and /message", sse("/sse", twoNames)},
		{"/ws", func(t *testing.T) string {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, wsURL(gw), &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {auth}}, Subprotocols: []string{"mcp"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			if err := conn.Write(ctx, websocket.MessageText, []byte(twoNames)); err != nil {
				t.Fatal(err)
			}
			_, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}},
		{"the relay's /mcp", streamable("/gateways/"+id+"/mcp", relayTwoNames)},
		{"the relay's /sse", sse("/gateways/"+id+"/sse", relayTwoNames)},
	} {
		t.Run(door.name, func(t *testing.T) {
			out := door.send(t)
			if !strings.Contains(out, `"code":-32600`) || !strings.Contains(out, `duplicate key \"name\" in params`) {
				t.Errorf("the client got %s; want -32600 naming the duplicate key \"name\" in params", out)
			}
		})
	}
	for _, r := range up.Requests() {
		if r.JSONRPCMethod == "tools/call" {
			t.Errorf("a tools/call with two names reached the upstream: %s", r.Body)
		}
	}
}
