package upstream

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/egress"
)

// TestProxiedRequestsAreChecked: behind an HTTP proxy the dialer only sees
// the proxy's address, so the target is checked before the request goes to
// the proxy: a forbidden one never reaches it, an allowed one does.
func TestProxiedRequestsAreChecked(t *testing.T) {
	ln, conns := fakeProxy(t)
	proxyURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	// The proxy is on loopback: allowed by listing it, as an operator would.
	policy := egress.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix(ln.Addr().(*net.TCPAddr).IP.String() + "/32")}}
	hc := NewHTTPClient(policy, nil)
	Pool(hc).Proxy = proxyChecked(&policy, http.ProxyURL(proxyURL))
	for _, target := range []string{"http://169.254.169.254/latest/", "http://2852039166/", "http://metadata.google.internal/", "http://[::1]/", "http://127.0.0.2/", "http://10.0.0.1/"} {
		resp, err := hc.Get(target)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s through the proxy: %s, want a refusal", target, resp.Status)
		}
		if !strings.Contains(err.Error(), "not reachable") {
			t.Errorf("GET %s: %v", target, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the proxy got %d connections for refused targets", n)
	}
	resp, err := hc.Get("http://192.0.2.1/") // TEST-NET-1: public as far as the policy knows
	if err != nil {
		t.Fatalf("GET an allowed target through the proxy: %v", err)
	}
	resp.Body.Close()
	if n := conns.Load(); n != 1 || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("an allowed target: %d proxy connections, status %s", n, resp.Status)
	}
}

// TestUnresolvableNameIsNotSentToProxy: behind a proxy, a name that does
// not resolve here cannot be checked (the proxy may resolve it to a private
// or metadata address), so it is refused before the proxy sees it — unless
// the policy allows loopback and private addresses, when only the
// forbidden class matters and the name check suffices.
func TestUnresolvableNameIsNotSentToProxy(t *testing.T) {
	ln, conns := fakeProxy(t)
	proxyURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	proxyNet := netip.MustParsePrefix(ln.Addr().(*net.TCPAddr).IP.String() + "/32")
	// RFC 6761 §6.4: .invalid names never resolve.
	const target = "http://only-the-proxy-resolves-this.invalid/mcp"
	for _, tc := range []struct {
		name      string
		policy    egress.Policy
		toProxy   bool
		wantInLog string
	}{
		{"default policy", egress.Policy{Allowed: []netip.Prefix{proxyNet}}, false, "does not resolve here"},
		{"private allowed, loopback not", egress.Policy{AllowPrivate: true, Allowed: []netip.Prefix{proxyNet}}, false, "does not resolve here"},
		{"loopback allowed, private not", egress.Policy{AllowLoopback: true}, false, "does not resolve here"},
		{"loopback and private allowed", egress.LocalPolicy(), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			hc := NewHTTPClient(tc.policy, slog.New(slog.NewTextHandler(&log, nil)))
			Pool(hc).Proxy = proxyChecked(&tc.policy, http.ProxyURL(proxyURL))
			before := conns.Load()
			resp, err := hc.Get(target)
			got := conns.Load() - before
			if !tc.toProxy {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET %s: %s from the proxy, want a refusal before it", target, resp.Status)
				}
				if err.Error() != "Get \""+target+"\": not reachable" {
					t.Errorf("GET %s: %q, want only \"not reachable\"", target, err)
				}
				if got != 0 {
					t.Errorf("the proxy got %d connections for an unresolvable name", got)
				}
				if !strings.Contains(log.String(), tc.wantInLog) {
					t.Errorf("the log does not say why: %s", log.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("GET %s with loopback and private allowed: %v, want it sent to the proxy", target, err)
			}
			resp.Body.Close()
			if got != 1 || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("%d proxy connections, status %s; want 1 and the proxy's 502", got, resp.Status)
			}
		})
	}
}

// fakeProxy is an HTTP proxy that answers every request 502, counting the
// connections it gets.
func fakeProxy(t *testing.T) (net.Listener, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			// Answer after reading the request: an answer before it is
			// one the client's transport may take for a stray.
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				c.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}
			c.Close()
		}
	}()
	return ln, conns
}
