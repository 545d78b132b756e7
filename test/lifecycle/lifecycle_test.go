package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/test/internal/countingproxy"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// TestRefreshKeepsCallsInFlight: a refresh re-lists on the existing
// upstream session and never closes a connection with calls in flight, so
// a call that is in flight when the refresh runs completes with its result
// — whether the refresh comes from the admin API or from the upstream's own
// notifications/tools/list_changed.
func TestRefreshKeepsCallsInFlight(t *testing.T) {
	triggers := []struct {
		name    string
		refresh func(t *testing.T, g refreshTarget)
	}{
		{"admin refresh", func(t *testing.T, g refreshTarget) {
			status, out := g.gw.Do(t, "POST", "/gateways/"+g.id+"/tools/refresh", nil)
			if status != http.StatusOK {
				t.Fatalf("POST /gateways/%s/tools/refresh: %d %s", g.id, status, out)
			}
		}},
		{"upstream list_changed", func(t *testing.T, g refreshTarget) {
			g.up.AddTool("extra") // the SDK sends notifications/tools/list_changed
			if took, ok := waitFor(10*time.Second, func() bool { return has(toolNames(t, g.session), "inflight-extra") }); !ok {
				t.Fatalf("the upstream's list_changed did not bring inflight-extra into /mcp tools/list within %s", took)
			}
		}},
	}
	for _, tc := range triggers {
		t.Run(tc.name, func(t *testing.T) {
			up := mcptest.NewStreamableHTTP(t)
			hold := addHoldTool(t, up)
			gw := start(t, nil)
			id := gw.Register(t, map[string]any{"name": "inflight", "url": up.URL}).ID
			session := gw.OpenSession(t)

			call := callInBackground(t.Context(), session, "inflight-hold", nil)
			hold.waitArrived(t)
			tc.refresh(t, refreshTarget{gw: gw, up: up, id: id, session: session})
			select {
			case r := <-call:
				t.Fatalf("the call in flight ended during the refresh, before the upstream answered it: %q, %v (want it to wait for its result)", r.text, r.err)
			default:
			}
			hold.Release()
			select {
			case r := <-call:
				if r.err != nil || r.text != "released" {
					t.Fatalf("the call in flight during the refresh got %q, %v; want its result %q", r.text, r.err, "released")
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the call in flight during the refresh got no answer within 15s of its release")
			}
		})
	}
}

// refreshTarget is what a refresh trigger of TestRefreshKeepsCallsInFlight
// works on.
type refreshTarget struct {
	gw      *gatewaytest.Gateway
	up      *mcptest.Server
	id      string
	session *gatewaytest.Session
}

// TestUpstreamDownKeepsCatalogueAndComesBack: an upstream that cannot be
// reached at a refresh keeps its last good catalogue (its tools stay
// listed; calling one says it is unavailable, never "unknown tool"), shows
// status unavailable with a reason, and is retried with backoff: once it is
// back on the same address its tools answer again within seconds, with no
// admin action.
func TestUpstreamDownKeepsCatalogueAndComesBack(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	front := countingproxy.New(t, up.URL)
	gw := start(t, nil)
	id := gw.Register(t, map[string]any{"name": "flaky", "url": front.URL}).ID
	session := gw.OpenSession(t)
	if text, err := session.CallTool(t.Context(), "flaky-echo", map[string]any{"text": "before"}); err != nil || text != "before" {
		t.Fatalf("flaky-echo before the upstream went down: %q, %v", text, err)
	}

	front.Down()
	status, out := gw.Do(t, "POST", "/gateways/"+id+"/tools/refresh", nil)
	t.Logf("POST /gateways/%s/tools/refresh with the upstream down: %d %s", id, status, out)

	if names := toolNames(t, session); !has(names, "flaky-echo") {
		t.Errorf("with the upstream down after a refresh, /mcp tools/list has %v: want its last good catalogue (flaky-echo among it)", names)
	}
	_, err := session.CallTool(t.Context(), "flaky-echo", map[string]any{"text": "down"})
	msg := rpcMessage(err)
	switch {
	case err == nil:
		t.Errorf("flaky-echo with the upstream down succeeded")
	case msg == "":
		t.Errorf("flaky-echo with the upstream down: %v; want a JSON-RPC error saying the upstream is unavailable", err)
	case strings.Contains(strings.ToLower(msg), "unknown tool") || !strings.Contains(strings.ToLower(msg), "unavailable"):
		t.Errorf("flaky-echo with the upstream down answered %q; want an error saying the upstream is unavailable, not an unknown tool", msg)
	}
	if code, v, body := gw.Get(t, id); code != http.StatusOK || v.Status != "unavailable" || v.StatusReason == "" {
		t.Errorf("GET /gateways/%s with the upstream down: %d %s; want status unavailable with a status_reason", id, code, body)
	}

	front.Up()
	var last error
	took, ok := waitFor(15*time.Second, func() bool {
		var text string
		text, last = session.CallTool(t.Context(), "flaky-echo", map[string]any{"text": "back"})
		return last == nil && text == "back"
	})
	if !ok {
		t.Fatalf("flaky-echo still fails %s after the upstream came back, with no admin action: %v (want it callable within seconds)", took.Round(time.Millisecond), last)
	}
	t.Logf("flaky-echo answered again %s after the upstream came back (no admin action); through the proxy: %s", took.Round(time.Millisecond), front)
}

// TestOptionalListNotFoundIsNone: an upstream that announces resources but
// answers -32601 to resources/templates/list (it has no templates) is
// available, with its tools and resources listed.
func TestOptionalListNotFoundIsNone(t *testing.T) {
	up := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		switch req.Method {
		case "tools/list":
			return jsonrpc.Message{Result: json.RawMessage(`{"tools":[{"name":"lookup","description":"Looks up.","inputSchema":{"type":"object"}}]}`)}
		case "resources/list":
			return jsonrpc.Message{Result: json.RawMessage(`{"resources":[{"uri":"test://doc","name":"doc","mimeType":"text/plain"}]}`)}
		default:
			return jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "Method not found: %s", req.Method))
		}
	}, mcptest.WithCapabilities(map[string]any{"tools": map[string]any{}, "resources": map[string]any{}}))
	gw := start(t, nil)
	v := gw.Register(t, map[string]any{"name": "notemplates", "url": up.URL})
	if v.Status != "available" {
		t.Fatalf("an upstream answering -32601 to resources/templates/list registered as %q (%s); want available", v.Status, v.StatusReason)
	}
	session := gw.OpenSession(t)
	if names := toolNames(t, session); !has(names, "notemplates-lookup") {
		t.Errorf("/mcp tools/list has %v; want notemplates-lookup", names)
	}
	uris, err := session.Names(t.Context(), "resources/list")
	if err != nil || !has(uris, "test://doc") {
		t.Errorf("/mcp resources/list: %v, %v; want test://doc", uris, err)
	}
}

