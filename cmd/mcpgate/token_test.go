package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
)

const tokenTestSecret = "0123456789abcdef0123456789abcdef-token-test"

// verifyMinted checks a minted token as the gateway does with its defaults
// (admin scope mcpgate:admin) and audience aud.
func verifyMinted(t *testing.T, token string, aud ...string) auth.Identity {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(tokenTestSecret), Audiences: aud, RequireExpiration: true, AdminScope: "mcpgate:admin"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), strings.TrimSpace(token), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTokenRoles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		admin  bool
		scopes string
	}{
		{"no role flag: client only", nil, false, ""},
		{"--admin", []string{"--admin"}, true, "mcpgate:admin"},
		{"--scope", []string{"--scope", "tools:read, tools:call"}, false, "tools:read,tools:call"},
		{"--scope with the admin scope", []string{"--scope", "mcpgate:admin"}, true, "mcpgate:admin"},
		{"--admin and --scope", []string{"--admin", "--scope", "a"}, true, "a,mcpgate:admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"token", "--subject", "ops"}, tc.args...)
			code, stdout, stderr := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+tokenTestSecret), args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			id := verifyMinted(t, stdout)
			if id.Subject != "ops" || id.Issuer != auth.Issuer || id.Has(auth.RoleAdmin) != tc.admin || !id.Has(auth.RoleClient) || strings.Join(id.Scopes, ",") != tc.scopes {
				t.Errorf("identity %+v, want admin %v, scopes %q", id, tc.admin, tc.scopes)
			}
		})
	}
}

func TestTokenCarriesTheConfiguredAudience(t *testing.T) {
	code, stdout, stderr := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+tokenTestSecret, "JWT_AUDIENCE=https://gw.example.com,other"), "token")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	verifyMinted(t, stdout, "https://gw.example.com")
}

func TestTokenAdminScopeFollowsTheSetting(t *testing.T) {
	code, stdout, _ := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+tokenTestSecret, "JWT_ADMIN_SCOPE=gw:admin"), "token", "--admin")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if id := verifyMinted(t, stdout); strings.Join(id.Scopes, ",") != "gw:admin" {
		t.Errorf("scopes = %v, want gw:admin", id.Scopes)
	}
}

func TestTokenRefusesAScopeWithAQuote(t *testing.T) {
	code, _, stderr := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+tokenTestSecret), "token", "--scope", `a"b`)
	if code != exitUsage || !strings.Contains(stderr, "scope") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
