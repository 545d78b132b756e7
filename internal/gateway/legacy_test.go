package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
)

// TestUpstreamStoredUnderOlderRulesCanBeDisabled: an upstream stored
// before today's rules — a credential-like query parameter in its URL, an
// address (of the upstream or of its OAuth token URL) the policy now
// refuses — can still be updated without restating what it holds: PUT
// {"enabled": false} disables it. A field the PUT does give is checked,
// and the dialer still refuses a re-enabled upstream on a refused address.
func TestUpstreamStoredUnderOlderRulesCanBeDisabled(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		db := dbURL(t)
		// ".invalid" never resolves (RFC 6761 §6.4): nothing is dialled.
		storeUpstreams(t, db,
			store.Upstream{Name: "legacyquery", URL: "https://legacy.invalid/mcp?api_key=OLD-SECRET"},
			store.Upstream{Name: "legacyprivate", URL: "http://10.1.2.3/mcp"})
		// Registered while loopback addresses were allowed (mcpgate on a
		// loopback listener), then served with only the upstream's
		// address, 127.0.0.1, allowed: its token URL, on 127.0.0.2, is
		// refused.
		tokens := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
		}))
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 to listen on: %v", err)
		}
		tokens.Listener.Close()
		tokens.Listener = ln
		tokens.Start()
		t.Cleanup(tokens.Close)
		up := mcptest.NewStreamableHTTP(t)
		before := startGateway(t, db, nil)
		before.register(map[string]any{"name": "legacyoauth", "url": up.URL, "auth_type": "oauth",
			"oauth_config": map[string]any{"grant_type": "client_credentials", "token_url": tokens.URL + "/token",
				"client_id": "mcpgate", "client_secret": "client-secret"}})
		before.stop()

		gw := startGateway(t, db, map[string]string{"SSRF_ALLOW_LOCALHOST": "false", "SSRF_ALLOW_PRIVATE_NETWORKS": "false",
			"SSRF_ALLOWED_NETWORKS": "127.0.0.1/32"})
		list, raw := gw.upstreams()
		for _, name := range []string{"legacyquery", "legacyprivate", "legacyoauth"} {
			v, ok := list[name]
			if !ok {
				t.Fatalf("no %s in %s", name, raw)
			}
			if status, out := gw.do("PUT", "/gateways/"+v.ID, map[string]any{"enabled": false}); status != http.StatusOK {
				t.Errorf("%s: PUT {enabled:false}: %d %s", name, status, out)
			}
		}
		list, raw = gw.upstreams()
		for _, name := range []string{"legacyquery", "legacyprivate", "legacyoauth"} {
			if got := list[name].Status; got != "disabled" {
				t.Errorf("%s is %q after PUT {enabled:false}, want disabled", name, got)
			}
		}
		if got := list["legacyquery"].URL; got != "https://legacy.invalid/mcp?api_key=****" {
			t.Errorf("the stored URL is shown as %q, want its credential redacted", got)
		}
		if strings.Contains(raw, "OLD-SECRET") {
			t.Errorf("GET /gateways shows the stored URL's credential: %s", raw)
		}

		// A URL the PUT gives is checked as at registration.
		status, out := gw.do("PUT", "/gateways/"+list["legacyquery"].ID, map[string]any{"url": "https://legacy.invalid/mcp?api_key=NEW"})
		refusedField(t, status, out, "url")
		// Re-enabled, the refused address is still never connected to.
		if status, out := gw.do("PUT", "/gateways/"+list["legacyprivate"].ID, map[string]any{"enabled": true}); status != http.StatusOK {
			t.Fatalf("legacyprivate: PUT {enabled:true}: %d %s", status, out)
		}
		list, _ = gw.upstreams()
		if v := list["legacyprivate"]; v.Status != "unavailable" || v.Reason != "not reachable (mcpgate's log has the cause)" {
			t.Errorf("re-enabled on a refused address: status %q, status_reason %q", v.Status, v.Reason)
		}
	})
}
