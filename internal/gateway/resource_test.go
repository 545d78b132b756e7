package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// resourceSettings make mcpgate a protected resource at a public URL, as
// behind a TLS proxy.
var resourceSettings = map[string]string{
	"MCP_RESOURCE_URL":            "https://gw.example.com",
	"OAUTH_AUTHORIZATION_SERVERS": "https://login.example.com/realms/acme,https://idp2.example.com",
	"OAUTH_SCOPES_SUPPORTED":      "mcp:tools mcp:admin",
	"MCP_REQUIRED_SCOPES":         "mcp:tools",
}

// get sends a request with the given token ("" for none) and returns the
// response with its body read.
func (r *running) get(method, path, token string) (*http.Response, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp, string(body)
}

// TestProtectedResourceMetadataPerEndpoint: every MCP endpoint has its
// protected-resource metadata at the well-known path followed by its own
// (RFC 9728 §3.1), served without a token, naming the endpoint's resource
// (MCP_RESOURCE_URL + path), the configured authorization servers and
// scopes, and the header as the one way to send a token; a path that is no
// endpoint has none.
func TestProtectedResourceMetadataPerEndpoint(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), resourceSettings)
		for _, path := range []string{"", "/mcp", "/sse", "/ws", "/rpc", "/gateways/0a1b2c/mcp", "/gateways/0a1b2c/sse"} {
			resp, body := gw.get(http.MethodGet, metadataPath+path, "")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s%s without a token: %d %s", metadataPath, path, resp.StatusCode, body)
				continue
			}
			var md oauthex.ProtectedResourceMetadata
			if err := json.Unmarshal([]byte(body), &md); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if md.Resource != "https://gw.example.com"+path ||
				!slices.Equal(md.AuthorizationServers, []string{"https://login.example.com/realms/acme", "https://idp2.example.com"}) ||
				!slices.Equal(md.ScopesSupported, []string{"mcp:tools", "mcp:admin"}) || !slices.Equal(md.BearerMethodsSupported, []string{"header"}) {
				t.Errorf("metadata of %q = %s", path, body)
			}
		}
		for _, path := range []string{"/gateways", "/admin/config/passthrough-headers", "/message", "/mcp/x", "/gateways/0a1b2c/message"} {
			if resp, body := gw.get(http.MethodGet, metadataPath+path, ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "/gateways/{id}/mcp") {
				t.Errorf("GET %s%s: %d %s, want 404 listing the endpoints", metadataPath, path, resp.StatusCode, body)
			}
		}
	})
}

// TestEvery401PointsAtItsEndpointsMetadata: a 401 from each MCP endpoint
// carries WWW-Authenticate: Bearer with resource_metadata naming that
// endpoint's metadata and the scope it requires (MCP authorization,
// "Protected Resource Metadata Discovery Requirements"); without a token
// there is no error code, with a bad one error="invalid_token" and a
// description that does not echo the token (RFC 6750 §3.1). The admin API
// points at the root resource's metadata.
func TestEvery401PointsAtItsEndpointsMetadata(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), resourceSettings)
		const bad = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm90LXRoZS1zaWduYXR1cmU"
		for _, c := range []struct{ method, path, endpoint string }{
			{"POST", "/mcp", "/mcp"}, {"GET", "/mcp", "/mcp"}, {"DELETE", "/mcp", "/mcp"},
			{"GET", "/sse", "/sse"}, {"POST", "/message?session_id=x", "/sse"},
			{"GET", "/ws", "/ws"}, {"POST", "/rpc", "/rpc"},
			{"POST", "/gateways/0a1b2c/mcp", "/gateways/0a1b2c/mcp"},
			{"GET", "/gateways/0a1b2c/sse", "/gateways/0a1b2c/sse"}, {"POST", "/gateways/0a1b2c/message", "/gateways/0a1b2c/sse"},
			{"GET", "/gateways", ""}, {"PUT", "/admin/config/passthrough-headers", ""},
		} {
			for _, token := range []string{"", bad} {
				resp, body := gw.get(c.method, c.path, token)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s (token %t): %d %s, want 401", c.method, c.path, token != "", resp.StatusCode, body)
					continue
				}
				p := testenv.BearerChallenge(t, resp.Header)
				if want := "https://gw.example.com" + metadataPath + c.endpoint; p["resource_metadata"] != want {
					t.Errorf("%s %s: resource_metadata %q, want %q", c.method, c.path, p["resource_metadata"], want)
				}
				if wantScope := map[bool]string{true: "mcp:tools", false: ""}[c.endpoint != ""]; p["scope"] != wantScope {
					t.Errorf("%s %s: scope %q, want %q", c.method, c.path, p["scope"], wantScope)
				}
				switch {
				case token == "" && (p["error"] != "" || p["error_description"] != ""):
					t.Errorf("%s %s without a token: error %q (%q); RFC 6750 §3 says none", c.method, c.path, p["error"], p["error_description"])
				case token != "" && (p["error"] != "invalid_token" || p["error_description"] == ""):
					t.Errorf("%s %s with a bad token: error %q (%q), want invalid_token with a description", c.method, c.path, p["error"], p["error_description"])
				}
				if strings.Contains(resp.Header.Get("WWW-Authenticate"), bad) || strings.Contains(body, bad) {
					t.Errorf("%s %s: the answer echoes the token", c.method, c.path)
				}
			}
		}
	})
}

