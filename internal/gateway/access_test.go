package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// as is the gateway seen by the holder of token.
func (r *running) as(token string) *running {
	c := *r
	c.token = token
	return &c
}

// setAccess replaces the access rules through the admin API.
func (r *running) setAccess(rules ...map[string]any) {
	r.t.Helper()
	if rules == nil {
		rules = []map[string]any{}
	}
	if status, out := r.do("PUT", "/admin/access", map[string]any{"rules": rules}); status != http.StatusOK {
		r.t.Fatalf("PUT /admin/access: %d %s", status, out)
	}
}

// listed returns the names (or URIs, for resources and templates) a list
// method answers over /rpc.
func (r *running) listed(method string) []string {
	r.t.Helper()
	return r.listedWith(method)
}

// listedWith is listed with extra request headers.
func (r *running) listedWith(method string, headers ...string) []string {
	r.t.Helper()
	res := r.call(method, map[string]any{}, headers...)
	if res.Error != nil {
		r.t.Fatalf("%s: %+v", method, res.Error)
	}
	var l struct {
		Tools, Prompts []struct{ Name string }
		Resources      []struct{ URI string }
		Templates      []struct {
			URITemplate string `json:"uriTemplate"`
		} `json:"resourceTemplates"`
	}
	_ = json.Unmarshal(res.Result, &l)
	var out []string
	for _, x := range l.Tools {
		out = append(out, x.Name)
	}
	for _, x := range l.Prompts {
		out = append(out, x.Name)
	}
	for _, x := range l.Resources {
		out = append(out, x.URI)
	}
	for _, x := range l.Templates {
		out = append(out, x.URITemplate)
	}
	slices.Sort(out)
	return out
}

// onlyOf reports whether every name starts with prefix, and there is one.
func onlyOf(names []string, prefix string) bool {
	return len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, prefix) })
}

// TestAccessRulesLimitWhatAClientSeesAndCalls: a rule granting alice only
// upstream beta leaves alpha out of every list she gets, and her calls,
// reads and gets of alpha's items — by prefixed name, by mcpgate://alpha/
// URI, by the relay's path — get exactly the answer for something that
// does not exist, without alpha hearing of them. Bob, whom no rule names,
// sees both (ACCESS_DEFAULT allow); a change of the rules holds from the
// next request.
func TestAccessRulesLimitWhatAClientSeesAndCalls(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		alpha, beta := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		alphaID := gw.register(map[string]any{"name": "alpha", "url": alpha.URL})
		gw.register(map[string]any{"name": "beta", "url": beta.URL})
		gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{"beta"}})
		alice, bob := gw.as(clientToken(t, "alice")), gw.as(clientToken(t, "bob"))

		for _, m := range []string{"tools/list", "prompts/list", "resources/templates/list"} {
			if got := alice.listed(m); !onlyOf(got, "beta") && !onlyOf(got, "test://") {
				t.Errorf("alice's %s: %q, want beta's only", m, got)
			}
			if got := bob.listed(m); len(got) != 2*len(alice.listed(m)) {
				t.Errorf("bob's %s: %q, want both upstreams'", m, got)
			}
		}
		// Both list test://hello: bob sees alpha's under it and beta's
		// scoped; alice only beta's, under the plain URI.
		if got := alice.listed("resources/list"); !slices.Equal(got, []string{"test://hello"}) {
			t.Errorf("alice's resources: %q", got)
		}
		if got := bob.listed("resources/list"); !slices.Equal(got, []string{"mcpgate://beta/test://hello", "test://hello"}) {
			t.Errorf("bob's resources: %q", got)
		}

		sameError := func(what string, forbidden, unknown rpcResult, fName, uName string) {
			t.Helper()
			if forbidden.Error == nil || unknown.Error == nil {
				t.Fatalf("%s: forbidden %+v, unknown %+v: want errors", what, forbidden, unknown)
			}
			if forbidden.Error.Code != unknown.Error.Code || forbidden.Error.Message != strings.ReplaceAll(unknown.Error.Message, uName, fName) {
				t.Errorf("%s of alpha's: %+v; of nothing: %+v — want the same answer", what, forbidden.Error, unknown.Error)
			}
		}
		sameError("tools/call", alice.call("tools/call", map[string]any{"name": "alpha-echo", "arguments": map[string]any{"text": "x"}}),
			alice.call("tools/call", map[string]any{"name": "gamma-echo", "arguments": map[string]any{"text": "x"}}), "alpha-echo", "gamma-echo")
		sameError("prompts/get", alice.call("prompts/get", map[string]any{"name": "alpha-greet", "arguments": map[string]any{"name": "x"}}),
			alice.call("prompts/get", map[string]any{"name": "gamma-greet", "arguments": map[string]any{"name": "x"}}), "alpha-greet", "gamma-greet")
		sameError("resources/read", alice.call("resources/read", map[string]any{"uri": "mcpgate://alpha/test://hello"}),
			alice.call("resources/read", map[string]any{"uri": "mcpgate://gamma/test://hello"}), "mcpgate://alpha/test://hello", "mcpgate://gamma/test://hello")
		if res := alice.call("tools/call", map[string]any{"name": "beta-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("alice's call of beta-echo: %+v", res.Error)
		}
		if got := requestsOf(alpha, "tools/call"); len(got) != 0 {
			t.Errorf("alpha received alice's calls: %q", got)
		}

		// The relay of alpha is, to alice, a relay of nothing.
		init := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
			"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}}}
		fStatus, fBody := alice.do("POST", "/gateways/"+alphaID+"/mcp", init, "Accept", "application/json, text/event-stream")
		uStatus, uBody := alice.do("POST", "/gateways/00000000-0000-4000-8000-000000000000/mcp", init, "Accept", "application/json, text/event-stream")
		if fStatus != http.StatusNotFound || fStatus != uStatus || string(fBody) != strings.ReplaceAll(string(uBody), "00000000-0000-4000-8000-000000000000", alphaID) {
			t.Errorf("alice's relay of alpha: %d %s; of nothing: %d %s — want the same 404", fStatus, fBody, uStatus, uBody)
		}
		if status, body := bob.do("POST", "/gateways/"+alphaID+"/mcp", init, "Accept", "application/json, text/event-stream"); status != http.StatusOK {
			t.Errorf("bob's relay of alpha: %d %s", status, body)
		}

		// Granted alpha too, alice sees it at once; her group's rule adds to hers.
		gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{"beta", alphaID}})
		if got := alice.listed("tools/list"); len(got) != len(bob.listed("tools/list")) {
			t.Errorf("alice, granted both: %q", got)
		}
	})
}

