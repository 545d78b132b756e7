package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/internal/auth/authtest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// jwksOf returns the provider's key set, kept as mcpgate keeps it.
func jwksOf(t *testing.T, p *authtest.Provider, logger *slog.Logger) *JWKS {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k, err := NewJWKS(t.Context(), JWKSConfig{URL: p.JWKSURL(), Logger: logger, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

const testAudience = "https://gw.example.com"

func idpClaims(iss string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": iss, "sub": "alice", "aud": testAudience, "jti": "j-1",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "openid mcp:tools"}
}

func newTestVerifier(t *testing.T, c VerifierConfig) *Verifier {
	t.Helper()
	v, err := NewVerifier(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantProblem(t *testing.T, err error, want TokenProblem) {
	t.Helper()
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error = %v, want a *TokenError (%v)", err, want)
	}
	if te.Problem != want {
		t.Fatalf("problem = %v, want %v (%v)", te.Problem, want, err)
	}
}

func TestProviderTokensOfEachAlgorithmAreAccepted(t *testing.T) {
	for _, alg := range PublicKeyAlgorithms {
		t.Run(alg, func(t *testing.T) {
			k := authtest.NewKey(t, alg, "k-"+alg)
			p := authtest.NewProvider(t, k)
			v := newTestVerifier(t, VerifierConfig{JWKS: jwksOf(t, p, nil), Issuers: []string{p.URL},
				Audiences: []string{testAudience}, RequireExpiration: true})
			id, err := v.Verify(t.Context(), k.Sign(t, idpClaims(p.URL)), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if id.Issuer != p.URL || id.Subject != "alice" || id.TokenID != "j-1" || id.Key() != p.URL+" alice" {
				t.Errorf("identity = %+v", id)
			}
			if strings.Join(id.Scopes, ",") != "openid,mcp:tools" || !id.Has(RoleClient) || id.Has(RoleAdmin) {
				t.Errorf("scopes %v, roles %v: want openid and mcp:tools, client only", id.Scopes, id.Roles)
			}
		})
	}
}

func TestRotatedKeysArePickedUpWithoutRestart(t *testing.T) {
	old, next := authtest.NewKey(t, AlgRS256, "2026-01"), authtest.NewKey(t, AlgRS256, "2026-02")
	p := authtest.NewProvider(t, old)
	jwks := jwksOf(t, p, nil)
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Audiences: []string{testAudience}})
	oldToken := old.Sign(t, idpClaims(p.URL))
	if _, err := v.Verify(t.Context(), oldToken, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The provider rotates: the new key is published, the old one withdrawn.
	p.Set("", next)
	if _, err := v.Verify(t.Context(), next.Sign(t, idpClaims(p.URL)), time.Now()); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	// The old token was verified and remembered before; its key is gone,
	// so the cache must not serve it.
	_, err := v.Verify(t.Context(), oldToken, time.Now())
	wantProblem(t, err, TokenUnknownKey)
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	k := authtest.NewKey(t, AlgES256, "known")
	p := authtest.NewProvider(t, k)
	v := newTestVerifier(t, VerifierConfig{JWKS: jwksOf(t, p, nil), Audiences: []string{testAudience}})
	before := p.Fetches() // the fetch at start
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stranger := authtest.NewKey(t, AlgES256, "unknown-"+string(rune('a'+i%26)))
			_, err := v.Verify(context.Background(), stranger.Sign(t, idpClaims("x")), time.Now())
			var te *TokenError
			if !errors.As(err, &te) || te.Problem != TokenUnknownKey {
				t.Errorf("unknown kid: %v", err)
			}
		}()
	}
	wg.Wait()
	// One fetch for the first unknown kid; the others came within
	// MinRefetchInterval of it.
	if n := p.Fetches() - before; n != 1 {
		t.Errorf("50 tokens with unknown kids caused %d fetches, want 1 within the refetch interval", n)
	}
}

func TestUnknownKidFetchesAgainAfterTheInterval(t *testing.T) {
	k := authtest.NewKey(t, AlgEdDSA, "first")
	p := authtest.NewProvider(t, k)
	jwks, err := NewJWKS(t.Context(), JWKSConfig{URL: p.JWKSURL(), MinRefetchInterval: time.Hour, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer jwks.Close()
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Audiences: []string{testAudience}})
	second, third := authtest.NewKey(t, AlgEdDSA, "second"), authtest.NewKey(t, AlgEdDSA, "third")
	p.Set("", k, second, third)
	for _, key := range []authtest.Key{second, third} {
		if _, err = v.Verify(t.Context(), key.Sign(t, idpClaims("x")), time.Now()); err != nil {
			t.Fatalf("kid %s: %v", key.Kid, err)
		}
	}
	// "third" came with the fetch "second" caused: no fetch of its own.
	if n := p.Fetches(); n != 2 {
		t.Errorf("fetches = %d, want 2 (start and one for the new kids)", n)
	}
	// Within the interval a fourth key is not fetched...
	fourth := authtest.NewKey(t, AlgEdDSA, "fourth")
	p.Set("", k, second, third, fourth)
	_, err = v.Verify(t.Context(), fourth.Sign(t, idpClaims("x")), time.Now())
	wantProblem(t, err, TokenUnknownKey)
	// ...and is once the interval has passed.
	jwks.mu.Lock()
	jwks.lastRefetch = time.Now().Add(-2 * time.Hour)
	jwks.mu.Unlock()
	if _, err = v.Verify(t.Context(), fourth.Sign(t, idpClaims("x")), time.Now()); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
}

func TestProviderDownOrGarbageKeepsTheLastGoodKeysAndLogsOnce(t *testing.T) {
	k := authtest.NewKey(t, AlgRS256, "k1")
	p := authtest.NewProvider(t, k)
	var logs testenv.LogBuffer
	jwks, err := NewJWKS(t.Context(), JWKSConfig{URL: p.JWKSURL(), MinRefetchInterval: time.Nanosecond,
		RefreshInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer jwks.Close()
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Audiences: []string{testAudience}})
	token := k.Sign(t, idpClaims("x"))
	for _, answer := range []string{authtest.Down, authtest.Garbage} {
		p.Set(answer)
		for range 5 {
			stranger := authtest.NewKey(t, AlgRS256, "rotated-in")
			// Unknown kids make fetches, each failing.
			_, err := v.Verify(t.Context(), stranger.Sign(t, idpClaims("x")), time.Now())
			wantProblem(t, err, TokenUnknownKey)
			jwks.refresh(t.Context(), false)
			if _, err := v.verify(t.Context(), token, time.Now()); err != nil {
				t.Fatalf("provider %s: a token of the last good key: %v", answer, err)
			}
		}
	}
	if n := strings.Count(logs.String(), "could not be read"); n != 1 {
		t.Errorf("failures logged %d times, want once:\n%s", n, logs.String())
	}
	p.Set("")
	jwks.refresh(t.Context(), false)
	if !strings.Contains(logs.String(), "readable again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

func TestJWKSFollowsNoRedirectAndBoundsTheAnswer(t *testing.T) {
	k := authtest.NewKey(t, AlgRS256, "k1")
	elsewhere := authtest.NewProvider(t, k)
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.JWKSURL(), http.StatusFound)
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", maxJWKSBytes) + `]}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{"/redirect", "/huge"} {
		jwks, err := NewJWKS(t.Context(), JWKSConfig{URL: srv.URL + path})
		if err != nil {
			t.Fatal(err)
		}
		v := newTestVerifier(t, VerifierConfig{JWKS: jwks})
		_, err = v.Verify(t.Context(), k.Sign(t, idpClaims("x")), time.Now())
		wantProblem(t, err, TokenUnknownKey)
		jwks.Close()
	}
	if n := elsewhere.Fetches(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestOIDCDiscoveryFindsTheKeySet(t *testing.T) {
	k := authtest.NewKey(t, AlgRS256, "k1")
	p := authtest.NewProvider(t, k)
	jwks, err := NewJWKS(t.Context(), JWKSConfig{Issuer: p.URL, Discovery: true})
	if err != nil {
		t.Fatal(err)
	}
	defer jwks.Close()
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Issuers: []string{p.URL}, Audiences: []string{testAudience}})
	if _, err := v.Verify(t.Context(), k.Sign(t, idpClaims(p.URL)), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), k.Sign(t, idpClaims("https://other-idp.example")), time.Now())
	wantProblem(t, err, TokenWrongIssuer)
}

func TestPublicKeyFile(t *testing.T) {
	k := authtest.NewKey(t, AlgES256, "")
	pemBytes, _ := k.PublicPEM(t)
	path := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, VerifierConfig{PublicKeyPath: path, Audiences: []string{testAudience}})
	if got := strings.Join(v.Algorithms(), ","); got != "ES256" {
		t.Errorf("algorithms = %s, want ES256 (the file's key only)", got)
	}
	if _, err := v.Verify(t.Context(), k.Sign(t, idpClaims("x")), time.Now()); err != nil {
		t.Fatal(err)
	}
	other := authtest.NewKey(t, AlgES256, "")
	_, err := v.Verify(t.Context(), other.Sign(t, idpClaims("x")), time.Now())
	wantProblem(t, err, TokenBadSignature)
	if _, err := NewVerifier(VerifierConfig{PublicKeyPath: path, Algorithms: []string{AlgRS256}}); err == nil {
		t.Error("an EC key file was accepted for RS256 only")
	}
}