// TestMetadataWithoutResourceURLUsesTheRequestsOrigin: without
// MCP_RESOURCE_URL the resource is the origin the client reached mcpgate at
// (a client checks it against the URL it connected to, RFC 9728 §3.3), and
// the 401 points there too.
func TestMetadataWithoutResourceURLUsesTheRequestsOrigin(t *testing.T) {
	gw := startGateway(t, databases()[0].url(t), map[string]string{"OAUTH_AUTHORIZATION_SERVERS": "http://127.0.0.1:5556/dex"})
	resp, body := gw.get(http.MethodGet, metadataPath+"/mcp", "")
	var md oauthex.ProtectedResourceMetadata
	if err := json.Unmarshal([]byte(body), &md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if md.Resource != gw.url+"/mcp" || !slices.Equal(md.AuthorizationServers, []string{"http://127.0.0.1:5556/dex"}) || md.ScopesSupported != nil {
		t.Errorf("metadata = %s, want resource %s/mcp and the one server", body, gw.url)
	}
	resp, _ = gw.get(http.MethodPost, "/mcp", "")
	if p := testenv.BearerChallenge(t, resp.Header); p["resource_metadata"] != gw.url+metadataPath+"/mcp" || p["scope"] != "" {
		t.Errorf("401 challenge %v, want resource_metadata %s%s/mcp and no scope", p, gw.url, metadataPath)
	}
}

// TestMissingRequiredScopeIs403InsufficientScope: a valid token without
// MCP_REQUIRED_SCOPES gets 403 on every MCP endpoint, with
// WWW-Authenticate: Bearer error="insufficient_scope", the scope required
// and the endpoint's metadata (RFC 6750 §3.1; MCP authorization, "Scope
// Challenge Handling"); the admin API does not require those scopes.
func TestMissingRequiredScopeIs403InsufficientScope(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), resourceSettings)
		gw.token = resourceToken(t, "https://gw.example.com", config.DefaultJWTAdminScope) // admin, without mcp:tools
		up := mcptest.NewStreamableHTTP(t)
		id := gw.register(map[string]any{"name": "up", "url": up.URL})
		for _, c := range []struct{ method, path, endpoint string }{
			{"POST", "/mcp", "/mcp"}, {"GET", "/sse", "/sse"}, {"GET", "/ws", "/ws"}, {"POST", "/rpc", "/rpc"},
			{"POST", "/gateways/" + id + "/mcp", "/gateways/" + id + "/mcp"}, {"GET", "/gateways/" + id + "/sse", "/gateways/" + id + "/sse"},
			// The mux routes these to /rpc and /mcp: the scope holds there too.
			{"POST", "/r%70c", "/rpc"}, {"POST", "/m%63p", "/mcp"},
		} {
			resp, body := gw.get(c.method, c.path, gw.token)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s without scope mcp:tools: %d %s, want 403", c.method, c.path, resp.StatusCode, body)
				continue
			}
			p := testenv.BearerChallenge(t, resp.Header)
			if p["error"] != "insufficient_scope" || p["scope"] != "mcp:tools" || p["resource_metadata"] != "https://gw.example.com"+metadataPath+c.endpoint {
				t.Errorf("%s %s: challenge %v", c.method, c.path, p)
			}
			if !strings.Contains(body, "mcp:tools") {
				t.Errorf("%s %s: body %s does not name the missing scope", c.method, c.path, body)
			}
		}
		if resp, body := gw.get(http.MethodGet, "/gateways", gw.token); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /gateways with an admin token without mcp:tools: %d %s, want 200 (the scope is for the MCP endpoints)", resp.StatusCode, body)
		}
		if resp, body := gw.get(http.MethodPost, "/rpc", resourceToken(t, "https://gw.example.com/mcp", "mcp:tools")); resp.StatusCode != http.StatusOK {
			t.Errorf("POST /rpc with a token with mcp:tools: %d %s, want 200", resp.StatusCode, body)
		}
	})
}

