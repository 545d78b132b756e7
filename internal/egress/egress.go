// Package egress decides which network addresses mcpgate may connect to for
// an upstream: its egress policy against server-side request forgery.
//
// Three classes of address:
//   - forbidden, always: link-local (169.254.0.0/16, fe80::/10), the cloud
//     metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200,
//     and the others in metadataAddrs), multicast, broadcast and reserved
//     addresses;
//   - loopback (127.0.0.0/8, ::1) and unspecified (0.0.0.0, ::, which reach
//     this host), refused unless the Policy allows loopback addresses or
//     lists the address in Allowed;
//   - private: RFC 1918, CGNAT (100.64.0.0/10), unique-local (fc00::/7) and
//     the other local-use ranges in privateNets, refused unless the Policy
//     allows private networks or lists the address in Allowed;
//   - everything else, allowed.
//
// An IPv4 address inside IPv6 (IPv4-mapped ::ffff:a.b.c.d, NAT64
// 64:ff9b::/96, 6to4 2002::/16, IPv4-compatible ::a.b.c.d) is judged as the
// IPv4 address it carries, so no spelling of 169.254.169.254 gets through.
//
// The check that counts is [Policy.Control], run by the dialer on the
// resolved address of every connection (so DNS rebinding cannot dodge it);
// [Policy.CheckHost] only gives an early, clear answer at registration for
// hosts written as IP literals or cloud-metadata names.
package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// Policy is an egress policy. The zero value refuses loopback and private
// addresses. The settings are ContextForge's.
type Policy struct {
	// AllowLoopback allows loopback and unspecified addresses
	// (SSRF_ALLOW_LOCALHOST).
	AllowLoopback bool
	// AllowPrivate allows the private networks (SSRF_ALLOW_PRIVATE_NETWORKS).
	AllowPrivate bool
	// Allowed are networks allowed even when AllowLoopback or AllowPrivate
	// is false (SSRF_ALLOWED_NETWORKS). They never allow a forbidden address.
	Allowed []netip.Prefix
}

// LocalPolicy allows loopback and private addresses (never link-local or
// metadata ones): for tools and tests that talk to servers on this machine.
func LocalPolicy() Policy { return Policy{AllowLoopback: true, AllowPrivate: true} }

// The settings that widen a Policy, named in refusals.
const (
	SettingAllowLocalhost       = "SSRF_ALLOW_LOCALHOST"
	SettingAllowPrivateNetworks = "SSRF_ALLOW_PRIVATE_NETWORKS"
	SettingAllowedNetworks      = "SSRF_ALLOWED_NETWORKS"
)

// RefusedError says why the policy refuses an address or a host. Its text
// is for the operator (logs, the admin API); clients are told only that the
// upstream is not reachable.
type RefusedError struct {
	Host   string // the address or host name refused
	Reason string // e.g. "a link-local address"
	// Private is true when a setting could allow it: Setting, or
	// SSRF_ALLOWED_NETWORKS.
	Private bool
	Setting string // SettingAllowLocalhost or SettingAllowPrivateNetworks
}

func (e *RefusedError) Error() string {
	if e.Private {
		return fmt.Sprintf("%s is %s: mcpgate connects there only when %s is true or %s lists it", e.Host, e.Reason, e.Setting, SettingAllowedNetworks)
	}
	return fmt.Sprintf("%s is %s, which mcpgate never connects to (server-side request forgery protection)", e.Host, e.Reason)
}

// metadataAddrs are cloud instance-metadata and platform endpoints outside
// the link-local range (or named for a clearer message): each hands out
// credentials or configuration to whoever asks from the instance.
var metadataAddrs = map[netip.Addr]string{
	netip.MustParseAddr("169.254.169.254"): "AWS, GCP, Azure, OpenStack and others",
	netip.MustParseAddr("169.254.170.2"):   "AWS ECS task credentials",
	netip.MustParseAddr("fd00:ec2::254"):   "AWS IPv6",
	netip.MustParseAddr("100.100.100.200"): "Alibaba Cloud",
	netip.MustParseAddr("168.63.129.16"):   "Azure WireServer",
	netip.MustParseAddr("192.0.0.192"):     "Oracle Cloud",
}

// metadataNames are the host names of metadata services; any name under
// them counts as well.
var metadataNames = []string{
	"metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.internal",
	"instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
}