// An HS256 token whose "secret" is the provider's public key: a verifier
// that handed the public key to HMAC would accept it.
func TestAlgorithmConfusionIsRefused(t *testing.T) {
	k := authtest.NewKey(t, AlgRS256, "k1")
	pemBytes, der := k.PublicPEM(t)
	p := authtest.NewProvider(t, k)
	jwks := jwksOf(t, p, nil)
	forge := func(key []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, idpClaims("x"))
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Without a secret HS256 is not accepted at all.
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Audiences: []string{testAudience}})
	for _, key := range [][]byte{pemBytes, der} {
		_, err := v.Verify(t.Context(), forge(key), time.Now())
		wantProblem(t, err, TokenWrongAlgorithm)
	}
	// With a secret, HS256 tokens meet the secret only.
	v = newTestVerifier(t, VerifierConfig{Secret: testSecret(0), JWKS: jwks, Audiences: []string{testAudience}})
	for _, key := range [][]byte{pemBytes, der} {
		_, err := v.Verify(t.Context(), forge(key), time.Now())
		wantProblem(t, err, TokenBadSignature)
	}
}

func TestIssuerAndAudienceChecks(t *testing.T) {
	secret := testSecret(0)
	v := newTestVerifier(t, VerifierConfig{Secret: secret, Issuers: []string{"mcpgateway", "https://idp"},
		Audiences: []string{"mcpgateway-api", testAudience}, RequireExpiration: true})
	mk := func(edit func(jwt.MapClaims)) string {
		c := idpClaims("mcpgateway")
		edit(c)
		return sign(t, jwt.SigningMethodHS256, c, secret)
	}
	for _, tc := range []struct {
		name string
		tok  string
		want TokenProblem // 0: accepted
		says string
	}{
		{"listed issuer, listed audience", mk(func(jwt.MapClaims) {}), 0, ""},
		{"mcpgate's own issuer with the secret", mk(func(c jwt.MapClaims) { c["iss"] = Issuer }), 0, ""},
		{"audience array with one listed", mk(func(c jwt.MapClaims) { c["aud"] = []string{"other", "mcpgateway-api"} }), 0, ""},
		{"other issuer", mk(func(c jwt.MapClaims) { c["iss"] = "https://evil" }), TokenWrongIssuer, `"https://evil"`},
		{"no issuer", mk(func(c jwt.MapClaims) { delete(c, "iss") }), TokenWrongIssuer, "(none)"},
		{"other audience", mk(func(c jwt.MapClaims) { c["aud"] = "https://other-api" }), TokenWrongAudience, "another service"},
		{"no audience", mk(func(c jwt.MapClaims) { delete(c, "aud") }), TokenWrongAudience, "no audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.tok, time.Now())
			if tc.want == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantProblem(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v does not say %s", err, tc.says)
			}
		})
	}
}