// TestRequireScopesPassesATokenWithEveryRequiredScope checks the scope
// check itself on an identity as the verifier leaves it in the context.
func TestRequireScopesPassesATokenWithEveryRequiredScope(t *testing.T) {
	p := &protectedResource{cfg: config.Resource{URL: "https://gw.example.com", RequiredScopes: []string{"mcp:tools", "mcp:read"}}}
	h := p.requireScopes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, c := range []struct {
		name   string
		path   string
		scopes []string
		anon   bool
		want   int
	}{
		{"every scope", "/mcp", []string{"openid", "mcp:read", "mcp:tools"}, false, http.StatusTeapot},
		{"one missing", "/mcp", []string{"mcp:tools"}, false, http.StatusForbidden},
		{"none", "/gateways/x/mcp", nil, false, http.StatusForbidden},
		{"a path spelled with escapes (the mux routes /r%70c to /rpc)", "/r%70c", nil, false, http.StatusForbidden},
		{"no authentication (AUTH_REQUIRED=false)", "/mcp", nil, true, http.StatusTeapot},
	} {
		req := httptest.NewRequest(http.MethodPost, c.path, nil)
		if !c.anon {
			req = req.WithContext(auth.WithIdentity(req.Context(), auth.Identity{Subject: "s", Scopes: c.scopes, Roles: []auth.Role{auth.RoleClient}}))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, rec.Code, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="mcp:tools mcp:read"`) {
			t.Errorf("%s: WWW-Authenticate %q lacks the required scopes", c.name, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

// TestAcceptsAudienceOnlyThisResource: with MCP_RESOURCE_URL set, the
// audiences accepted are that URL and its endpoints' resources, nothing
// that merely starts like them (RFC 8707 §2).
func TestAcceptsAudienceOnlyThisResource(t *testing.T) {
	p := &protectedResource{cfg: config.Resource{URL: "https://gw.example.com"}}
	for aud, want := range map[string]bool{
		"https://gw.example.com": true, "https://gw.example.com/": true, "https://gw.example.com/mcp": true,
		"https://gw.example.com/sse": true, "https://gw.example.com/gateways/abc/mcp": true,
		"https://gw.example.com.evil.example/mcp": false, "https://gw.example.com:8443/mcp": false,
		"http://gw.example.com/mcp": false, "https://gw.example.com/gateways": false, "https://gw.example.com/mcp/x": false,
		"https://other.example.com/mcp": false, "mcpgateway-api": false, "": false,
	} {
		if got := p.acceptsAudience(aud); got != want {
			t.Errorf("acceptsAudience(%q) = %t, want %t", aud, got, want)
		}
	}
	if (&protectedResource{}).acceptsAudience("https://gw.example.com") {
		t.Error("without MCP_RESOURCE_URL an audience was accepted by the resource check")
	}
}

// resourceToken mints a token with mcpgate's secret for audience with
// scopes, as `mcpgate token --scope` does under MCP_RESOURCE_URL.
func resourceToken(t *testing.T, audience string, scopes ...string) string {
	t.Helper()
	j, err := auth.NewJWT([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	token, err := j.MintWith("resource-test", time.Hour, time.Now(), auth.MintOptions{Scopes: scopes, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestResourceURLIsTheAudience: with MCP_RESOURCE_URL set and JWT_AUDIENCE
// not, a token is accepted only when its aud is that resource or one of
// its endpoints' (RFC 8707); one for another resource, or with no aud, gets
// 401 invalid_token saying so; JWT_AUDIENCE, when set, decides instead.
func TestResourceURLIsTheAudience(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), map[string]string{"MCP_RESOURCE_URL": "https://gw.example.com"})
		for aud, want := range map[string]int{
			"https://gw.example.com": http.StatusOK, "https://gw.example.com/rpc": http.StatusOK, "https://gw.example.com/mcp": http.StatusOK,
			"https://other.example.com/rpc": http.StatusUnauthorized, "https://gw.example.com.evil.example/rpc": http.StatusUnauthorized, "": http.StatusUnauthorized,
		} {
			resp, body := gw.get(http.MethodPost, "/rpc", resourceToken(t, aud))
			if resp.StatusCode != want {
				t.Errorf("a token for %q: %d %s, want %d", aud, resp.StatusCode, body, want)
				continue
			}
			if want == http.StatusUnauthorized {
				if p := testenv.BearerChallenge(t, resp.Header); p["error"] != "invalid_token" || !strings.Contains(body, "MCP_RESOURCE_URL") {
					t.Errorf("a token for %q: challenge %v, body %s; want invalid_token naming MCP_RESOURCE_URL", aud, p, body)
				}
			}
		}
		other := startGateway(t, dbURL(t), map[string]string{"MCP_RESOURCE_URL": "https://gw.example.com", "JWT_AUDIENCE": "mcpgateway-api"})
		if resp, body := other.get(http.MethodPost, "/rpc", resourceToken(t, "mcpgateway-api")); resp.StatusCode != http.StatusOK {
			t.Errorf("with JWT_AUDIENCE set, a token for it: %d %s, want 200", resp.StatusCode, body)
		}
		if resp, _ := other.get(http.MethodPost, "/rpc", resourceToken(t, "https://gw.example.com/mcp")); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("with JWT_AUDIENCE set, a token for the resource URL: %d, want 401 (JWT_AUDIENCE decides)", resp.StatusCode)
		}
	})
}
