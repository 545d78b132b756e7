package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestRelayOpenRacingAMoveIsUnavailable: an upstream that moves to another
// address while a relay session is opening to its old one is still
// registered: the initialize is answered 503 (unavailable for now; try
// again) saying it moved, not 404 as for an upstream that is not there.
func TestRelayOpenRacingAMoveIsUnavailable(t *testing.T) {
	var armed atomic.Bool
	reached := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	up := mcptest.NewStreamableHTTP(t, mcptest.WithOnRequest(func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if armed.Load() && bytes.Contains(body, []byte(`"initialize"`)) {
			once.Do(func() { close(reached) })
			<-release
		}
	}))
	moved := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	armed.Store(true)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	type reply struct {
		status int
		body   string
	}
	answered := make(chan reply, 1)
	go func() {
		status, _, out := postAs(t, gw, gw.token, "/gateways/"+id+"/mcp", "", relayInitialize())
		answered <- reply{status, out}
	}()
	select {
	case <-reached:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay's initialize did not reach the upstream")
	}
	if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"url": moved.URL}); status != http.StatusOK {
		t.Fatalf("PUT url: %d %s", status, out)
	}
	close(release)
	r := <-answered
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "moved") || !strings.Contains(r.body, `"error"`) {
		t.Errorf("initialize of a relay session whose upstream moved as it opened: %d %s, want 503 with a JSON-RPC error saying it moved", r.status, r.body)
	}
	// The upstream at its new address takes new sessions.
	openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())
}

// TestRelayRefusesARequestIDStillInFlight: MCP request ids are unique
// within a session; a client request reusing the id of one still in flight
// is refused with -32600 saying so, not relayed, and the first call is
// answered as usual.
func TestRelayRefusesARequestIDStillInFlight(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL})
	session := openSessionAt(t, gw, "/gateways/"+id+"/mcp", relayInitialize())
	first := make(chan string, 1)
	go func() {
		_, out := relayPost(t, gw, id, session, map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call",
			"params": map[string]any{"name": "slow", "arguments": map[string]any{"ms": 20, "steps": 10}}})
		first <- out
	}()
	testenv.WaitFor(t, 5*time.Second, "the slow call to reach the upstream", func() bool { return received(up, "tools/call") })
	status, out := relayPost(t, gw, id, session, echoCall(7))
	if status != http.StatusOK || !strings.Contains(out, "-32600") || !strings.Contains(out, "already in use") {
		t.Errorf("a request reusing the id of one in flight: %d %s, want a -32600 error saying the id is in use", status, out)
	}
	if out := <-first; !strings.Contains(out, `"result"`) || !strings.Contains(out, "done") {
		t.Errorf("the first call with that id: %s, want its result", out)
	}
	if status, out := relayPost(t, gw, id, session, echoCall(7)); status != http.StatusOK || !strings.Contains(out, `"result"`) {
		t.Errorf("the id once the call with it was answered: %d %s, want it usable again", status, out)
	}
}
