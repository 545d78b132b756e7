package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestCrossOriginWritesRefused: with AUTH_REQUIRED=false, a page on
// another origin — another port of localhost included — cannot register an
// upstream or open an MCP session: its Origin is compared whole (scheme,
// host and port) with the origin mcpgate was reached at. mcpgate's own
// origin and requests without Origin pass.
func TestCrossOriginWritesRefused(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false"})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.url, "http://"))
	self := "localhost:" + port
	other := "http://localhost:9999"
	if port == "9999" {
		other = "http://localhost:9998"
	}
	registration := func(name string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "url": up.URL})
		return string(b)
	}
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	accept := "application/json, text/event-stream"
	for _, c := range []struct {
		name, origin, contentType string
		want                      int
	}{
		// The attack: a simple request from a page on another port.
		{"text/plain from another port", other, "text/plain", http.StatusForbidden},
		{"JSON from another port", other, "application/json", http.StatusForbidden},
		{"another scheme and port", "https://localhost:9443", "application/json", http.StatusForbidden},
		{"another scheme, same host and port", "https://" + self, "application/json", http.StatusForbidden},
		{"another host, same port", "http://127.0.0.2:" + port, "application/json", http.StatusForbidden},
		{"opaque origin", "null", "application/json", http.StatusForbidden},
		{"text/plain from its own origin", "http://" + self, "text/plain", http.StatusUnsupportedMediaType},
		{"its own origin", "http://" + self, "application/json", http.StatusCreated},
		{"no Origin", "", "application/json", http.StatusCreated},
	} {
		name := strings.NewReplacer(" ", "-", "/", "-").Replace(c.name)
		headers := []string{"Host", self, "Content-Type", c.contentType}
		if c.origin != "" {
			headers = append(headers, "Origin", c.origin)
		}
		status, out := gw.send("POST", "/gateways", registration(name), headers...)
		if status != c.want {
			t.Errorf("POST /gateways, %s (Origin %q): %d %s; want %d", c.name, c.origin, status, out, c.want)
		}
		if status == http.StatusForbidden && !strings.Contains(out, "ALLOWED_HOSTS") {
			t.Errorf("%s: the refusal %s does not say how to allow an origin", c.name, out)
		}
		// The same for opening an MCP session.
		want := c.want
		if want == http.StatusCreated {
			want = http.StatusOK
		}
		if status, out := gw.send("POST", "/mcp", initialize, append(headers, "Accept", accept)...); status != want {
			t.Errorf("POST /mcp, %s (Origin %q): %d %s; want %d", c.name, c.origin, status, out, want)
		}
	}
	// Nothing the refused requests sent was registered.
	_, out := gw.do("GET", "/gateways", nil)
	var list []struct{ Name string }
	_ = json.Unmarshal(out, &list)
	if len(list) != 2 {
		t.Errorf("registered %d upstreams, want the 2 allowed: %s", len(list), out)
	}
}

// TestAllowedHostsListsOrigins: an origin written in ALLOWED_HOSTS may call
// mcpgate from a browser; another port of its host may not.
func TestAllowedHostsListsOrigins(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false", "ALLOWED_HOSTS": "gw.internal, http://localhost:6274"})
	const list = `{"passthrough_headers":["X-Tenant-Id"]}`
	for origin, want := range map[string]int{"http://localhost:6274": http.StatusOK, "http://localhost:6275": http.StatusForbidden, "https://localhost:6274": http.StatusForbidden} {
		if status, out := gw.send("PUT", "/admin/config/passthrough-headers", list, "Content-Type", "application/json", "Origin", origin); status != want {
			t.Errorf("Origin %s: %d %s; want %d", origin, status, out, want)
		}
	}
}