// TestAccessRulesHoldOnEveryFrontDoor: over /mcp, /sse and /ws (the go-sdk
// client) alice's lists hold beta's tools only and her call of alpha's is
// refused as a call of an unknown tool.
func TestAccessRulesHoldOnEveryFrontDoor(t *testing.T) {
	alpha, beta := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "alpha", "url": alpha.URL})
	gw.register(map[string]any{"name": "beta", "url": beta.URL})
	gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{"beta"}})
	alice := gw.as(clientToken(t, "alice"))
	for _, over := range federationFrontDoors {
		t.Run(over, func(t *testing.T) {
			s := federatedClient(t, alice, over, nil)
			tools, err := s.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tl := range tools.Tools {
				names = append(names, tl.Name)
			}
			if !onlyOf(names, "beta-") {
				t.Errorf("alice's tools over /%s: %q", over, names)
			}
			_, ferr := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "alpha-echo", Arguments: map[string]any{"text": "x"}})
			_, uerr := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "gamma-echo", Arguments: map[string]any{"text": "x"}})
			if ferr == nil || uerr == nil || ferr.Error() != strings.ReplaceAll(uerr.Error(), "gamma-echo", "alpha-echo") {
				t.Errorf("over /%s: alpha-echo %v, gamma-echo %v: want the same error", over, ferr, uerr)
			}
			if _, err := s.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "mcpgate://alpha/test://hello"}); err == nil {
				t.Errorf("over /%s: alice read alpha's resource by its scoped URI", over)
			}
		})
	}
	if got := requestsOf(alpha, "tools/call"); len(got) != 0 {
		t.Errorf("alpha received alice's calls: %q", got)
	}
}

// TestAccessDefaultDenyAndGroupsAndScopes: with ACCESS_DEFAULT=deny a
// client no rule names sees nothing; an admin token is no exception on the
// MCP endpoints.
func TestAccessDefaultDeny(t *testing.T) {
	alpha := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), map[string]string{"ACCESS_DEFAULT": "deny"})
	gw.register(map[string]any{"name": "alpha", "url": alpha.URL})
	if got := gw.as(clientToken(t, "carol")).listed("tools/list"); len(got) != 0 {
		t.Errorf("carol, no rule, default deny: %q", got)
	}
	gw.setAccess(map[string]any{"subject": "carol", "upstreams": []string{"*"}})
	if got := gw.as(clientToken(t, "carol")).listed("tools/list"); !onlyOf(got, "alpha-") {
		t.Errorf("carol, granted *: %q", got)
	}
	if status, out := gw.do("GET", "/admin/access", nil); status != 200 || !strings.Contains(string(out), `"default":"deny"`) {
		t.Errorf("GET /admin/access: %d %s", status, out)
	}
}

