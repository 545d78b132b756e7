package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// postAs posts body to path with token as the client's and returns the
// status, the Mcp-Session-Id answered and the body.
func postAs(t *testing.T, gw *running, token, path, session string, body any) (int, string, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", gw.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := readAll(resp)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), out
}

// TestOneClientCannotLockOthersOut: a client that opens more sessions than
// MAX_SESSIONS_PER_CLIENT loses its own least recently used ones — on /mcp
// and on the relay alike, counted together — and its next request on one
// is 404 saying why; another client keeps its session and opens new ones.
func TestOneClientCannotLockOthersOut(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, "sqlite:///"+t.TempDir()+"/mcpgate.db", map[string]string{"MAX_SESSIONS_PER_CLIENT": "3"})
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	j, _ := auth.NewJWT([]byte(jwtSecret))
	other, _ := j.Mint("other-client", time.Hour, time.Now())
	ping := map[string]any{"jsonrpc": "2.0", "id": 2, "method": "ping"}
	open := func(token, path string) string {
		t.Helper()
		status, session, out := postAs(t, gw, token, path, "", relayInitialize())
		if status != http.StatusOK || session == "" {
			t.Fatalf("initialize at %s: %d %s", path, status, out)
		}
		return session
	}

	b := open(other, "/mcp")
	oldest := open(gw.token, "/mcp")
	for range 2 {
		open(gw.token, "/mcp")
	}
	relayed := open(gw.token, "/gateways/"+id+"/mcp") // a fourth, on another front door
	status, _, out := postAs(t, gw, gw.token, "/mcp", oldest, ping)
	if status != http.StatusNotFound || !strings.Contains(out, "MAX_SESSIONS_PER_CLIENT") {
		t.Errorf("the client's least recently used session after it opened one more than its limit: %d %s, want 404 naming the limit", status, out)
	}
	for range 20 {
		open(gw.token, "/mcp")
	}
	if status, _, out := postAs(t, gw, gw.token, "/gateways/"+id+"/mcp", relayed, ping); status != http.StatusNotFound {
		t.Errorf("the client's relay session after it opened 20 more: %d %s, want it ended to make room", status, out)
	}
	if n := gw.gateway.streamable.Sessions() + gw.gateway.relay.Sessions(); n != 3+1 {
		t.Errorf("%d sessions held, want the hammering client's 3 and the other's 1", n)
	}
	if status, _, out := postAs(t, gw, other, "/mcp", b, ping); status != http.StatusOK {
		t.Errorf("the other client's session after the first hammered: %d %s", status, out)
	}
	open(other, "/mcp")
}

// TestAnonymousClientsShareNoPerClientSessionLimit: with AUTH_REQUIRED=false
// every client is the same anonymous principal, so MAX_SESSIONS_PER_CLIENT
// does not apply to it (it would be a cap on everyone far below
// MAX_SESSIONS): more sessions than it, on /mcp and on the relay, all stay
// alive.
func TestAnonymousClientsShareNoPerClientSessionLimit(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false", "MAX_SESSIONS_PER_CLIENT": "2"})
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	ping := map[string]any{"jsonrpc": "2.0", "id": 2, "method": "ping"}
	type opened struct{ path, session string }
	var sessions []opened
	for _, path := range []string{"/mcp", "/mcp", "/mcp", "/gateways/" + id + "/mcp", "/gateways/" + id + "/mcp", "/mcp"} {
		status, session, out := postAs(t, gw, "", path, "", relayInitialize())
		if status != http.StatusOK || session == "" {
			t.Fatalf("initialize at %s: %d %s", path, status, out)
		}
		sessions = append(sessions, opened{path, session})
	}
	for _, s := range sessions {
		if status, _, out := postAs(t, gw, "", s.path, s.session, ping); status != http.StatusOK {
			t.Errorf("anonymous session at %s after %d were opened with MAX_SESSIONS_PER_CLIENT=2: %d %s, want it alive", s.path, len(sessions), status, out)
		}
	}
}
