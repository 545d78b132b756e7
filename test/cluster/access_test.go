package cluster

import (
	"net/http"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestAccessRulesReachEveryInstance: access rules set through one instance
// hold on the others within the bus's latency — over Redis and over
// PostgreSQL's LISTEN/NOTIFY — on the federated lists and on the relay,
// and lifting them does too.
func TestAccessRulesReachEveryInstance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		redisDB int // 0: no Redis
	}{{"redis", 15}, {"postgres-notify", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			redisURL := ""
			if tc.redisDB != 0 {
				redisURL = redisDatabase(t, tc.redisDB)
			}
			alpha, beta := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
			d := newDeployment(t, redisURL, nil)
			all := d.start([]string{"A", "B"}, nil)
			a, b := all[0], all[1]
			alphaID := a.register(t, map[string]any{"name": "alpha", "url": alpha.URL})
			a.register(t, map[string]any{"name": "beta", "url": beta.URL})
			waitForTool(t, b, "alpha-echo", true)
			waitForTool(t, b, "beta-echo", true)

			// The deployment's token (subject cluster-test) may use beta only.
			rules := map[string]any{"rules": []map[string]any{{"subject": "cluster-test", "upstreams": []string{"beta"}}}}
			if status, out := a.do(t, "PUT", "/admin/access", rules); status != http.StatusOK {
				t.Fatalf("PUT /admin/access on A: %d %s", status, out)
			}
			took := waitForTool(t, b, "alpha-echo", false)
			t.Logf("the access rule set on A held on B after %s", took.Round(time.Millisecond))
			if _, err := b.callTool(t.Context(), "alpha-echo", map[string]any{"text": "x"}); err == nil {
				t.Errorf("B let the client call alpha-echo")
			}
			init := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
				"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "x", "version": "1"}}}
			if status, out := b.do(t, "POST", "/gateways/"+alphaID+"/mcp", init, "Accept", "application/json, text/event-stream"); status != http.StatusNotFound {
				t.Errorf("B's relay of alpha for the client: %d %s, want 404", status, out)
			}
			if _, err := b.callTool(t.Context(), "beta-echo", map[string]any{"text": "x"}); err != nil {
				t.Errorf("B refused beta-echo: %v", err)
			}

			if status, out := a.do(t, "PUT", "/admin/access", map[string]any{"rules": []any{}}); status != http.StatusOK {
				t.Fatalf("PUT /admin/access on A: %d %s", status, out)
			}
			waitForTool(t, b, "alpha-echo", true)
		})
	}
}
