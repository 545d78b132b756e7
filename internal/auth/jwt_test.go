package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testSecret(b byte) []byte { return []byte(strings.Repeat(string(rune('a'+b)), 32)) }

func newTestJWT(t *testing.T, secret []byte) *JWT {
	t.Helper()
	j, err := NewJWT(secret)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestNewJWTRefusesShortSecretAndSaysHowToMakeOne(t *testing.T) {
	_, err := NewJWT([]byte("short-secret"))
	if err == nil {
		t.Fatal("NewJWT accepted a 12-byte secret")
	}
	for _, want := range []string{"at least 32", "openssl rand -hex 32", "mcpgate token --new-secret"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "short-secret") {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestNewSecretIs32RandomBytesInHex(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	raw, err := hex.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("NewSecret() = %q: want 64 hex digits", a)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
	newTestJWT(t, []byte(a)) // usable as is
}

func TestMintVerifyRoundTrip(t *testing.T) {
	j := newTestJWT(t, testSecret(0))
	tok, err := j.Mint("alice@example.com", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.Verify(tok, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice@example.com" || !c.IssuedAt.Equal(testNow) || !c.ExpiresAt.Equal(testNow.Add(time.Hour)) || c.ID == "" {
		t.Fatalf("claims = %+v", c)
	}
	// The issuer and algorithm are as documented.
	var rc jwt.RegisteredClaims
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, &rc)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Issuer != "mcpgate" || parsed.Method.Alg() != "HS256" {
		t.Fatalf("iss = %q, alg = %q", rc.Issuer, parsed.Method.Alg())
	}
	other, _ := j.Mint("alice@example.com", time.Hour, testNow)
	if c2, _ := j.Verify(other, testNow); c2.ID == c.ID {
		t.Fatal("two tokens have the same jti")
	}
}

func TestMintRefusesNoSubjectOrNoLifetime(t *testing.T) {
	j := newTestJWT(t, testSecret(0))
	for _, tc := range []struct {
		name    string
		subject string
		ttl     time.Duration
	}{
		{"empty subject", "", time.Hour},
		{"zero ttl never expires", "bob", 0},
		{"negative ttl", "bob", -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := j.Mint(tc.subject, tc.ttl, testNow); err == nil {
				t.Fatal("Mint succeeded")
			}
		})
	}
}

// sign signs claims with method and key, bypassing Mint.
func sign(t testing.TB, method jwt.SigningMethod, claims jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRefusesBadTokensSayingWhy(t *testing.T) {
	secret := testSecret(0)
	j := newTestJWT(t, secret)
	good, _ := j.Mint("alice", time.Hour, testNow)
	exp := testNow.Add(time.Hour)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{Subject: "alice", IssuedAt: jwt.NewNumericDate(testNow), ExpiresAt: jwt.NewNumericDate(exp)}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	goodParts := strings.Split(good, ".")

	for _, tc := range []struct {
		name  string
		token string
		at    time.Time
		want  TokenProblem
		says  string
	}{
		{"expired beyond the leeway", good, exp.Add(31 * time.Second), TokenExpired, "expired at 2026-03-01T13:00:00Z"},
		{"expired exactly at the end of the leeway", good, exp.Add(Leeway), TokenExpired, "expired"},
		{"signed with another secret", sign(t, jwt.SigningMethodHS256, claims(nil), testSecret(1)), testNow, TokenBadSignature, "signature"},
		{"signature altered", goodParts[0] + "." + goodParts[1] + "." + b64([]byte("not the signature")), testNow, TokenBadSignature, "signature"},
		{"alg none, unsigned", sign(t, jwt.SigningMethodNone, claims(nil), jwt.UnsafeAllowNoneSignatureType), testNow, TokenWrongAlgorithm, "alg none"},
		{"alg none with the HS256 signature kept", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + goodParts[1] + "." + goodParts[2], testNow, TokenWrongAlgorithm, "alg none"},
		{"alg NONE in capitals", b64([]byte(`{"alg":"NONE"}`)) + "." + goodParts[1] + ".", testNow, TokenWrongAlgorithm, "HS256 only"},
		{"RS256", sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey), testNow, TokenWrongAlgorithm, "alg RS256"},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, claims(nil), secret), testNow, TokenWrongAlgorithm, "alg HS512"},
		{"no alg header", b64([]byte(`{"typ":"JWT"}`)) + "." + goodParts[1] + "." + goodParts[2], testNow, TokenWrongAlgorithm, "no algorithm"},
		{"empty", "", testNow, TokenMalformed, "not a well-formed JWT"},
		{"two parts", goodParts[0] + "." + goodParts[1], testNow, TokenMalformed, "not a well-formed JWT"},
		{"header not base64", "!!!." + goodParts[1] + "." + goodParts[2], testNow, TokenMalformed, "not a well-formed JWT"},
		{"claims not JSON", goodParts[0] + "." + b64([]byte("{nope")) + "." + goodParts[2], testNow, TokenMalformed, "not a well-formed JWT"},
		{"huge", strings.Repeat("a", 9000), testNow, TokenMalformed, "longer than"},
		{"no exp", sign(t, jwt.SigningMethodHS256, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), secret), testNow, TokenMissingClaim, "no exp"},
		{"no sub", sign(t, jwt.SigningMethodHS256, claims(func(c *jwt.RegisteredClaims) { c.Subject = "" }), secret), testNow, TokenMissingClaim, "no sub"},
		{"nbf ahead beyond the leeway", sign(t, jwt.SigningMethodHS256, claims(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Minute)) }), secret), testNow, TokenNotYetValid, "not valid before"},
		{"exp of the wrong type", sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": "tomorrow"}, secret), testNow, TokenMalformed, "exp, nbf and iat as numbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := j.Verify(tc.token, tc.at)
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Verify error = %v, want a *TokenError", err)
			}
			if te.Problem != tc.want {
				t.Errorf("problem = %v, want %v (%v)", te.Problem, tc.want, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q echoes the token", err)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q echoes part of the token", err)
				}
			}
		})
	}
}