// TestAccessRulesAreValidated: a bad rule is refused with 422 naming its
// field, and nothing changes.
func TestAccessRulesAreValidated(t *testing.T) {
	alpha := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "alpha", "url": alpha.URL})
	for _, c := range []struct {
		body  string
		field string
	}{
		{`{}`, "rules"},
		{`{"rules": {"subject": "a"}}`, "rules"},
		{`{"rules": [{"subject": "a", "upstreams": ["alpha"], "extra": 1}]}`, "rules"},
		{`{"rules": [{"upstreams": ["alpha"]}]}`, "rules[0]"},
		{`{"rules": [{"subject": "a", "group": "g", "upstreams": ["alpha"]}]}`, "rules[0]"},
		{`{"rules": [{"subject": "a", "upstreams": ["alpha"]}, {"scope": "s"}]}`, "rules[1].upstreams"},
		{`{"rules": [{"group": "g", "upstreams": ["alpha", "nowhere"]}]}`, "rules[0].upstreams[1]"},
		{`{"default": "deny", "rules": []}`, "default"},
	} {
		status, out := gw.send("PUT", "/admin/access", c.body, "Content-Type", "application/json")
		if status != http.StatusUnprocessableEntity || !strings.Contains(out, fmt.Sprintf(`"loc":["body",%q]`, c.field)) {
			t.Errorf("PUT %s: %d %s, want 422 naming %s", c.body, status, out, c.field)
		}
	}
	if status, out := gw.do("GET", "/admin/access", nil); status != 200 || string(out) != `{"default":"allow","rules":[]}` {
		t.Errorf("after refused PUTs: %d %s", status, out)
	}
}

// TestAccessTakenAwayEndsOpenSessions: a relay session, and a federated
// session's upstream session, opened while the client could use the
// upstream do not outlive a rule that takes it away: the next call on
// them is refused, the relay then answers 404 as for an unknown upstream,
// and the upstream hears of no further call.
func TestAccessTakenAwayEndsOpenSessions(t *testing.T) {
	beta := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	betaID := gw.register(map[string]any{"name": "beta", "url": beta.URL})
	alice := gw.as(clientToken(t, "alice"))
	relay := relayClient(t, alice, betaID, nil)
	client := mcp.NewClient(&mcp.Implementation{Name: "access-e2e", Version: "1"}, nil)
	client.AddRoots(&mcp.Root{URI: "file:///before-the-rule"})
	federated, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: gw.url + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{alice.token}}}, legacySession)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = federated.Close() })
	for _, call := range []func() error{
		func() error {
			_, err := relay.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
			return err
		},
		func() error {
			_, err := federated.CallTool(t.Context(), &mcp.CallToolParams{Name: "beta-echo", Arguments: map[string]any{"text": "x"}})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatalf("before the rule: %v", err)
		}
	}
	calls := len(requestsOf(beta, "tools/call"))

	// A rule granting alice another upstream only takes beta away from her.
	other := gw.register(map[string]any{"name": "gamma", "url": mcptest.NewStreamableHTTP(t).URL})
	gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{other}})

	if _, err := relay.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil {
		t.Error("the relay session went on after the rule took beta away")
	}
	if _, err := federated.CallTool(t.Context(), &mcp.CallToolParams{Name: "beta-echo", Arguments: map[string]any{"text": "x"}}); err == nil {
		t.Error("the federated session called beta after the rule took it away")
	}
	if status, body := alice.do("POST", "/gateways/"+betaID+"/mcp", relayInitialize(), "Accept", "application/json, text/event-stream"); status != http.StatusNotFound {
		t.Errorf("a new relay session of beta: %d %s, want 404", status, body)
	}
	if got := len(requestsOf(beta, "tools/call")); got != calls {
		t.Errorf("beta received %d calls after the rule, want none", got-calls)
	}
	// Nor does the client's upstream session with beta, still open, hear
	// from the client again: its roots change reaches only the upstreams
	// it may use. (The client's next request is forwarded only after its
	// notification, so the ping is the barrier.)
	rootsChanged := len(requestsOf(beta, "notifications/roots/list_changed"))
	client.AddRoots(&mcp.Root{URI: "file:///after-the-rule"})
	if err := federated.Ping(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if got := len(requestsOf(beta, "notifications/roots/list_changed")); got != rootsChanged {
		t.Errorf("beta was told of the client's roots %d times after the rule took it away, want none", got-rootsChanged)
	}
}

