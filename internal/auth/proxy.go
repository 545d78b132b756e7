package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
)

// ProxyIssuer is the Issuer of the identities a trusted proxy names.
const ProxyIssuer = "proxy"

// TrustedProxy authenticates the users an authenticating proxy in front of
// mcpgate names in a header, as ContextForge's TRUST_PROXY_AUTH does: the
// header counts only on requests whose peer address — the TCP connection's,
// never X-Forwarded-For, which anybody can write — is in Networks.
type TrustedProxy struct {
	Header   string         // PROXY_USER_HEADER
	Networks []netip.Prefix // TRUSTED_PROXY_CIDRS
	Admins   []string       // PROXY_ADMIN_USERS: users who also get the admin role
}

// maxProxyUser bounds the user name a proxy may pass.
const maxProxyUser = 256

// Identify returns the identity the proxy names on r; named is false when r
// carries no such header. A header from outside Networks, repeated, empty
// or unusable is an error saying why, never quoting the value.
func (p *TrustedProxy) Identify(r *http.Request) (id Identity, named bool, err error) {
	vals := r.Header.Values(p.Header)
	if len(vals) == 0 {
		return Identity{}, false, nil
	}
	if !p.trusted(r.RemoteAddr) {
		return Identity{}, true, fmt.Errorf("%s may only be set by the trusted authenticating proxy, and this request does not come from TRUSTED_PROXY_CIDRS", p.Header)
	}
	if len(vals) != 1 || vals[0] == "" || len(vals[0]) > maxProxyUser || !plainText(vals[0]) {
		return Identity{}, true, fmt.Errorf("%s must be given once, with a user name of 1 to %d printable characters", p.Header, maxProxyUser)
	}
	user := vals[0]
	id = Identity{Issuer: ProxyIssuer, Subject: user, Roles: []Role{RoleClient}}
	if slices.Contains(p.Admins, user) {
		id.Roles = append(id.Roles, RoleAdmin)
	}
	return id, true, nil
}

func (p *TrustedProxy) trusted(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.Networks {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func plainText(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
