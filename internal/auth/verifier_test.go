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
	"strconv"
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
			if id.Issuer != p.URL || id.Subject != "alice" || id.TokenID != "j-1" || id.Key() != strconv.Quote(p.URL)+" alice" {
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

// contextForgeToken signs payload as ContextForge does: PyJWT's
// jwt.encode with HS256, which writes the header {"alg":"HS256","typ":"JWT"}
// (keys sorted) and compact JSON (separators "," and ":"); the payload is
// given as the bytes ContextForge's claims encode to.
func contextForgeToken(t *testing.T, secret []byte, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestContextForgeTokensAreAcceptedWithItsClaims: the tokens ContextForge
// mints with its default settings (JWT_ISSUER mcpgateway, JWT_AUDIENCE
// mcpgateway-api), with the same secret, are accepted with the default role
// settings: its session token (mcpgateway/routers/email_auth.py
// create_access_token: is_admin under user, a scopes object), its API token
// (services/token_catalog_service.py: teams, token_use api), its legacy token
// (create_legacy_access_token: is_admin at the top) and the CLI's
// (utils/create_jwt_token.py: username copied to sub).
func TestContextForgeTokensAreAcceptedWithItsClaims(t *testing.T) {
	secret := []byte("a-contextforge-secret-of-32-bytes!!")
	iat, exp := itoa(time.Now().Unix()), itoa(time.Now().Unix()+600)
	v := newTestVerifier(t, VerifierConfig{Secret: secret, Issuers: []string{"mcpgateway"}, Audiences: []string{"mcpgateway-api"},
		RequireExpiration: true, AdminScope: "mcpgate:admin", AdminClaims: []string{"is_admin", "user.is_admin"}, GroupsClaim: "teams"})
	for _, tc := range []struct {
		name, payload, sub, jti, groups string
		admin                           bool
	}{
		{"session token of an admin", `{"sub":"admin@example.com","iss":"mcpgateway","aud":"mcpgateway-api","iat":` + iat + `,"exp":` + exp +
			`,"jti":"5b0c7e2e-0d57-4f3c-9d43-2b1f0c9a7d11","user":{"email":"admin@example.com","full_name":"Admin","is_admin":true,"auth_provider":"local"},` +
			`"token_use":"session","scopes":{"server_id":null,"permissions":["*"],"ip_restrictions":[],"time_restrictions":{}}}`,
			"admin@example.com", "5b0c7e2e-0d57-4f3c-9d43-2b1f0c9a7d11", "", true},
		{"API token of a team member", `{"sub":"dev@example.com","jti":"9e1d","token_use":"api","iat":` + iat + `,"iss":"mcpgateway","aud":"mcpgateway-api","exp":` + exp +
			`,"user":{"email":"dev@example.com","full_name":"API Token User","is_admin":false,"auth_provider":"api_token"},"teams":["team-42"],` +
			`"scopes":{"server_id":null,"permissions":[],"ip_restrictions":[],"time_restrictions":{}}}`,
			"dev@example.com", "9e1d", "team-42", false},
		{"legacy token of an admin", `{"sub":"ops@example.com","email":"ops@example.com","full_name":"Ops","is_admin":true,"auth_provider":"local","iat":` + iat +
			`,"exp":` + exp + `,"iss":"mcpgateway","aud":"mcpgateway-api"}`, "ops@example.com", "", "", true},
		{"CLI token", `{"username":"admin","iat":` + iat + `,"iss":"mcpgateway","aud":"mcpgateway-api","sub":"admin","exp":` + exp + `}`, "admin", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), contextForgeToken(t, secret, tc.payload), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if id.Issuer != "mcpgateway" || id.Subject != tc.sub || id.TokenID != tc.jti || id.Has(RoleAdmin) != tc.admin ||
				strings.Join(id.Groups, ",") != tc.groups || len(id.Scopes) != 0 {
				t.Errorf("identity = %+v, want %s of mcpgateway, jti %q, admin %v, groups %q, no scopes", id, tc.sub, tc.jti, tc.admin, tc.groups)
			}
		})
	}
}

func itoa(n int64) string { return big.NewInt(n).String() }

func TestRolesFromScopeClaimAndGroups(t *testing.T) {
	secret := testSecret(0)
	v := newTestVerifier(t, VerifierConfig{Secret: secret, AdminScope: "mcpgate:admin", AdminClaims: []string{"is_admin"},
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

// TestWithdrawnKeyStopsVerifyingAtTheNextRefresh: without any token naming
// a new kid, the periodic re-read drops a key the provider withdrew, and a
// token of it that the cache remembered is refused.
func TestWithdrawnKeyStopsVerifyingAtTheNextRefresh(t *testing.T) {
	old, next := authtest.NewKey(t, AlgEdDSA, "old"), authtest.NewKey(t, AlgEdDSA, "next")
	p := authtest.NewProvider(t, old, next)
	jwks, err := NewJWKS(t.Context(), JWKSConfig{URL: p.JWKSURL(), RefreshInterval: 10 * time.Millisecond, MinRefetchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer jwks.Close()
	v := newTestVerifier(t, VerifierConfig{JWKS: jwks, Audiences: []string{testAudience}})
	tok := old.Sign(t, idpClaims("x"))
	if _, err := v.Verify(t.Context(), tok, time.Now()); err != nil {
		t.Fatal(err)
	}
	gen := jwks.Generation()
	p.Set("", next)
	// The refresh runs on its own ticker: poll its effect, boundedly.
	deadline := time.Now().Add(5 * time.Second)
	for jwks.Generation() == gen {
		if time.Now().After(deadline) {
			t.Fatal("the key set was not re-read within 5 s at a 10 ms refresh interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err = v.Verify(t.Context(), tok, time.Now())
	wantProblem(t, err, TokenUnknownKey)
	if _, err := v.Verify(t.Context(), next.Sign(t, idpClaims("x")), time.Now()); err != nil {
		t.Errorf("the remaining key: %v", err)
	}
}

// TestRefetchOutlivesTheClient: a client that hangs up does not cancel the
// key-set read its unknown kid caused, which would count as the provider
// failing and use up the refetch interval for everyone.
func TestRefetchOutlivesTheClient(t *testing.T) {
	first := authtest.NewKey(t, AlgRS256, "first")
	p := authtest.NewProvider(t, first)
	v := newTestVerifier(t, VerifierConfig{JWKS: jwksOf(t, p, nil), Audiences: []string{testAudience}})
	rotated := authtest.NewKey(t, AlgRS256, "rotated")
	p.Set("", first, rotated)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := v.Verify(gone, rotated.Sign(t, idpClaims("x")), time.Now()); err != nil {
		t.Fatalf("a new kid with the client gone: %v", err)
	}
}
