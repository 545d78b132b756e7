package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// The authorisation decisions of every HTTP route are here, in one table
// (ARCHITECTURE, "Identity"): each route says the role it requires, and the
// gateway registers it only through protect, so a route cannot be added
// without one. The admin API requires RoleAdmin; the MCP endpoints
// RoleClient; the public routes (health, readiness, metrics, discovery
// documents) nothing.

// route is one entry of the gateway's route table.
type route struct {
	pattern string    // a ServeMux pattern
	role    auth.Role // the role a client needs; public for none
	handler http.Handler
	// token finds the client's token in a request and howTo tells a
	// client without one how to send it; nil: AUTH_HEADER_NAME's.
	token func(*http.Request) (string, bool)
	howTo string
}

// public is the role of the routes open to anybody.
const public auth.Role = ""

// publicPatterns are the only routes without a role. A new public route is
// added here too, on purpose; the route-walk test holds the table to it.
var publicPatterns = []string{"GET /health", "GET /ready", "GET /metrics", "GET /.well-known/jwks.json", metadataPath, metadataPath + "/"}

// register adds every route of the table to mux, each behind its
// authentication and role check.
func (g *Gateway) register(mux *http.ServeMux, routes []route) {
	g.routes = routes
	for _, rt := range routes {
		mux.Handle(rt.pattern, g.protect(rt))
	}
}

// protect wraps a route's handler in what its role calls for.
func (g *Gateway) protect(rt route) http.Handler {
	if rt.role == public {
		return rt.handler
	}
	h := rt.handler
	if rt.role == auth.RoleClient {
		h = g.resource.requireScopes(h) // MCP_REQUIRED_SCOPES, 403 insufficient_scope
	}
	h = g.authorize(rt.role, h)
	if rt.token != nil {
		return g.authenticateProxyOr(h, g.authenticateWith(h, rt.token, rt.howTo))
	}
	return g.authenticateProxyOr(h, g.authenticate(h))
}

// authorize lets a request through when its client holds role; otherwise
// it answers 403 naming the missing role and how to get it. With
// AUTH_REQUIRED=false nobody is authenticated and everything is open.
func (g *Gateway) authorize(role auth.Role, next http.Handler) http.Handler {
	if g.verifier == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := auth.IdentityOf(r.Context()); !ok || !id.Has(role) {
			forbidden(w, role)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// howToGetRole tells a client how to get a token with a role.
var howToGetRole = map[auth.Role]string{
	auth.RoleAdmin: "the admin API (/gateways, /admin/...) needs a token with the admin role: mint one with `mcpgate token --admin`, " +
		"or use a token with the JWT_ADMIN_SCOPE scope (mcpgate:admin by default), a JWT_ADMIN_CLAIM claim set to true " +
		"(ContextForge's is_admin by default) or a group in JWT_ADMIN_GROUPS",
	auth.RoleClient: "the MCP endpoints need a token with the client role, which every token mcpgate mints has",
}

func forbidden(w http.ResponseWriter, role auth.Role) {
	body, _ := json.Marshal(map[string]string{"detail": fmt.Sprintf("this token lacks the %s role: %s", role, howToGetRole[role])})
	writeJSON(w, http.StatusForbidden, string(body))
}

// authenticateProxyOr takes the client from PROXY_USER_HEADER when
// trusted-proxy authentication is on (MCP_CLIENT_AUTH_ENABLED=false,
// TRUST_PROXY_AUTH=true) and the request carries it; a request without it
// goes on to token authentication, byToken; one with it to authorized. The header from an address
// outside TRUSTED_PROXY_CIDRS is refused with 401: only the proxy may name
// a user. The passthrough engine never forwards it (spec §2, never-forwarded
// set), so it never reaches an upstream.
func (g *Gateway) authenticateProxyOr(authorized, byToken http.Handler) http.Handler {
	if g.proxy == nil {
		return byToken
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, named, err := g.proxy.Identify(r)
		switch {
		case err != nil:
			g.unauthorized(w, r, "invalid_request", "refused: "+err.Error())
		case named:
			r = r.WithContext(auth.WithIdentity(r.Context(), id))
			if err := g.still(r); err != nil { // an administrator revoked the proxy's user
				g.unauthorized(w, r, "invalid_token", "refused: "+err.Error())
				return
			}
			authorized.ServeHTTP(w, r)
		default:
			byToken.ServeHTTP(w, r)
		}
	})
}