var (
	forbiddenNets = []struct {
		prefix netip.Prefix
		reason string
	}{
		{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
		{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
		{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
		{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
		{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	}
	privateNets = []struct {
		prefix   netip.Prefix
		reason   string
		loopback bool // allowed by AllowLoopback, not AllowPrivate
	}{
		{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address", true},
		{netip.MustParsePrefix("::1/128"), "a loopback address", true},
		{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address (it reaches this host)", true},
		{netip.MustParsePrefix("::/128"), "an unspecified address (it reaches this host)", true},
		{netip.MustParsePrefix("10.0.0.0/8"), "a private address", false},
		{netip.MustParsePrefix("172.16.0.0/12"), "a private address", false},
		{netip.MustParsePrefix("192.168.0.0/16"), "a private address", false},
		{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address", false},
		{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address", false},
		{netip.MustParsePrefix("fc00::/7"), "a unique-local address", false},
		{netip.MustParsePrefix("fec0::/10"), "a site-local address", false},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address", false},
	}
	// embedding prefixes carry an IPv4 address in their last (or, for
	// 6to4, second to fifth) bytes.
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v4Compat    = netip.MustParsePrefix("::/96")
	broadcastV4 = netip.MustParseAddr("255.255.255.255")
)

// CheckAddr returns a *RefusedError when the policy refuses a connection to
// a, nil when it allows it.
func (p *Policy) CheckAddr(a netip.Addr) error {
	a = a.WithZone("")
	if v4, ok := embeddedV4(a); ok {
		if err := p.CheckAddr(v4); err != nil {
			err.(*RefusedError).Host = a.String() + " (" + v4.String() + ")"
			return err
		}
	}
	a = a.Unmap()
	if who, ok := metadataAddrs[a]; ok {
		return &RefusedError{Host: a.String(), Reason: "a cloud metadata address (" + who + ")"}
	}
	if a == broadcastV4 {
		return &RefusedError{Host: a.String(), Reason: "the broadcast address"}
	}
	for _, n := range forbiddenNets {
		if n.prefix.Contains(a) {
			return &RefusedError{Host: a.String(), Reason: n.reason}
		}
	}
	for _, n := range privateNets {
		if !n.prefix.Contains(a) {
			continue
		}
		if n.loopback && p.AllowLoopback || !n.loopback && p.AllowPrivate || p.allowed(a) {
			return nil
		}
		setting := SettingAllowPrivateNetworks
		if n.loopback {
			setting = SettingAllowLocalhost
		}
		return &RefusedError{Host: a.String(), Reason: n.reason, Private: true, Setting: setting}
	}
	return nil
}

func (p *Policy) allowed(a netip.Addr) bool {
	for _, n := range p.Allowed {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// embeddedV4 returns the IPv4 address an IPv6 address carries by one of the
// transition mechanisms (not IPv4-mapped, which Unmap handles).
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case v4Compat.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// Control is for net.Dialer.Control: it refuses, before the connection is
// made, an address the policy refuses. The dialer calls it with the
// resolved address of every connection attempt.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress policy: cannot read the address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}

// CheckHost checks the host of an upstream URL (url.URL.Hostname) before
// anything is resolved: an IP address in any spelling (including the
// decimal, octal, hex and short IPv4 forms some resolvers accept) is judged
// by CheckAddr, and must be written in its usual form; a cloud metadata
// name and localhost are refused as their addresses would be. Other names
// pass: their addresses are checked when they are connected to.
func (p *Policy) CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return p.CheckAddr(a)
	}
	for _, m := range metadataNames {
		if h == m || strings.HasSuffix(h, "."+m) {
			return &RefusedError{Host: host, Reason: "a cloud metadata host name"}
		}
	}
	// RFC 6761 §6.3: localhost names always resolve to loopback.
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		if p.AllowLoopback || p.allowed(netip.MustParseAddr("127.0.0.1")) {
			return nil
		}
		return &RefusedError{Host: host, Reason: "a loopback name", Private: true, Setting: SettingAllowLocalhost}
	}
	last := h[strings.LastIndex(h, ".")+1:]
	if last == "" || !numeric(last) {
		return nil // a DNS name: no top-level domain is all-numeric (RFC 3696 §2)
	}
	a, ok := parseInetAton(h)
	if !ok {
		return &RefusedError{Host: host, Reason: "neither a host name nor a valid IPv4 address"}
	}
	if err := p.CheckAddr(a); err != nil {
		err.(*RefusedError).Host = fmt.Sprintf("%s (%s)", host, a)
		return err
	}
	return &RefusedError{Host: host, Reason: fmt.Sprintf("%s written in an unusual form; write it as %s", a, a)}
}

// numeric reports whether a label is a number as inet_aton reads one:
// decimal, octal (leading 0) or hex (0x).
func numeric(label string) bool {
	if l, ok := strings.CutPrefix(label, "0x"); ok {
		label = l
		return strings.Trim(label, "0123456789abcdef") == ""
	}
	return strings.Trim(label, "0123456789") == ""
}

// parseInetAton reads an IPv4 address as BSD inet_aton does: one to four
// dot-separated numbers, each decimal, octal or hex, the last filling the
// remaining bytes ("2852039166", "169.254.43518", "0xa9.0376.169.254").
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		base := 10
		switch {
		case strings.HasPrefix(part, "0x"):
			base, part = 16, part[2:]
		case len(part) > 1 && part[0] == '0':
			base, part = 8, part[1:]
		}
		if part == "" && base != 16 {
			return netip.Addr{}, false
		}
		if part == "" {
			part = "0"
		}
		v, err := strconv.ParseUint(part, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
