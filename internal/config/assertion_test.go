package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/passthrough"
)

func TestIdentityAssertionSettings(t *testing.T) {
	cfg, err := Load(parsedFlags(t), environ(map[string]string{EnvEnvFile: writeEnvFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Gateway.IdentityAssertion; got != DefaultIdentityAssertion || got.Header != "X-Mcpgate-Identity" || got.TTL != time.Minute {
		t.Errorf("defaults %+v", got)
	}
	cfg, err = Load(parsedFlags(t, "--identity-assertion-ttl=5"), environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""),
		EnvIdentityAssertionHeader: "X-Mcpgate-Caller", EnvIdentityAssertionIssuer: "https://gw.example.com",
		EnvIdentityAssertionKeyRotation: "24h", EnvIdentityAssertionKeyLead: "0"}))
	if err != nil {
		t.Fatal(err)
	}
	want := IdentityAssertion{Header: "X-Mcpgate-Caller", TTL: 5 * time.Second, Issuer: "https://gw.example.com", KeyRotation: 24 * time.Hour}
	if got := cfg.Gateway.IdentityAssertion; got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestIdentityAssertionHeaderIsOneMcpgateNeverForwards: a header a client
// could send through an allowlist is refused at start-up, naming the
// setting.
func TestIdentityAssertionHeaderIsOneMcpgateNeverForwards(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{EnvIdentityAssertionHeader, "X-Identity"},
		{EnvIdentityAssertionHeader, "X-Mcpgate-"},
		{EnvIdentityAssertionHeader, "X-Mcpgate-Id:x"},
		{EnvIdentityAssertionTTL, "0"},
		{EnvIdentityAssertionTTL, "2h"},
		{EnvIdentityAssertionKeyRotation, "-1s"},
	} {
		_, err := Load(parsedFlags(t), environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""), tc.name: tc.value}))
		var se *passthrough.SettingError
		if !errors.As(err, &se) || se.Name != tc.name || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%q: %v, want an error naming %s", tc.name, tc.value, err, tc.name)
		}
	}
	if passthrough.NewPolicy(passthrough.Settings{}).NeverForwarded(DefaultIdentityAssertion.Header) == 0 {
		t.Errorf("the passthrough engine may forward a client's %s", DefaultIdentityAssertion.Header)
	}
}
