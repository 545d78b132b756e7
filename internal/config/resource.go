package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// The settings of mcpgate as an OAuth 2.1 protected resource (the MCP
// authorization specification; RFC 9728, RFC 8707).
const (
	EnvMCPResourceURL            = "MCP_RESOURCE_URL"
	EnvOAuthAuthorizationServers = "OAUTH_AUTHORIZATION_SERVERS"
	EnvOAuthScopesSupported      = "OAUTH_SCOPES_SUPPORTED"
	EnvMCPRequiredScopes         = "MCP_REQUIRED_SCOPES"
	// envJWTIssuer is read only for OAUTH_AUTHORIZATION_SERVERS's default.
	envJWTIssuer = "JWT_ISSUER"
)

// Resource describes mcpgate as an OAuth 2.1 protected resource: what its
// protected-resource metadata (RFC 9728) says and which scopes the MCP
// endpoints require.
type Resource struct {
	// URL (MCP_RESOURCE_URL) is mcpgate's public origin,
	// scheme://host[:port] without a path or a trailing slash; the resource
	// of each MCP endpoint is URL + its path. "" takes each request's own
	// origin and checks no audience for it.
	URL string
	// AuthorizationServers (OAUTH_AUTHORIZATION_SERVERS) are the issuer URLs
	// the metadata names. Unset, JWT_ISSUER's entries that are URLs.
	AuthorizationServers []string
	// ScopesSupported (OAUTH_SCOPES_SUPPORTED) is the metadata's
	// scopes_supported. Unset, RequiredScopes.
	ScopesSupported []string
	// RequiredScopes (MCP_REQUIRED_SCOPES) must all be in a client's token
	// for the MCP endpoints; a token without one gets 403
	// insufficient_scope.
	RequiredScopes []string
}

// resourceDocs documents the protected-resource settings.
func resourceDocs() []passthrough.SettingDoc {
	return []passthrough.SettingDoc{
		{Name: EnvMCPResourceURL, Default: "(none)", Usage: "mcpgate's public URL, scheme://host[:port] (https, or http on a loopback host): the resource of each MCP endpoint is it plus the endpoint's path, named in its protected-resource metadata (RFC 9728); while JWT_AUDIENCE is unset, only tokens whose audience is one of these resources are accepted (RFC 8707), and mcpgate token names it as their audience"},
		{Name: EnvOAuthAuthorizationServers, Default: "JWT_ISSUER's URLs", Usage: "comma-separated issuer URLs of the authorization servers the protected-resource metadata names, where MCP clients get tokens"},
		{Name: EnvOAuthScopesSupported, Default: "MCP_REQUIRED_SCOPES", Usage: "comma- or space-separated scopes the protected-resource metadata lists as scopes_supported"},
		{Name: EnvMCPRequiredScopes, Default: "(none)", Usage: "comma- or space-separated scopes a client's token must all carry for the MCP endpoints; a token without one gets 403 with WWW-Authenticate error=\"insufficient_scope\""},
	}
}

// loadResource reads the protected-resource settings.
func (s *sources) loadResource() (Resource, error) {
	var r Resource
	get := func(name string) string {
		v, _, _ := s.lookup(name)
		return strings.TrimSpace(v)
	}
	if v := get(EnvMCPResourceURL); v != "" {
		u, err := resourceOrigin(v)
		if err != nil {
			return r, &passthrough.SettingError{Name: EnvMCPResourceURL, Value: v, Reason: err.Error()}
		}
		r.URL = u
	}
	servers, fromIssuer := get(EnvOAuthAuthorizationServers), false
	if servers == "" {
		servers, fromIssuer = get(envJWTIssuer), true
	}
	for _, a := range strings.Split(servers, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if err := issuerURL(a); err != nil {
			if fromIssuer {
				continue // an issuer such as mcpgate's own "mcpgate" is no authorization server
			}
			return r, &passthrough.SettingError{Name: EnvOAuthAuthorizationServers, Value: servers, Reason: fmt.Sprintf("%q %v", a, err)}
		}
		r.AuthorizationServers = append(r.AuthorizationServers, a)
	}
	var err error
	if r.RequiredScopes, err = scopeList(EnvMCPRequiredScopes, get(EnvMCPRequiredScopes)); err != nil {
		return r, err
	}
	if r.ScopesSupported, err = scopeList(EnvOAuthScopesSupported, get(EnvOAuthScopesSupported)); err != nil {
		return r, err
	}
	if r.ScopesSupported == nil {
		r.ScopesSupported = r.RequiredScopes
	}
	return r, nil
}

// resourceOrigin checks a public URL of mcpgate and returns it without a
// trailing slash. OAuth 2.1 requires https except on loopback hosts; a path
// is refused because the well-known metadata URL of RFC 9728 §3.1 goes
// between the host and the path, where mcpgate behind a path prefix would
// not receive it.
func resourceOrigin(v string) (string, error) {
	u, err := url.Parse(v)
	if err == nil {
		u.Scheme = strings.ToLower(u.Scheme)
	}
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("must be an absolute URL such as https://gw.example.com")
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())):
		return "", fmt.Errorf("must be an https URL (http only for a loopback host such as 127.0.0.1 or localhost)")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(v, "?") || strings.HasSuffix(v, "#"):
		return "", fmt.Errorf("must be scheme://host[:port] with no user, query or fragment")
	case strings.Trim(u.Path, "/") != "":
		return "", fmt.Errorf("must be scheme://host[:port] without a path: mcpgate serves its endpoints and /.well-known/oauth-protected-resource at the root of its host")
	}
	// Clients compare the metadata's resource with the URL they connect to
	// as strings (RFC 9728 §3.3): write it as they do, lower case and
	// without the scheme's default port.
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host, nil
}

// issuerURL checks an authorization server's issuer identifier (RFC 8414
// §2: https, no query or fragment; http allowed for a loopback host).
func issuerURL(v string) error {
	u, err := url.Parse(v)
	switch {
	case err != nil || u.Host == "":
		return fmt.Errorf("is not an absolute issuer URL such as https://login.example.com/realms/acme")
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())):
		return fmt.Errorf("must be an https URL (http only for a loopback host)")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("must have no user, query or fragment")
	}
	return nil
}

// scopeList reads comma- or space-separated scopes, each an RFC 6749 §3.3
// scope-token.
func scopeList(name, v string) ([]string, error) {
	var out []string
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		for _, c := range []byte(s) {
			if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
				return nil, &passthrough.SettingError{Name: name, Value: v, Reason: fmt.Sprintf("%q is not a scope: printable ASCII without '\"' or '\\' (RFC 6749 §3.3)", s)}
			}
		}
		out = append(out, s)
	}
	return out, nil
}
