package config

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

// loadWith loads the configuration from exactly vars.
func loadWith(t *testing.T, vars map[string]string) (Config, error) {
	t.Helper()
	vars[EnvEnvFile] = filepath.Join(t.TempDir(), "absent.env")
	return Load(nil, func(name string) (string, bool) {
		v, ok := vars[name]
		if name == EnvEnvFile {
			return "", false
		}
		return v, ok
	})
}

// TestTrustedProxySettingsAreRefusedUnlessSafe: trusted-proxy
// authentication starts only with the proxies named, never every address,
// and only as ContextForge pairs its settings; each refusal names the
// setting to change.
func TestTrustedProxySettingsAreRefusedUnlessSafe(t *testing.T) {
	proxy := map[string]string{EnvTrustProxyAuth: "true", EnvMCPClientAuthEnabled: "false"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range proxy {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name    string
		vars    map[string]string
		setting string
		words   []string
	}{
		{"no proxies named", with(nil), EnvTrustedProxyCIDRs, []string{"required with TRUST_PROXY_AUTH"}},
		{"every IPv4 address", with(map[string]string{EnvTrustedProxyCIDRs: "10.0.0.1, 0.0.0.0/0"}), EnvTrustedProxyCIDRs, []string{`"0.0.0.0/0" is every address`}},
		{"every IPv6 address", with(map[string]string{EnvTrustedProxyCIDRs: "::/0"}), EnvTrustedProxyCIDRs, []string{"every address"}},
		{"not a network", with(map[string]string{EnvTrustedProxyCIDRs: "proxy.internal"}), EnvTrustedProxyCIDRs, []string{`"proxy.internal"`, "CIDR"}},
		{"trust while client auth is on", map[string]string{EnvTrustProxyAuth: "true", EnvTrustedProxyCIDRs: "10.0.0.1"}, EnvTrustProxyAuth, []string{"MCP_CLIENT_AUTH_ENABLED=false"}},
		{"client auth off without a proxy", map[string]string{EnvMCPClientAuthEnabled: "false"}, EnvMCPClientAuthEnabled, []string{"TRUST_PROXY_AUTH=true", "AUTH_REQUIRED=false"}},
		{"proxy without authentication", with(map[string]string{EnvTrustedProxyCIDRs: "10.0.0.1", EnvAuthRequired: "false"}), EnvTrustProxyAuth, []string{"AUTH_REQUIRED=true"}},
		{"access default", map[string]string{EnvAccessDefault: "maybe"}, EnvAccessDefault, []string{"allow or deny"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadWith(t, c.vars)
			var se *passthrough.SettingError
			if !errors.As(err, &se) || se.Name != c.setting {
				t.Fatalf("err %v, want a SettingError naming %s", err, c.setting)
			}
			for _, w := range c.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	cfg, err := loadWith(t, with(map[string]string{EnvTrustedProxyCIDRs: "10.0.0.7, 192.168.1.0/24,[::1]", EnvProxyAdminUsers: "ops, root"}))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Gateway.Access
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.7/32"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("::1/128")}
	if !a.ProxyAuth || !slices.Equal(a.TrustedProxies, want) || !slices.Equal(a.ProxyAdminUsers, []string{"ops", "root"}) || a.DenyByDefault {
		t.Errorf("access settings %+v", a)
	}
}
