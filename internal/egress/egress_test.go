package egress_test

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/egress"
)

// TestCheckAddrClasses: link-local and metadata addresses are refused
// whatever the policy says, in every IPv6 spelling of their IPv4 address;
// loopback ones only without AllowLoopback, private ones only without
// AllowPrivate.
func TestCheckAddrClasses(t *testing.T) {
	for _, tc := range []struct {
		addr      string
		forbidden bool // refused even with AllowLoopback and AllowPrivate
		private   bool // refused by the zero Policy
	}{
		{"169.254.169.254", true, true},
		{"::ffff:169.254.169.254", true, true},
		{"::ffff:a9fe:a9fe", true, true},
		{"64:ff9b::a9fe:a9fe", true, true}, // NAT64
		{"2002:a9fe:a9fe::1", true, true},  // 6to4
		{"::169.254.169.254", true, true},  // IPv4-compatible
		{"169.254.1.1", true, true},
		{"fe80::1", true, true},
		{"fe80::1%eth0", true, true},
		{"fd00:ec2::254", true, true},   // AWS IPv6 metadata, inside fc00::/7
		{"100.100.100.200", true, true}, // Alibaba, inside 100.64.0.0/10
		{"169.254.170.2", true, true},
		{"224.0.0.1", true, true},
		{"255.255.255.255", true, true},
		{"127.0.0.1", false, true},
		{"127.1.2.3", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"0.0.0.0", false, true},
		{"::", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"172.31.255.255", false, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"fd12:3456::1", false, true},
		{"8.8.8.8", false, false},
		{"172.32.0.1", false, false},
		{"2606:4700::1111", false, false},
		{"::ffff:8.8.8.8", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		strict := egress.Policy{}
		local := egress.LocalPolicy()
		if got := strict.CheckAddr(a) != nil; got != tc.private {
			t.Errorf("strict policy, %s: refused %v, want %v", tc.addr, got, tc.private)
		}
		if got := local.CheckAddr(a) != nil; got != tc.forbidden {
			t.Errorf("LocalPolicy, %s: refused %v, want %v", tc.addr, got, tc.forbidden)
		}
	}
}

// TestLoopbackAndPrivateAreSeparate: SSRF_ALLOW_LOCALHOST and
// SSRF_ALLOW_PRIVATE_NETWORKS each allow their own class only, as in
// ContextForge, and a refusal names the setting that would allow it.
func TestLoopbackAndPrivateAreSeparate(t *testing.T) {
	loopbackOnly := egress.Policy{AllowLoopback: true}
	privateOnly := egress.Policy{AllowPrivate: true}
	for _, tc := range []struct {
		addr          string
		policy        egress.Policy
		refusedNaming string // "" means allowed
	}{
		{"127.0.0.1", loopbackOnly, ""},
		{"::1", loopbackOnly, ""},
		{"0.0.0.0", loopbackOnly, ""},
		{"10.0.0.1", loopbackOnly, "SSRF_ALLOW_PRIVATE_NETWORKS"},
		{"fd12::1", loopbackOnly, "SSRF_ALLOW_PRIVATE_NETWORKS"},
		{"10.0.0.1", privateOnly, ""},
		{"192.168.7.7", privateOnly, ""},
		{"127.0.0.1", privateOnly, "SSRF_ALLOW_LOCALHOST"},
		{"::ffff:127.0.0.1", privateOnly, "SSRF_ALLOW_LOCALHOST"},
	} {
		err := tc.policy.CheckAddr(netip.MustParseAddr(tc.addr))
		switch {
		case tc.refusedNaming == "" && err != nil:
			t.Errorf("%+v, %s: refused (%v), want allowed", tc.policy, tc.addr, err)
		case tc.refusedNaming != "" && (err == nil || !strings.Contains(err.Error(), tc.refusedNaming)):
			t.Errorf("%+v, %s: %v, want a refusal naming %s", tc.policy, tc.addr, err, tc.refusedNaming)
		}
	}
	if err := privateOnly.CheckHost("localhost"); err == nil || !strings.Contains(err.Error(), "SSRF_ALLOW_LOCALHOST") {
		t.Errorf("AllowPrivate only, CheckHost(localhost) = %v, want a refusal naming SSRF_ALLOW_LOCALHOST", err)
	}
}

// TestAllowedNetworks: a listed network allows its private addresses, and
// nothing else.
func TestAllowedNetworks(t *testing.T) {
	p := egress.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("169.254.0.0/16")}}
	for addr, refused := range map[string]bool{
		"10.1.2.3":        false,
		"10.2.0.1":        true,
		"127.0.0.1":       true,
		"169.254.169.254": true, // never, even when listed
	} {
		if got := p.CheckAddr(netip.MustParseAddr(addr)) != nil; got != refused {
			t.Errorf("%s: refused %v, want %v", addr, got, refused)
		}
	}
}

