package gateway

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// clientToken mints a token with the client role only, as `mcpgate token`
// does without --admin.
func clientToken(t *testing.T, subject string) string {
	t.Helper()
	j, err := auth.NewJWT([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	token, err := j.Mint(subject, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// sampleRequest is a request the route with pattern serves: its method
// (POST for a pattern without one) and its path with every wildcard
// filled in.
func sampleRequest(t *testing.T, base, pattern string) *http.Request {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodPost, pattern
	}
	for strings.Contains(path, "{") {
		open, end := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:open] + "no-such-upstream" + path[end+1:]
	}
	if strings.HasSuffix(path, "/") {
		path += "no-such-route"
	}
	req, err := http.NewRequest(method, base+path, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// status sends req with token ("" for none) and returns the status and the
// start of the body; a stream (SSE) is not read to its end.
func status(t *testing.T, req *http.Request, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req = req.Clone(ctx)
	req.Body, _ = req.GetBody()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, string(buf[:n])
}

// TestEveryRouteRequiresItsRole walks the gateway's route table — the one
// the gateway registers its routes from, so a route added later is walked
// too: without a token every route but the explicitly public ones answers
// 401; with a client token every admin route answers 403 naming the admin
// role, and no MCP route refuses it; with an admin token no route refuses.
func TestEveryRouteRequiresItsRole(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), nil)
	routes := gw.gateway.routes
	client, admin := clientToken(t, "walker"), gw.token
	mux := http.NewServeMux()
	var publicSeen, adminSeen, clientSeen []string
	for _, rt := range routes {
		mux.Handle(rt.pattern, http.NotFoundHandler())
	}
	for _, rt := range routes {
		req := sampleRequest(t, gw.url, rt.pattern)
		if _, pattern := mux.Handler(req); pattern != rt.pattern {
			t.Fatalf("the sample request %s %s of %q is served by %q", req.Method, req.URL.Path, rt.pattern, pattern)
		}
		noToken, _ := status(t, req, "")
		asClient, clientBody := status(t, req, client)
		asAdmin, _ := status(t, req, admin)
		switch rt.role {
		case public:
			publicSeen = append(publicSeen, rt.pattern)
			if noToken == http.StatusUnauthorized || noToken == http.StatusForbidden {
				t.Errorf("public %q without a token: %d", rt.pattern, noToken)
			}
		case auth.RoleAdmin:
			adminSeen = append(adminSeen, rt.pattern)
			if noToken != http.StatusUnauthorized {
				t.Errorf("admin %q without a token: %d, want 401", rt.pattern, noToken)
			}
			if asClient != http.StatusForbidden || !strings.Contains(clientBody, "this token lacks the admin role") || !strings.Contains(clientBody, "mcpgate token --admin") {
				t.Errorf("admin %q with a client token: %d %s, want 403 naming the admin role and how to get it", rt.pattern, asClient, clientBody)
			}
			if asAdmin == http.StatusUnauthorized || asAdmin == http.StatusForbidden {
				t.Errorf("admin %q with an admin token: %d", rt.pattern, asAdmin)
			}
		case auth.RoleClient:
			clientSeen = append(clientSeen, rt.pattern)
			if noToken != http.StatusUnauthorized {
				t.Errorf("MCP %q without a token: %d, want 401", rt.pattern, noToken)
			}
			if asClient == http.StatusUnauthorized || asClient == http.StatusForbidden {
				t.Errorf("MCP %q with a client token: %d %s", rt.pattern, asClient, clientBody)
			}
			if asAdmin == http.StatusUnauthorized || asAdmin == http.StatusForbidden {
				t.Errorf("MCP %q with an admin token: %d", rt.pattern, asAdmin)
			}
		default:
			t.Errorf("route %q requires the unknown role %q", rt.pattern, rt.role)
		}
	}
	slices.Sort(publicSeen)
	want := slices.Sorted(slices.Values(publicPatterns))
	if !slices.Equal(publicSeen, want) {
		t.Errorf("public routes %q, want exactly the public list %q", publicSeen, want)
	}
	// The walk covers what the README lists: every admin and MCP route.
	for _, p := range []string{"POST /gateways", "DELETE /gateways/{id}", "PUT /admin/config/passthrough-headers",
		"GET /v1/admin/config/passthrough-headers/cache-stats", "PUT /admin/access"} {
		if !slices.Contains(adminSeen, p) {
			t.Errorf("admin route %q is not in the table", p)
		}
	}
	for _, p := range []string{"/mcp", "/rpc", "/sse", "/message", "/ws", "/gateways/{id}/mcp", "/gateways/{id}/sse", "/gateways/{id}/message"} {
		if !slices.Contains(clientSeen, p) {
			t.Errorf("MCP route %q is not in the table", p)
		}
	}
}

// TestWithoutAuthenticationEverythingIsOpen: AUTH_REQUIRED=false keeps
// today's local use: no token, and the admin API answers.
func TestWithoutAuthenticationEverythingIsOpen(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false"})
	for _, p := range []string{"GET /gateways", "GET /admin/access", "GET /admin/config/passthrough-headers"} {
		if code, body := status(t, sampleRequest(t, gw.url, p), ""); code != http.StatusOK {
			t.Errorf("%s without a token, AUTH_REQUIRED=false: %d %s", p, code, body)
		}
	}
	code, body := status(t, sampleRequest(t, gw.url, "/rpc"), "")
	if code != http.StatusOK || bytes.Contains([]byte(body), []byte("lacks")) {
		t.Errorf("/rpc without a token, AUTH_REQUIRED=false: %d %s", code, body)
	}
}