// TestAccessViewNamesUpdatesAsItsListsDo: alice, who may use only the
// second of two upstreams sharing test://hello, sees its resource under the
// plain URI, subscribes to it so, and is told of its update under that URI
// too, not under the scoped one the whole catalogue would give it.
func TestAccessViewNamesUpdatesAsItsListsDo(t *testing.T) {
	one, two := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "one", "url": one.URL})
	gw.register(map[string]any{"name": "two", "url": two.URL})
	gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{"two"}})
	updated := make(chan string, 8)
	client := federatedClient(t, gw.as(clientToken(t, "alice")), "mcp", &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) { updated <- r.Params.URI },
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := client.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://hello"}); err != nil {
		t.Fatal(err)
	}
	if uri := touchUntilUpdated(t, ctx, client, "two-touch", updated); uri != "test://hello" {
		t.Errorf("told %q was updated, want test://hello, as alice's list names it", uri)
	}
}

// touchUntilUpdated calls tool (mcptest's touch) on test://hello until the
// session is told of an update on updated, and returns what it was told:
// the upstream drops an update sent before the listening stream of the
// client's session with it is open.
func touchUntilUpdated[T any](t *testing.T, ctx context.Context, s *mcp.ClientSession, tool string, updated <-chan T) T {
	t.Helper()
	for i := 0; ; i++ {
		if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"uri": "test://hello"}}); err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", tool, err, res)
		}
		select {
		case v := <-updated:
			return v
		case <-time.After(time.Second):
			if i == 10 {
				t.Fatalf("no resources/updated reached the client after %d calls of %s", i+1, tool)
			}
		}
	}
}

// TestListChangedOnlyOfUpstreamsTheClientMayUse: alice, who may use beta
// only, is not told that alpha's lists changed — its registration, its
// deletion — but is told of beta's. A resource update of beta's, which
// reaches her on the same stream after them, marks the point by which any
// such notification would have arrived.
func TestListChangedOnlyOfUpstreamsTheClientMayUse(t *testing.T) {
	beta := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	betaID := gw.register(map[string]any{"name": "beta", "url": beta.URL})
	gw.setAccess(map[string]any{"subject": "alice", "upstreams": []string{"beta"}})
	var tools atomic.Int64
	changed, updated := make(chan struct{}, 64), make(chan struct{}, 8)
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { tools.Add(1); changed <- struct{}{} },
		ResourceUpdatedHandler: func(context.Context, *mcp.ResourceUpdatedNotificationRequest) { updated <- struct{}{} },
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.url + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{clientToken(t, "alice")}}}, legacySession)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	toggle := func(enabled bool) {
		t.Helper()
		if status, out := gw.do("PUT", "/gateways/"+betaID, map[string]any{"enabled": enabled}); status != http.StatusOK {
			t.Fatalf("PUT enabled=%t: %d %s", enabled, status, out)
		}
	}
	// Until the session's GET stream is open, notifications are lost:
	// change beta until one arrives, and leave it enabled.
	enabled := true
	for i := 0; ; i++ {
		enabled = !enabled
		toggle(enabled)
		select {
		case <-changed:
		case <-time.After(500 * time.Millisecond):
			if i == 10 {
				t.Fatal("no tools/list_changed reached alice")
			}
			continue
		}
		break
	}
	if !enabled {
		toggle(true)
	}
	marker := func() { touchUntilUpdated(t, ctx, session, "beta-touch", updated) }
	if err := session.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://hello"}); err != nil {
		t.Fatal(err)
	}
	marker()
	tools.Store(0)

	alpha := gw.register(map[string]any{"name": "alpha", "url": mcptest.NewStreamableHTTP(t).URL})
	if status, out := gw.do("DELETE", "/gateways/"+alpha, nil); status != http.StatusOK {
		t.Fatalf("delete alpha: %d %s", status, out)
	}
	marker()
	if n := tools.Load(); n != 0 {
		t.Errorf("alice was told %d tools/list_changed of alpha's registration and deletion, want none", n)
	}
	toggle(false)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("beta's tools/list_changed did not reach alice")
	}
}
