package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// Access holds the settings of who may do what beyond token verification:
// trusted-proxy authentication as ContextForge has it, and the default of
// the per-client access rules.
type Access struct {
	// ProxyAuth is on when MCP_CLIENT_AUTH_ENABLED is false and
	// TRUST_PROXY_AUTH is true: the user named by PROXY_USER_HEADER is the
	// client, on requests whose peer address is in TrustedProxies.
	ProxyAuth bool
	// TrustedProxies (TRUSTED_PROXY_CIDRS) are the networks requests naming
	// a proxy user may come from; never every address.
	TrustedProxies []netip.Prefix
	// ProxyAdminUsers (PROXY_ADMIN_USERS) are the proxy users who also get
	// the admin role.
	ProxyAdminUsers []string
	// DenyByDefault (ACCESS_DEFAULT=deny): a client no access rule matches
	// may use no upstream; the default, allow, lets it use every one.
	DenyByDefault bool
}

// Access setting names.
const (
	EnvTrustProxyAuth       = "TRUST_PROXY_AUTH"
	EnvMCPClientAuthEnabled = "MCP_CLIENT_AUTH_ENABLED"
	EnvTrustedProxyCIDRs    = "TRUSTED_PROXY_CIDRS"
	EnvProxyAdminUsers      = "PROXY_ADMIN_USERS"
	EnvAccessDefault        = "ACCESS_DEFAULT"
)

func accessDocs() []passthrough.SettingDoc {
	return []passthrough.SettingDoc{
		{Name: EnvMCPClientAuthEnabled, Default: "true", Usage: "false (with TRUST_PROXY_AUTH=true) takes the client from PROXY_USER_HEADER, set by an authenticating proxy, instead of a token", Bool: true},
		{Name: EnvTrustProxyAuth, Default: "false", Usage: "true (with MCP_CLIENT_AUTH_ENABLED=false) trusts PROXY_USER_HEADER on requests from TRUSTED_PROXY_CIDRS; from any other address that header is refused with 401", Bool: true},
		{Name: EnvTrustedProxyCIDRs, Default: "(none)", Usage: "comma-separated IP addresses or CIDR networks of the authenticating proxies; required with TRUST_PROXY_AUTH, never 0.0.0.0/0 or ::/0"},
		{Name: EnvProxyAdminUsers, Default: "(none)", Usage: "comma-separated proxy users who also get the admin role; the others get the client role only"},
		{Name: EnvAccessDefault, Default: "allow", Usage: "what a client no access rule (/admin/access) matches may use: allow (every upstream) or deny (none)"},
	}
}

func (s *sources) loadAccess(authRequired bool) (Access, error) {
	var a Access
	get := func(name string) (string, bool) {
		v, _, ok := s.lookup(name)
		return strings.TrimSpace(v), ok
	}
	trust, clientAuth := false, true
	for _, b := range []struct {
		name string
		dst  *bool
	}{{EnvTrustProxyAuth, &trust}, {EnvMCPClientAuthEnabled, &clientAuth}} {
		if v, ok := get(b.name); ok {
			on, err := passthrough.ParseBool(b.name, v)
			if err != nil {
				return a, err
			}
			*b.dst = on
		}
	}
	switch {
	case trust && clientAuth:
		return a, &passthrough.SettingError{Name: EnvTrustProxyAuth, Value: "true",
			Reason: "has no effect while MCP_CLIENT_AUTH_ENABLED is true: set MCP_CLIENT_AUTH_ENABLED=false to take clients from PROXY_USER_HEADER, or remove TRUST_PROXY_AUTH"}
	case !clientAuth && !trust:
		return a, &passthrough.SettingError{Name: EnvMCPClientAuthEnabled, Value: "false",
			Reason: "would leave the MCP endpoints without authentication: set TRUST_PROXY_AUTH=true (and TRUSTED_PROXY_CIDRS) behind an authenticating proxy, or AUTH_REQUIRED=false for local use"}
	case trust && !authRequired:
		return a, &passthrough.SettingError{Name: EnvTrustProxyAuth, Value: "true",
			Reason: "needs AUTH_REQUIRED=true: with it false nobody is authenticated, the proxy's users included"}
	}
	a.ProxyAuth = trust
	v, ok := get(EnvTrustedProxyCIDRs)
	if a.ProxyAuth && !ok {
		return a, &passthrough.SettingError{Name: EnvTrustedProxyCIDRs, Value: "",
			Reason: "required with TRUST_PROXY_AUTH=true: name the addresses or networks of the authenticating proxies (for example 10.0.0.5 or 10.0.0.0/24); a request from anywhere else may not name a user"}
	}
	networks, err := parseNetworks(EnvTrustedProxyCIDRs, v)
	if err != nil {
		return a, err
	}
	for _, p := range networks {
		if p.Bits() == 0 {
			return a, &passthrough.SettingError{Name: EnvTrustedProxyCIDRs, Value: v, Reason: fmt.Sprintf("%q is every address: anybody could then name any user; name the proxies' own addresses", p)}
		}
	}
	a.TrustedProxies = networks
	if v, ok := get(EnvProxyAdminUsers); ok {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				a.ProxyAdminUsers = append(a.ProxyAdminUsers, u)
			}
		}
	}
	if v, ok := get(EnvAccessDefault); ok {
		switch strings.ToLower(v) {
		case "allow":
		case "deny":
			a.DenyByDefault = true
		default:
			return a, &passthrough.SettingError{Name: EnvAccessDefault, Value: v, Reason: "must be allow or deny"}
		}
	}
	return a, nil
}

// parseNetworks reads setting name's comma list of IP addresses and CIDR
// networks (an address is the network of that one address), masked.
func parseNetworks(name, v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		p, err := netip.ParsePrefix(n)
		if err != nil {
			addr, aerr := netip.ParseAddr(strings.Trim(n, "[]"))
			if aerr != nil {
				return nil, &passthrough.SettingError{Name: name, Value: v, Reason: fmt.Sprintf("%q is neither an IP address nor a CIDR network like 10.1.2.0/24", n)}
			}
			p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
