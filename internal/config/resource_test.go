package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestResourceSettings: the protected-resource settings are read as
// documented, with OAUTH_AUTHORIZATION_SERVERS defaulting to JWT_ISSUER's
// URLs and OAUTH_SCOPES_SUPPORTED to MCP_REQUIRED_SCOPES.
func TestResourceSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want Resource
	}{
		{"unset", nil, Resource{}},
		{"as clients write it", map[string]string{EnvMCPResourceURL: "HTTPS://GW.Example.com:443"}, Resource{URL: "https://gw.example.com"}},
		{"a port kept", map[string]string{EnvMCPResourceURL: "http://[::1]:4444/"}, Resource{URL: "http://[::1]:4444"}},
		{"a default port on IPv6", map[string]string{EnvMCPResourceURL: "http://[::1]:80"}, Resource{URL: "http://[::1]"}},
		{"all", map[string]string{EnvMCPResourceURL: "https://gw.example.com/", EnvOAuthAuthorizationServers: "https://a.example.com/realms/x, https://b.example.com",
			EnvOAuthScopesSupported: "mcp:tools,mcp:admin", EnvMCPRequiredScopes: "mcp:tools"},
			Resource{URL: "https://gw.example.com", AuthorizationServers: []string{"https://a.example.com/realms/x", "https://b.example.com"},
				ScopesSupported: []string{"mcp:tools", "mcp:admin"}, RequiredScopes: []string{"mcp:tools"}}},
		{"defaults from JWT_ISSUER and the required scopes", map[string]string{EnvMCPResourceURL: "http://127.0.0.1:4444", envJWTIssuer: "mcpgate,https://login.example.com", EnvMCPRequiredScopes: "a b"},
			Resource{URL: "http://127.0.0.1:4444", AuthorizationServers: []string{"https://login.example.com"}, ScopesSupported: []string{"a", "b"}, RequiredScopes: []string{"a", "b"}}},
	} {
		env := map[string]string{EnvEnvFile: writeEnvFile(t, "")}
		for k, v := range c.env {
			env[k] = v
		}
		cfg, err := Load(nil, environ(env))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(cfg.Gateway.Resource, c.want) {
			t.Errorf("%s: Resource = %+v, want %+v", c.name, cfg.Gateway.Resource, c.want)
		}
	}
}

// TestUnusableResourceSettingNamesIt: each unusable value stops start-up
// with a message naming the setting and what it accepts.
func TestUnusableResourceSettingNamesIt(t *testing.T) {
	for _, c := range []struct {
		setting, value, want string
	}{
		{EnvMCPResourceURL, "gw.example.com", "absolute URL"},
		{EnvMCPResourceURL, "http://gw.example.com", "https"},
		{EnvMCPResourceURL, "https://gw.example.com/mcpgate", "without a path"},
		{EnvMCPResourceURL, "https://gw.example.com?x=1", "no user, query or fragment"},
		{EnvOAuthAuthorizationServers, "https://ok.example.com,login", "issuer URL"},
		{EnvOAuthAuthorizationServers, "http://login.example.com", "https"},
		{EnvMCPRequiredScopes, `mcp:"tools"`, "RFC 6749"},
		{EnvOAuthScopesSupported, "é", "not a scope"},
	} {
		_, err := Load(nil, environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""), c.setting: c.value}))
		if err == nil || !strings.Contains(err.Error(), c.setting) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%q: %v, want an error naming the setting and %q", c.setting, c.value, err, c.want)
		}
	}
}