// contextForgeToken is built exactly as ContextForge's
// mcpgateway/utils/create_jwt_token.py _create_jwt_token builds one with
// its defaults (PyJWT, HS256, iat, iss mcpgateway, aud mcpgateway-api, sub
// from username, exp), plus the is_admin and teams claims its email
// authentication adds. PyJWT's header is {"alg":"HS256","typ":"JWT"} and
// its claims JSON uses ", " and ": " separators.
func contextForgeToken(t *testing.T, secret []byte, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg": "HS256", "typ": "JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

func TestContextForgeTokensAreAcceptedWithItsClaims(t *testing.T) {
	secret := []byte("a-contextforge-secret-of-32-bytes!!")
	now := time.Now().Unix()
	payload := `{"username": "admin@example.com", "sub": "admin@example.com", "jti": "6f1c", "is_admin": true, ` +
		`"teams": ["team-1", {"id": "team-2"}], "iat": ` + itoa(now) + `, "iss": "mcpgateway", "aud": "mcpgateway-api", "exp": ` + itoa(now+600) + `}`
	v := newTestVerifier(t, VerifierConfig{Secret: secret, Issuers: []string{"mcpgateway"}, Audiences: []string{"mcpgateway-api"},
		RequireExpiration: true, AdminClaim: "is_admin", GroupsClaim: "teams"})
	id, err := v.Verify(t.Context(), contextForgeToken(t, secret, payload), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id.Issuer != "mcpgateway" || id.Subject != "admin@example.com" || id.TokenID != "6f1c" || !id.Has(RoleAdmin) {
		t.Errorf("identity = %+v, want admin@example.com of mcpgateway with the admin role", id)
	}
	if strings.Join(id.Groups, ",") != "team-1" {
		t.Errorf("groups = %v, want team-1 (objects skipped)", id.Groups)
	}
	// A non-admin ContextForge user is a client only.
	payload = strings.Replace(payload, `"is_admin": true`, `"is_admin": false`, 1)
	id, err = v.Verify(t.Context(), contextForgeToken(t, secret, payload), time.Now())
	if err != nil || id.Has(RoleAdmin) {
		t.Errorf("is_admin false: %+v, %v", id, err)
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

func TestRolesFromScopeClaimAndGroups(t *testing.T) {
	secret := testSecret(0)
	v := newTestVerifier(t, VerifierConfig{Secret: secret, AdminScope: "mcpgate:admin", AdminClaim: "is_admin",
		AdminGroups: []string{"platform"}, GroupsClaim: "realm_access.roles"})
	for _, tc := range []struct {
		name   string
		extra  jwt.MapClaims
		admin  bool
		scopes string
	}{
		{"no role claims", nil, false, ""},
		{"admin scope", jwt.MapClaims{"scope": "read mcpgate:admin"}, true, "read,mcpgate:admin"},
		{"scp array", jwt.MapClaims{"scp": []string{"mcpgate:admin"}}, true, "mcpgate:admin"},
		{"scp string", jwt.MapClaims{"scp": "a b"}, false, "a,b"},
		{"admin claim", jwt.MapClaims{"is_admin": true}, true, ""},
		{"admin claim as a string is not true", jwt.MapClaims{"is_admin": "true"}, false, ""},
		{"nested admin group", jwt.MapClaims{"realm_access": map[string]any{"roles": []string{"dev", "platform"}}}, true, ""},
		{"another group", jwt.MapClaims{"realm_access": map[string]any{"roles": "dev"}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}
			for k, val := range tc.extra {
				c[k] = val
			}
			id, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, c, secret), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if id.Has(RoleAdmin) != tc.admin || !id.Has(RoleClient) || strings.Join(id.Scopes, ",") != tc.scopes {
				t.Errorf("roles %v scopes %v, want admin %v scopes %q", id.Roles, id.Scopes, tc.admin, tc.scopes)
			}
		})
	}
}

func TestMintedScopesAndAudience(t *testing.T) {
	j := newTestJWT(t, testSecret(0))
	tok, err := j.MintWith("ops", time.Hour, time.Now(), MintOptions{Scopes: []string{"mcpgate:admin"}, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, VerifierConfig{Secret: testSecret(0), Audiences: []string{testAudience}, AdminScope: "mcpgate:admin", RequireExpiration: true})
	id, err := v.Verify(t.Context(), tok, time.Now())
	if err != nil || !id.Has(RoleAdmin) || id.Issuer != Issuer || id.Key() != "ops" {
		t.Fatalf("%+v, %v: want ops of mcpgate with the admin role", id, err)
	}
	plain, _ := j.Mint("agent", time.Hour, time.Now())
	v = newTestVerifier(t, VerifierConfig{Secret: testSecret(0), AdminScope: "mcpgate:admin", RequireExpiration: true})
	if id, err := v.Verify(t.Context(), plain, time.Now()); err != nil || id.Has(RoleAdmin) {
		t.Fatalf("a token minted without scopes: %+v, %v; want the client role only", id, err)
	}
}

func TestExpirationRequiredUnlessSwitchedOff(t *testing.T) {
	secret := testSecret(0)
	tok := sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob"}, secret)
	_, err := newTestVerifier(t, VerifierConfig{Secret: secret, RequireExpiration: true}).Verify(t.Context(), tok, time.Now())
	wantProblem(t, err, TokenMissingClaim)
	if _, err := newTestVerifier(t, VerifierConfig{Secret: secret}).Verify(t.Context(), tok, time.Now()); err != nil {
		t.Errorf("REQUIRE_TOKEN_EXPIRATION=false: %v", err)
	}
}

func TestCachedTokenStillExpiresAndHonoursRevocation(t *testing.T) {
	secret := testSecret(0)
	var revoked atomic.Bool
	v := newTestVerifier(t, VerifierConfig{Secret: secret, RequireExpiration: true, Revoked: func(Identity) bool { return revoked.Load() }})
	now := time.Now()
	tok := sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": now.Add(time.Minute).Unix()}, secret)
	if _, err := v.Verify(t.Context(), tok, now); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	_, err := v.Verify(t.Context(), tok, now)
	wantProblem(t, err, TokenRevoked)
	revoked.Store(false)
	_, err = v.Verify(t.Context(), tok, now.Add(2*time.Minute))
	wantProblem(t, err, TokenExpired)
}