func TestVerifyAllowsThirtySecondsOfClockSkew(t *testing.T) {
	j := newTestJWT(t, testSecret(0))
	tok, _ := j.Mint("alice", time.Hour, testNow)
	exp := testNow.Add(time.Hour)
	if _, err := j.Verify(tok, exp.Add(29*time.Second)); err != nil {
		t.Errorf("29 s past exp: %v", err)
	}
	nbf := sign(t, jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(testNow.Add(20 * time.Second)),
	}, testSecret(0))
	if _, err := j.Verify(nbf, testNow); err != nil {
		t.Errorf("nbf 20 s ahead: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name       string
		h          http.Header
		headerName string
		want       string
		ok         bool
	}{
		{"default header is Authorization", hdr("Authorization", "Bearer abc.def.ghi"), "", "abc.def.ghi", true},
		{"scheme in any case", hdr("Authorization", "bEaReR abc"), "Authorization", "abc", true},
		{"header name in any case", hdr("Authorization", "Bearer abc"), "authorization", "abc", true},
		{"extra spaces around", hdr("Authorization", "  Bearer   abc  "), "", "abc", true},
		{"absent", hdr(), "", "", false},
		{"empty", hdr("Authorization", ""), "", "", false},
		{"scheme only", hdr("Authorization", "Bearer"), "", "", false},
		{"scheme and blanks", hdr("Authorization", "Bearer   "), "", "", false},
		{"another scheme", hdr("Authorization", "Basic YWxpY2U6cHc="), "", "", false},
		{"bare token refused in Authorization", hdr("Authorization", "abc"), "", "", false},
		{"token with a space", hdr("Authorization", "Bearer abc def"), "", "", false},
		{"repeated header is ambiguous", hdr("Authorization", "Bearer a", "Authorization", "Bearer b"), "", "", false},
		{"custom header with scheme", hdr("X-Api-Key", "Bearer abc"), "X-API-Key", "abc", true},
		{"custom header bare token", hdr("X-Api-Key", "abc"), "X-API-Key", "abc", true},
		{"custom header ignores Authorization", hdr("Authorization", "Bearer abc"), "X-API-Key", "", false},
		{"custom header scheme alone", hdr("X-Api-Key", "bearer"), "X-API-Key", "", false},
		{"custom header another scheme", hdr("X-Api-Key", "Basic abc"), "X-API-Key", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := BearerToken(tc.h, tc.headerName)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("BearerToken = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