// TestStoredCatalogueServedStaleAtStart: when mcpgate starts and an upstream
// cannot be reached, the catalogue stored at its last successful listing is
// served, marked catalogue_stale, until discovery succeeds.
func TestStoredCatalogueServedStaleAtStart(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	front := countingproxy.New(t, up.URL)
	settings := gatewaytest.Settings(t) // both runs: one SQLite file
	gw := gatewaytest.Start(t, mcpgateBinary, settings)
	id := gw.Register(t, map[string]any{"name": "stored", "url": front.URL}).ID
	if names := toolNames(t, gw.OpenSession(t)); !has(names, "stored-echo") {
		t.Fatalf("/mcp tools/list has %v right after registration; want stored-echo", names)
	}
	gw.Stop(t)
	front.Down()

	gw = gatewaytest.Start(t, mcpgateBinary, settings)
	if names := toolNames(t, gw.OpenSession(t)); !has(names, "stored-echo") {
		t.Errorf("restarted with the upstream down, /mcp tools/list has %v; want the stored catalogue (stored-echo)", names)
	}
	code, v, body := gw.Get(t, id)
	if code != http.StatusOK || v.CatalogueStale == nil || !*v.CatalogueStale {
		t.Errorf("restarted with the upstream down, GET /gateways/%s: %d %s; want catalogue_stale: true", id, code, body)
	}

	front.Up()
	took, ok := waitFor(15*time.Second, func() bool {
		_, v, _ := gw.Get(t, id)
		return v.CatalogueStale != nil && !*v.CatalogueStale && v.Status == "available"
	})
	if _, _, body := gw.Get(t, id); !ok {
		t.Fatalf("%s after the upstream came back, GET /gateways/%s is %s; want catalogue_stale: false and status available", took.Round(time.Millisecond), id, body)
	}
	t.Logf("catalogue_stale became false %s after the upstream came back", took.Round(time.Millisecond))
}

