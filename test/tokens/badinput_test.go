package tokens

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/auth/authtest"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

const audience = "https://gw.example.com"

// post sends a ping to path with token and returns status and body.
func post(t *testing.T, gw *gatewaytest.Gateway, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", gw.URL+path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func hs256(t *testing.T, claims jwt.Claims, key []byte) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBadTokensAreRefusedByName: every kind of bad token is refused with a
// 401 whose detail names the reason and never contains the token, on /rpc,
// /mcp and the admin API; none yields a 5xx. The gateway accepts HS256 with
// its secret and RS256, ES256 and EdDSA from the provider's JWKS, checking
// issuer and audience.
func TestBadTokensAreRefusedByName(t *testing.T) {
	rsa := authtest.NewKey(t, "RS256", "rsa-1")
	idp := authtest.NewProvider(t, rsa, authtest.NewKey(t, "ES256", "ec-1"))
	gw := gatewaytest.StartWith(t, mcpgateBinary, map[string]string{
		"JWT_JWKS_URL": idp.JWKSURL(), "JWT_ISSUER": idp.URL, "JWT_AUDIENCE": audience,
	})
	secret := []byte(gatewaytest.JWTSecret)
	now := time.Now()
	good := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": idp.URL, "sub": "alice", "aud": audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	enc := base64.RawURLEncoding
	pemBytes, _ := rsa.PublicPEM(t)
	goodRSA := rsa.Sign(t, good(nil))
	parts := strings.Split(goodRSA, ".")
	tampered, _ := json.Marshal(good(func(c jwt.MapClaims) { c["sub"] = "root" }))
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, good(nil))
	confused.Header["kid"] = "rsa-1"
	confusedToken, err := confused.SignedString(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	stranger := authtest.NewKey(t, "RS256", "not-published")

	// The good ones first: the table below is about their neighbours.
	ownToken := hs256(t, good(func(c jwt.MapClaims) { c["iss"] = "mcpgate" }), secret)
	for name, tok := range map[string]string{"RS256": goodRSA, "HS256": ownToken} {
		if status, body := post(t, gw, "/rpc", tok); status != http.StatusOK {
			t.Fatalf("a good %s token: %d %s", name, status, body)
		}
	}

	for _, tc := range []struct {
		name, token, reason string
	}{
		{"malformed", "not-a-jwt", "malformed"},
		{"two parts", parts[0] + "." + parts[1], "malformed"},
		{"oversized", parts[0] + "." + strings.Repeat("A", 9000) + "." + parts[2], "malformed"},
		{"expired", rsa.Sign(t, good(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), "expired"},
		{"not yet valid", rsa.Sign(t, good(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "not_yet_valid"},
		{"no exp", rsa.Sign(t, good(func(c jwt.MapClaims) { delete(c, "exp") })), "missing_claim"},
		{"no sub", rsa.Sign(t, good(func(c jwt.MapClaims) { delete(c, "sub") })), "missing_claim"},
		{"wrong issuer", rsa.Sign(t, good(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "wrong_issuer"},
		{"wrong audience", rsa.Sign(t, good(func(c jwt.MapClaims) { c["aud"] = "https://payroll.example" })), "wrong_audience"},
		{"alg none", enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", "wrong_algorithm"},
		{"HS512", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, good(nil)).SignedString(secret)
			return s
		}(), "wrong_algorithm"},
		{"algorithm confusion: HS256 keyed with the RSA public key", confusedToken, "bad_signature"},
		{"tampered claims", parts[0] + "." + enc.EncodeToString(tampered) + "." + parts[2], "bad_signature"},
		{"HS256 with another secret", hs256(t, good(nil), []byte(strings.Repeat("x", 40))), "bad_signature"},
		{"unknown kid", stranger.Sign(t, good(nil)), "unknown_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/rpc", "/mcp", "/gateways"} {
				status, body := post(t, gw, path, tc.token)
				if status != http.StatusUnauthorized {
					t.Errorf("%s: %d %s, want 401", path, status, body)
				}
				if !strings.Contains(body, "("+tc.reason+")") {
					t.Errorf("%s: %s does not name %s", path, body, tc.reason)
				}
				if strings.Contains(body, tc.token) || (len(tc.token) > 40 && strings.Contains(body, tc.token[len(tc.token)-40:])) {
					t.Errorf("%s: the answer echoes the token: %s", path, body)
				}
			}
		})
	}

	// A provider that goes down or serves garbage changes none of it.
	for _, answer := range []string{authtest.Down, authtest.Garbage} {
		idp.Set(answer)
		if status, body := post(t, gw, "/rpc", stranger.Sign(t, good(nil))); status != http.StatusUnauthorized {
			t.Errorf("provider %s, unknown kid: %d %s, want 401", answer, status, body)
		}
		if status, body := post(t, gw, "/rpc", goodRSA); status != http.StatusOK {
			t.Errorf("provider %s, a known key: %d %s, want 200 (last good keys)", answer, status, body)
		}
	}
	if strings.Contains(gw.Tail(200), goodRSA) {
		t.Error("the log holds a token")
	}
}
