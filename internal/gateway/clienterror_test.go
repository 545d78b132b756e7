package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestUpstreamFailuresTellClientsNothingInternal: when an upstream fails,
// its MCP client is told which upstream and what kind of failure, in
// words of mcpgate's: never the upstream's URL, the OAuth token URL, the
// identity provider's error text or where a redirect points. mcpgate's log
// has all of it.
func TestUpstreamFailuresTellClientsNothingInternal(t *testing.T) {
	const realm = "corp-internal"
	const tokenPath = "/realms/" + realm + "/protocol/openid-connect/token"
	const idpText = "client mcpgate disabled in realm " + realm
	const redirectTo = "http://sso.corp-internal.example/login?next=%2Fmcp&ticket=SECRET-TICKET"

	var tokenRefused atomic.Bool
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if tokenRefused.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, idpText)
			return
		}
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)

	up := mcptest.NewStreamableHTTP(t)
	target, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	// front is the upstream as registered: it answers 401 once the token
	// is refused (so mcpgate asks the token endpoint again), or redirects.
	var redirect atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case redirect.Load() && r.Method == http.MethodPost:
			http.Redirect(w, r, redirectTo, http.StatusFound)
		case tokenRefused.Load():
			http.Error(w, "token refused", http.StatusUnauthorized)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	gone := mcptest.NewStreamableHTTP(t)

	var log syncBuffer
	gw := startGatewayWith(t, sqliteURL(t), nil, gatewayOptions{logger: slog.New(slog.NewTextHandler(&log, nil))})
	gw.register(map[string]any{"name": "crm", "url": front.URL + target.Path, "auth_type": "oauth",
		"oauth_config": map[string]any{"grant_type": "client_credentials", "token_url": tokens.URL + tokenPath,
			"client_id": "mcpgate", "client_secret": "client-secret"}})
	gw.register(map[string]any{"name": "moved", "url": front.URL + target.Path})
	goneID := gw.register(map[string]any{"name": "gone", "url": gone.URL})

	for _, tc := range []struct {
		name     string
		tool     string
		breakIt  func()
		want     string   // the client's error message, exactly
		internal []string // what the client must not see, and the log must
	}{
		{"the token endpoint refuses", "crm-echo", func() { tokenRefused.Store(true) },
			`upstream "crm": cannot get its credentials (mcpgate's log has the cause)`,
			[]string{strings.TrimPrefix(tokens.URL, "http://") + tokenPath, idpText}},
		{"the upstream redirects", "moved-echo", func() { tokenRefused.Store(false); redirect.Store(true) },
			`upstream "moved" answered with a redirect (HTTP 302), which mcpgate does not follow`,
			[]string{"sso.corp-internal.example/login"}},
		{"the upstream is gone", "gone-echo", func() { redirect.Store(false); gone.Close() },
			`upstream "gone" is not reachable`,
			[]string{strings.TrimPrefix(gone.URL, "http://")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt()
			status, out := gw.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
				"params": map[string]any{"name": tc.tool, "arguments": map[string]any{"text": "x"}}})
			if status != http.StatusOK {
				t.Fatalf("tools/call: HTTP %d %s", status, out)
			}
			if !strings.Contains(string(out), `"message":`+jsonQuote(t, tc.want)) {
				t.Errorf("the client got %s, want the message %q", out, tc.want)
			}
			for _, s := range tc.internal {
				if strings.Contains(string(out), s) {
					t.Errorf("the client is told %q: %s", s, out)
				}
				if log.count(s) == 0 {
					t.Errorf("the log does not have %q", s)
				}
			}
			if strings.Contains(string(out), "SECRET-TICKET") || log.count("SECRET-TICKET") != 0 {
				t.Errorf("a redirect's query reached the client or the log")
			}
		})
	}
	// Opening a 1:1 relay session to it says as little.
	t.Run("a relay session to the gone upstream", func(t *testing.T) {
		initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
		status, out := gw.send("POST", "/gateways/"+goneID+"/mcp", initialize,
			"Content-Type", "application/json", "Accept", "application/json, text/event-stream")
		if status < 500 || !strings.Contains(out, `upstream \"gone\"`) {
			t.Errorf("relay initialize: %d %s, want a 5xx naming the upstream", status, out)
		}
		if addr := strings.TrimPrefix(gone.URL, "http://"); strings.Contains(out, addr) {
			t.Errorf("the client is told the upstream's address %s: %s", addr, out)
		}
	})
}

func jsonQuote(t *testing.T, s string) string {
	t.Helper()
	q, err := jsonString(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