// TestCheckHostSpellings: every spelling of a forbidden address, and the
// metadata names, are refused before anything is resolved; unusual
// spellings of allowed addresses are refused too (they only serve to dodge
// filters), with the usual spelling in the message.
func TestCheckHostSpellings(t *testing.T) {
	p := egress.LocalPolicy()
	for _, host := range []string{
		"169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518", "0xa9.0xfe.0xa9.0xfe",
		"::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "fe80::1%eth0", "fd00:ec2::254", "100.100.100.200",
		"metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata", "metadata.goog", "instance-data.ec2.internal",
		"1.2.3.999", "1.2.3.4.5",
	} {
		if err := p.CheckHost(host); err == nil {
			t.Errorf("CheckHost(%q) = nil, want a refusal", host)
		}
	}
	err := p.CheckHost("2130706433")
	if err == nil || !strings.Contains(err.Error(), "write it as 127.0.0.1") {
		t.Errorf("CheckHost(2130706433) = %v, want the usual spelling named", err)
	}
	for _, host := range []string{"example.com", "mcp.example.com.", "127.0.0.1", "localhost", "10.0.0.1", "::1", "8.8.8.8", "1e100.net", "my-metadata.example.com"} {
		if err := p.CheckHost(host); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", host, err)
		}
	}
	strict := egress.Policy{}
	for _, host := range []string{"127.0.0.1", "localhost", "api.localhost", "10.0.0.1", "::1"} {
		var re *egress.RefusedError
		if err := strict.CheckHost(host); !errors.As(err, &re) || !re.Private || !strings.Contains(err.Error(), "SSRF_ALLOW") {
			t.Errorf("strict CheckHost(%q) = %v, want a private refusal naming the SSRF_ALLOW_* setting", host, err)
		}
	}
}

// TestControlRefusesBeforeConnecting: a dialer with the policy's Control
// never opens a connection to a refused address, here a real listener on
// loopback that records whether anything connected.
func TestControlRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	strict := egress.Policy{}
	d := net.Dialer{Control: strict.Control}
	for _, addr := range []string{ln.Addr().String(), net.JoinHostPort("localhost", strconv.Itoa(port))} {
		c, err := d.Dial("tcp", addr)
		var re *egress.RefusedError
		if err == nil {
			c.Close()
			t.Fatalf("dial %s: connected, want the policy's refusal", addr)
		}
		if !errors.As(err, &re) {
			t.Fatalf("dial %s: %v, want a *RefusedError", addr, err)
		}
	}
	// The listener works: the same dial with the local policy connects.
	local := egress.LocalPolicy()
	d = net.Dialer{Control: local.Control}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with AllowPrivate: %v", err)
	}
	c.Close()
	<-accepted // connections are accepted in order: a refused dial's would be queued first
	if n := len(accepted); n != 0 {
		t.Fatalf("the listener saw %d more connections, from refused dials", n)
	}
}