// TestOriginCheckedOnEveryListener: the Origin check guards a listener on
// a non-loopback address too (a browser reaches any mcpgate it can route
// to), while the Host check, against DNS rebinding of loopback, does not
// apply there.
func TestOriginCheckedOnEveryListener(t *testing.T) {
	addr := nonLoopbackAddress(t)
	gw := startGatewayWith(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false"}, gatewayOptions{listen: net.JoinHostPort(addr, "0")})
	host := strings.TrimPrefix(gw.url, "http://")
	// The global list, not an upstream: which upstream addresses may be
	// registered from such a listener is the egress policy's business.
	const list = `{"passthrough_headers":["X-Tenant-Id"]}`
	const path = "/admin/config/passthrough-headers"
	if status, out := gw.send("PUT", path, list, "Content-Type", "text/plain", "Origin", "http://evil.example"); status != http.StatusForbidden {
		t.Errorf("cross-origin PUT on %s: %d %s; want 403", host, status, out)
	}
	if status, out := gw.send("PUT", path, list, "Content-Type", "application/json", "Origin", "http://"+net.JoinHostPort(addr, "1")); status != http.StatusForbidden {
		t.Errorf("PUT from another port on %s: %d %s; want 403", host, status, out)
	}
	if status, out := gw.send("PUT", path, list, "Content-Type", "application/json", "Origin", "http://"+host); status != http.StatusOK {
		t.Errorf("same-origin PUT on %s: %d %s; want 200", host, status, out)
	}
	if status, out := gw.send("GET", "/health", "", "Host", "gw.example.com"); status != http.StatusOK {
		t.Errorf("another Host on a non-loopback listener: %d %s; want 200", status, out)
	}
}

// nonLoopbackAddress returns an address of this machine that is not
// loopback, or skips the test.
func nonLoopbackAddress(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

// TestRebindingPageIsNotItsOwnOrigin: a page whose name DNS rebinding
// pointed at mcpgate sends a Host and an Origin that agree. On a listener
// that is not loopback (where no Host check runs) that Origin still counts
// as mcpgate's own only for a name in ALLOWED_HOSTS or an IP address.
func TestRebindingPageIsNotItsOwnOrigin(t *testing.T) {
	gw := startGatewayWith(t, sqliteURL(t), map[string]string{"AUTH_REQUIRED": "false", "ALLOWED_HOSTS": "gw.example.com"},
		gatewayOptions{listen: "0.0.0.0:0"})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.url, "http://"))
	const list = `{"passthrough_headers":["X-Tenant-Id"]}`
	const path = "/admin/config/passthrough-headers"
	for _, c := range []struct {
		host string
		want int
	}{
		{"evil.example:" + port, http.StatusForbidden}, // the rebinding page
		{"gw.example.com:" + port, http.StatusOK},      // a name the operator listed
		{"127.0.0.1:" + port, http.StatusOK},           // an address cannot be rebound
		{"localhost:" + port, http.StatusOK},
	} {
		status, out := gw.send("PUT", path, list, "Host", c.host, "Content-Type", "application/json", "Origin", "http://"+c.host)
		if status != c.want {
			t.Errorf("Host and Origin %s: %d %s; want %d", c.host, status, out, c.want)
		}
		if status == http.StatusForbidden && !strings.Contains(out, "ALLOWED_HOSTS") {
			t.Errorf("%s: the refusal %s does not say how to allow the name", c.host, out)
		}
	}
}

// TestOwnOriginUnderAnyNameWithTokens: while clients need a token, a
// rebinding page has none, so a client that names mcpgate by a DNS name in
// both Host and Origin (Python's websocket-client sends its target as
// Origin) is let in.
func TestOwnOriginUnderAnyNameWithTokens(t *testing.T) {
	gw := startGatewayWith(t, sqliteURL(t), nil, gatewayOptions{listen: "0.0.0.0:0"})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.url, "http://"))
	host := "mcp.internal:" + port
	if status, out := gw.send("GET", "/gateways", "", "Host", host, "Origin", "http://"+host); status != http.StatusOK {
		t.Errorf("Host and Origin %s with a token: %d %s; want 200", host, status, out)
	}
	if status, out := gw.send("GET", "/gateways", "", "Host", host, "Origin", "http://evil.example:"+port); status != http.StatusForbidden {
		t.Errorf("another origin with a token: %d %s; want 403", status, out)
	}
}
