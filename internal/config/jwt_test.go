package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

func TestJWTDefaults(t *testing.T) {
	cfg, err := Load(nil, environ(map[string]string{EnvEnvFile: writeEnvFile(t, "")}))
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.Gateway.JWT
	if !j.RequireExpiration || !j.IssuerVerification || !j.AudienceVerification || j.KeySource() ||
		j.AdminScope != "mcpgate:admin" || strings.Join(j.AdminClaims, ",") != "is_admin,user.is_admin" || j.GroupsClaim != "groups" || len(j.Issuers)+len(j.Audiences) != 0 {
		t.Errorf("defaults = %+v", j)
	}
}

func TestJWTSettingsRead(t *testing.T) {
	cfg, err := Load(nil, environ(map[string]string{EnvEnvFile: writeEnvFile(t, ""),
		EnvJWTAlgorithm: "HS256,RS256", EnvJWTJWKSURL: "https://idp.example/keys", EnvJWTIssuer: "mcpgateway, https://idp.example",
		EnvJWTAudience: "mcpgateway-api", EnvRequireTokenExpiration: "false", EnvJWTAdminGroups: "ops,platform"}))
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.Gateway.JWT
	if !slices.Equal(j.Algorithms, []string{"RS256"}) || !slices.Equal(j.Issuers, []string{"mcpgateway", "https://idp.example"}) ||
		!slices.Equal(j.Audiences, []string{"mcpgateway-api"}) || j.RequireExpiration || !slices.Equal(j.AdminGroups, []string{"ops", "platform"}) || !j.KeySource() {
		t.Errorf("settings = %+v", j)
	}
}

func TestJWTSettingErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		setting string
		says    string
	}{
		{"unknown algorithm", map[string]string{EnvJWTAlgorithm: "HS512"}, EnvJWTAlgorithm, `"HS512" is not one of`},
		{"none", map[string]string{EnvJWTAlgorithm: "none"}, EnvJWTAlgorithm, "is not one of"},
		{"public-key algorithm without a key", map[string]string{EnvJWTAlgorithm: "RS256"}, EnvJWTAlgorithm, "JWT_JWKS_URL"},
		{"discovery without issuer", map[string]string{EnvJWTOIDCDiscovery: "true"}, EnvJWTIssuer, "exactly one issuer"},
		{"discovery with two issuers", map[string]string{EnvJWTOIDCDiscovery: "true", EnvJWTIssuer: "https://a,https://b"}, EnvJWTIssuer, "exactly one issuer"},
		{"discovery issuer not a URL", map[string]string{EnvJWTOIDCDiscovery: "true", EnvJWTIssuer: "mcpgateway"}, EnvJWTIssuer, "issuer URL"},
		{"two key sources", map[string]string{EnvJWTJWKSURL: "https://idp/keys", EnvJWTPublicKeyPath: "/k.pem"}, EnvJWTJWKSURL, "one key source"},
		{"JWKS URL not http", map[string]string{EnvJWTJWKSURL: "file:///etc/keys"}, EnvJWTJWKSURL, "https://"},
		{"expiration switch", map[string]string{EnvRequireTokenExpiration: "sometimes"}, EnvRequireTokenExpiration, "true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{EnvEnvFile: writeEnvFile(t, "")}
			for k, v := range tc.env {
				vars[k] = v
			}
			_, err := Load(nil, environ(vars))
			var se *passthrough.SettingError
			if !errors.As(err, &se) || se.Name != tc.setting || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error = %v, want one naming %s that says %q", err, tc.setting, tc.says)
			}
		})
	}
}
