package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/auth/authtest"
	"github.com/mcpgate/mcpgate/internal/config"
)

const gatewayAudience = "https://gw.example.com"

func providerClaims(iss, sub, aud string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": iss, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// TestIdentityProviderTokensOverTheWire: a gateway configured with an
// identity provider's JWKS URL accepts the provider's RS256 tokens meant for
// it, keeps accepting its own HS256 tokens, refuses the provider's tokens
// for another audience with a 401 naming the reason, and keys sessions by
// (issuer, subject): the provider's alice cannot use the session of
// mcpgate's alice.
func TestIdentityProviderTokensOverTheWire(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		key := authtest.NewKey(t, "RS256", "k1")
		idp := authtest.NewProvider(t, key)
		gw := startGateway(t, dbURL(t), map[string]string{
			config.EnvJWTJWKSURL: idp.JWKSURL(), config.EnvJWTIssuer: idp.URL, config.EnvJWTAudience: gatewayAudience,
		})
		ping := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}
		idpAlice := key.Sign(t, providerClaims(idp.URL, "alice", gatewayAudience))
		if status, out := doAs(t, gw, idpAlice, "POST", "/rpc", ping); status != http.StatusOK {
			t.Fatalf("the provider's token: %d %s", status, out)
		}
		j, _ := auth.NewJWT([]byte(jwtSecret))
		ownAlice, _ := j.MintWith("alice", time.Hour, time.Now(), auth.MintOptions{Audience: gatewayAudience})
		if status, out := doAs(t, gw, ownAlice, "POST", "/rpc", ping); status != http.StatusOK {
			t.Fatalf("mcpgate's own token: %d %s", status, out)
		}
		other := key.Sign(t, providerClaims(idp.URL, "alice", "https://payroll.example.com"))
		status, out := doAs(t, gw, other, "POST", "/rpc", ping)
		if status != http.StatusUnauthorized || !strings.Contains(string(out), "wrong_audience") || strings.Contains(string(out), other) {
			t.Errorf("a token for another service: %d %s, want 401 naming wrong_audience without the token", status, out)
		}

		initialize := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
			"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "t", "version": "1"}}}
		mine := *gw
		mine.token = ownAlice
		session := openSessionAt(t, &mine, "/mcp", initialize)
		list := map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
		if status, out := doAs(t, gw, idpAlice, "POST", "/mcp", list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", session); status != http.StatusNotFound {
			t.Errorf("another issuer's alice in mcpgate's alice's session: %d %s, want 404", status, out)
		}
		if status, out := doAs(t, gw, ownAlice, "POST", "/mcp", list, "Accept", "application/json, text/event-stream", "Mcp-Session-Id", session); status != http.StatusOK {
			t.Errorf("the owner: %d %s", status, out)
		}
	})
}

// TestStartRefusesProviderKeysWithoutAudience: with an identity provider's
// keys and no JWT_AUDIENCE, any token the provider issued for any service
// would pass, so start-up stops naming the setting.
func TestStartRefusesProviderKeysWithoutAudience(t *testing.T) {
	idp := authtest.NewProvider(t, authtest.NewKey(t, "ES256", "k1"))
	vars := map[string]string{"DATABASE_URL": "sqlite:///" + filepath.Join(t.TempDir(), "m.db"), "MCPGATE_ENV_FILE": filepath.Join(t.TempDir(), "x.env"),
		config.EnvJWTJWKSURL: idp.JWKSURL()}
	_ = os.WriteFile(vars["MCPGATE_ENV_FILE"], nil, 0o600)
	cfg, err := config.Load(nil, func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, slog.New(slog.DiscardHandler), "test")
	if err == nil || !strings.Contains(err.Error(), "JWT_AUDIENCE") {
		t.Errorf("error = %v, want one naming JWT_AUDIENCE", err)
	}
}
