package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// proxySettings turn on trusted-proxy authentication as ContextForge has
// it, trusting proxies at cidrs, with the proxy's user header allowlisted
// (which must not make it go upstream).
func proxySettings(cidrs string) map[string]string {
	return map[string]string{"TRUST_PROXY_AUTH": "true", "MCP_CLIENT_AUTH_ENABLED": "false", "TRUSTED_PROXY_CIDRS": cidrs,
		"PROXY_ADMIN_USERS": "ops", "DEFAULT_PASSTHROUGH_HEADERS": `["X-Authenticated-User","X-Tenant-Id"]`}
}

// TestTrustedProxyNamesTheClient: from a trusted proxy's address the user
// in PROXY_USER_HEADER is the client — with the client role, and the admin
// role only when PROXY_ADMIN_USERS names it; access rules apply to it
// under the issuer "proxy"; the header never reaches an upstream, even
// allowlisted; requests without it still authenticate with a token.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		alpha, beta := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), proxySettings("127.0.0.0/8"))
		gw.register(map[string]any{"name": "alpha", "url": alpha.URL})
		gw.register(map[string]any{"name": "beta", "url": beta.URL})
		proxied := gw.as("")
		carol := []string{"X-Authenticated-User", "carol", "X-Tenant-Id", "acme"}

		res := proxied.call("tools/call", map[string]any{"name": "alpha-headers", "arguments": map[string]any{}}, carol...)
		if res.Error != nil {
			t.Fatalf("carol's call through the proxy: %+v", res.Error)
		}
		if seen := strings.ToLower(string(res.Result)); !strings.Contains(seen, "acme") || strings.Contains(seen, "x-authenticated-user") || strings.Contains(seen, "carol") {
			t.Errorf("the upstream saw %s: want X-Tenant-Id and never the proxy's user header", res.Result)
		}
		if status, out := proxied.do("GET", "/gateways", nil, carol...); status != http.StatusForbidden || !strings.Contains(string(out), "lacks the admin role") {
			t.Errorf("carol on the admin API: %d %s, want 403", status, out)
		}
		if status, out := proxied.do("GET", "/gateways", nil, "X-Authenticated-User", "ops"); status != http.StatusOK {
			t.Errorf("ops (PROXY_ADMIN_USERS) on the admin API: %d %s", status, out)
		}
		if status, _ := proxied.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != http.StatusUnauthorized {
			t.Errorf("no user header and no token: %d, want 401", status)
		}
		if status, out := gw.do("GET", "/gateways", nil); status != http.StatusOK {
			t.Errorf("a token without the header: %d %s", status, out)
		}

		// Rules name proxy users by the issuer "proxy": a token's carol is
		// another client.
		gw.setAccess(map[string]any{"subject": "carol", "issuer": "proxy", "upstreams": []string{"beta"}})
		if got := proxied.listedWith("tools/list", carol...); !onlyOf(got, "beta-") {
			t.Errorf("proxy user carol's tools: %q", got)
		}
		if got := gw.as(clientToken(t, "carol")).listed("tools/list"); len(got) != 2*len(proxied.listedWith("tools/list", carol...)) {
			t.Errorf("token subject carol's tools: %q, want both upstreams'", got)
		}

		// An administrator who revokes the proxy's user carol is obeyed.
		gw.revoke(map[string]any{"subject": "carol", "issuer": "proxy"})
		if status, out := proxied.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}, carol...); status != http.StatusUnauthorized || !strings.Contains(string(out), "revoked") {
			t.Errorf("the revoked proxy user carol: %d %s, want 401 saying revoked", status, out)
		}
	})
}

// TestProxyUserHeaderFromElsewhereIsRefused: from an address outside
// TRUSTED_PROXY_CIDRS the header is refused with 401 saying why, without
// quoting it — even with a valid token beside it.
func TestProxyUserHeaderFromElsewhereIsRefused(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), proxySettings("10.9.9.9"))
	for _, token := range []string{"", gw.token} {
		status, out := gw.as(token).do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}, "X-Authenticated-User", "mallory-admin")
		if status != http.StatusUnauthorized || !strings.Contains(string(out), "TRUSTED_PROXY_CIDRS") || strings.Contains(string(out), "mallory") {
			t.Errorf("user header from an untrusted address (token %t): %d %s, want 401 naming TRUSTED_PROXY_CIDRS", token != "", status, out)
		}
	}
	if status, out := gw.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != http.StatusOK {
		t.Errorf("a token without the header: %d %s", status, out)
	}
}