// TestListChangedOnlyForChangedLists: a client holding a GET stream on /mcp
// is told notifications/{tools,resources,prompts}/list_changed only for a
// list whose content changed, once per changed list: nothing for a refresh
// that changed nothing, one tools/list_changed (and no resources or prompts
// one) when only tools changed. A prompts change afterwards marks the end,
// so the test never waits for nothing.
func TestListChangedOnlyForChangedLists(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := start(t, nil)
	id := gw.Register(t, map[string]any{"name": "notify", "url": up.URL}).ID
	session := gw.OpenSession(t)
	stream := session.Listen(t)
	refresh := func(why string) {
		t.Helper()
		if status, out := gw.Do(t, "POST", "/gateways/"+id+"/tools/refresh", nil); status != http.StatusOK {
			t.Fatalf("POST /gateways/%s/tools/refresh (%s): %d %s", id, why, status, out)
		}
	}

	refresh("nothing changed")
	up.AddTool("fresh") // only tools change (the upstream also says so)
	refresh("tools changed")
	up.MCPServer().AddPrompt(&mcp.Prompt{Name: "marker", Description: "Marks the end of the test."},
		func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{}, nil
		})
	refresh("prompts changed")

	var got []string
	timeout := time.After(15 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "notifications/prompts/list_changed" {
		select {
		case m, ok := <-stream:
			if !ok {
				t.Fatalf("the GET stream ended; list_changed received: %v", got)
			}
			if strings.HasSuffix(m.Method, "/list_changed") {
				got = append(got, m.Method)
			}
		case <-timeout:
			t.Fatalf("no prompts/list_changed within 15s of the prompts change; list_changed received: %v", got)
		}
	}
	want := []string{"notifications/tools/list_changed", "notifications/prompts/list_changed"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after a refresh that changed nothing, a tools change and a prompts change, the client got %v; want %v", got, want)
	}
}

// TestDeleteWinsOverRefreshInFlight: an upstream deleted while a refresh of
// it is in flight (the upstream holds tools/list) never reappears once
// DELETE answered, not in GET /gateways and not in /mcp tools/list, also
// after the refresh has finished.
func TestDeleteWinsOverRefreshInFlight(t *testing.T) {
	var holding atomic.Bool
	listHeld := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	up := mcptest.NewStreamableHTTP(t, mcptest.WithOnRequest(func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if holding.Load() && bytes.Contains(body, []byte(`"tools/list"`)) {
			select {
			case listHeld <- struct{}{}:
			default:
			}
			<-release
		}
	}))
	gw := start(t, nil)
	id := gw.Register(t, map[string]any{"name": "doomed", "url": up.URL}).ID

	holding.Store(true)
	refreshed := make(chan string, 1)
	go func() {
		status, out, err := gw.Send(context.Background(), "POST", "/gateways/"+id+"/tools/refresh", nil)
		refreshed <- strings.TrimSpace(string(out)) + " " + http.StatusText(status) + " " + errString(err)
	}()
	select {
	case <-listHeld:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh's tools/list did not reach the upstream within 10s")
	}
	if status, out := gw.Do(t, "DELETE", "/gateways/"+id, nil); status/100 != 2 {
		t.Fatalf("DELETE /gateways/%s during a refresh: %d %s", id, status, out)
	}
	once.Do(func() { close(release) })
	select {
	case r := <-refreshed:
		t.Logf("the refresh in flight during DELETE answered: %s", r)
	case <-time.After(20 * time.Second):
		t.Fatal("the refresh in flight during DELETE did not answer within 20s of the upstream's release")
	}

	if status, out := gw.Do(t, "GET", "/gateways", nil); status != http.StatusOK || strings.Contains(string(out), id) {
		t.Errorf("after DELETE answered and the refresh finished, GET /gateways: %d %s; want it without %s", status, out, id)
	}
	if code, _, body := gw.Get(t, id); code != http.StatusNotFound {
		t.Errorf("after DELETE answered and the refresh finished, GET /gateways/%s: %d %s; want 404", id, code, body)
	}
	session := gw.OpenSession(t)
	if back := withPrefix(toolNames(t, session), "doomed-"); len(back) > 0 {
		t.Errorf("after DELETE answered and the refresh finished, /mcp tools/list still has %v: the deleted upstream came back", back)
	}
	if text, err := session.CallTool(t.Context(), "doomed-echo", map[string]any{"text": "ghost"}); err == nil {
		t.Errorf("after DELETE answered, doomed-echo is still callable: %q", text)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
