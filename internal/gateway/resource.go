package gateway

import (
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	mcpauth "github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/mcp/frontdoor"
)

// metadataPath is the well-known path of OAuth 2.0 protected-resource
// metadata (RFC 9728 §3); an endpoint's own metadata is at this path
// followed by the endpoint's (§3.1).
const metadataPath = "/.well-known/oauth-protected-resource"

// protectedResource makes mcpgate's MCP endpoints an OAuth 2.1 protected
// resource as the MCP authorization specification (2025-11-25,
// "Authorization Server Discovery") asks: each endpoint has
// protected-resource metadata (RFC 9728) naming the authorization servers
// where clients get tokens, every 401 points at it in WWW-Authenticate, a
// token without the required scopes gets 403 insufficient_scope, and with a
// resource URL configured only tokens for this resource are accepted (RFC
// 8707).
type protectedResource struct {
	cfg config.Resource
}

// endpointOf returns the resource path of the MCP endpoint that serves a
// request's (escaped) path — /mcp, /sse (with its /message), /ws, /rpc,
// /gateways/{id}/mcp, /gateways/{id}/sse (with its message path) — and
// false for other paths (the admin API).
func endpointOf(path string) (string, bool) {
	switch {
	case path == "/mcp" || strings.HasPrefix(path, "/mcp/"):
		return "/mcp", true
	case path == "/sse" || path == frontdoor.MessagePath:
		return "/sse", true
	case path == "/ws" || path == "/rpc":
		return path, true
	}
	rest, ok := strings.CutPrefix(path, "/gateways/")
	if !ok {
		return "", false
	}
	id, tail, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", false
	}
	switch tail {
	case "mcp":
		return "/gateways/" + id + "/mcp", true
	case "sse", "message":
		return "/gateways/" + id + "/sse", true
	}
	return "", false
}

// origin is mcpgate's public origin: MCP_RESOURCE_URL, else the origin the
// request reached mcpgate at.
func (p *protectedResource) origin(r *http.Request) string {
	if p.cfg.URL != "" {
		return p.cfg.URL
	}
	return ownScheme(r) + "://" + r.Host
}

// endpointFor is endpointOf r's path as sent, or else as the mux read it
// (decoded: /r%70c is /rpc).
func endpointFor(r *http.Request) (string, bool) {
	if endpoint, ok := endpointOf(r.URL.EscapedPath()); ok {
		return endpoint, true
	}
	return endpointOf(r.URL.Path)
}

// metadataURL is the URL of the protected-resource metadata for the
// endpoint serving r, or of mcpgate's root resource for other paths.
func (p *protectedResource) metadataURL(r *http.Request) string {
	endpoint, _ := endpointFor(r)
	return p.origin(r) + metadataPath + endpoint
}

// serveMetadata answers GET /.well-known/oauth-protected-resource and its
// per-endpoint forms, without authentication (RFC 9728 §3.1). The resource
// is the one whose path follows the well-known path: the client checks it
// is the URL it connected to (§3.3).
func (p *protectedResource) serveMetadata(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), metadataPath)
	if endpoint, ok := endpointOf(rest); rest != "" && (!ok || endpoint != rest) {
		body, _ := jsonString("no protected resource at " + rest + ": mcpgate's are /mcp, /sse, /ws, /rpc, /gateways/{id}/mcp and /gateways/{id}/sse, " +
			"each with its metadata at " + metadataPath + " followed by its path")
		writeJSON(w, http.StatusNotFound, `{"detail":`+body+`}`)
		return
	}
	auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               p.origin(r) + rest,
		AuthorizationServers:   p.cfg.AuthorizationServers,
		ScopesSupported:        p.cfg.ScopesSupported,
		BearerMethodsSupported: []string{"header"}, // AUTH_HEADER_NAME; never a query or body
		ResourceName:           "mcpgate",
	}).ServeHTTP(w, r)
}

// challenge is the WWW-Authenticate value of a 401 or 403 for r: the
// Bearer scheme with the metadata URL (MCP authorization, "Protected
// Resource Metadata Discovery Requirements"), the scopes the endpoint
// requires, and the RFC 6750 §3.1 error code and description when errCode
// is set (RFC 6750 §3: no error code when the request had no token).
func (p *protectedResource) challenge(r *http.Request, errCode, description string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="mcpgate"`)
	if errCode != "" {
		b.WriteString(`, error="` + errCode + `"`)
		if d := challengeText(description); d != "" {
			b.WriteString(`, error_description="` + d + `"`)
		}
	}
	if _, mcp := endpointFor(r); mcp && len(p.cfg.RequiredScopes) > 0 {
		b.WriteString(`, scope="` + strings.Join(p.cfg.RequiredScopes, " ") + `"`)
	}
	b.WriteString(`, resource_metadata="` + challengeText(p.metadataURL(r)) + `"`)
	return b.String()
}

// challengeText keeps what RFC 6750 §3 allows in a quoted challenge
// parameter (printable ASCII without '"' and '\'), at most 300 bytes.
func challengeText(s string) string {
	out := make([]byte, 0, min(len(s), 300))
	for i := 0; i < len(s) && len(out) < 300; i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			out = append(out, c)
		}
	}
	return string(out)
}

// requireScopes answers 403 insufficient_scope (RFC 6750 §3.1) to a request
// whose token lacks one of MCP_REQUIRED_SCOPES. The route table wraps the
// routes of the client role in it, the MCP endpoints, and only those: the
// admin API's role decides there. It never reads the path to decide (a
// path the mux routes to /rpc may be spelled /r%70c); the path only names
// the endpoint in the answer. Without client authentication
// (AUTH_REQUIRED=false) there is no token to hold scopes, and nothing is
// required.
func (p *protectedResource) requireScopes(next http.Handler) http.Handler {
	if len(p.cfg.RequiredScopes) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint, _ := endpointFor(r)
		id, authenticated := mcpauth.IdentityOf(r.Context())
		if !authenticated {
			next.ServeHTTP(w, r)
			return
		}
		var missing []string
		for _, s := range p.cfg.RequiredScopes {
			if !slices.Contains(id.Scopes, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		msg := "insufficient scope: " + endpoint + " requires the scope " + strings.Join(p.cfg.RequiredScopes, " ") +
			"; the token lacks " + strings.Join(missing, " ")
		w.Header().Set("WWW-Authenticate", p.challenge(r, "insufficient_scope", msg))
		body, _ := jsonString(msg)
		writeJSON(w, http.StatusForbidden, `{"detail":`+body+`}`)
	})
}

// acceptsAudience reports whether a token's audience names this resource
// (RFC 8707 §2; MCP authorization, "Token Audience Binding and
// Validation"): MCP_RESOURCE_URL itself or one of its endpoints' resources.
// A token meant for another resource is never accepted. It is the audience
// check while MCP_RESOURCE_URL is set and JWT_AUDIENCE is not.
func (p *protectedResource) acceptsAudience(aud string) bool {
	if p.cfg.URL == "" {
		return false
	}
	rest, ok := strings.CutPrefix(aud, p.cfg.URL)
	if !ok {
		return false
	}
	if rest == "" || rest == "/" {
		return true
	}
	endpoint, ok := endpointOf(rest)
	return ok && endpoint == rest
}
