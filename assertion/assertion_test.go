package assertion_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpgate/mcpgate/assertion"
)

// TestHeaderDigestWorkedExample is the example of
// docs/identity-assertion.md, "The header digest": another implementation
// must get the same bytes and the same value.
func TestHeaderDigestWorkedExample(t *testing.T) {
	headers := []assertion.Header{{Name: "X-Trace-Id", Value: "4bf92f35"}, {Name: "X-Tenant-Id", Value: "acme"}}
	if got, want := string(assertion.Canonical(headers)), "x-tenant-id:acme\nx-trace-id:4bf92f35\n"; got != want {
		t.Errorf("Canonical = %q, want %q", got, want)
	}
	if got, want := assertion.HeaderDigest(headers), "B-UhjORJscxRJ8XWxgC0eoplmTnsDSml6oca9AkymMA"; got != want {
		t.Errorf("HeaderDigest = %s, want %s", got, want)
	}
	if got, want := assertion.HeaderDigest(nil), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"; got != want {
		t.Errorf("HeaderDigest(none) = %s, want the digest of the empty string %s", got, want)
	}
	if got := assertion.Names(headers); len(got) != 2 || got[0] != "x-tenant-id" || got[1] != "x-trace-id" {
		t.Errorf("Names = %v, want [x-tenant-id x-trace-id]", got)
	}
}

// mcpgate plays mcpgate: a key set served on a loopback port, and tokens
// signed with it.
type mcpgate struct {
	kid     string
	private ed25519.PrivateKey
	srv     *httptest.Server
	down    atomic.Bool // the JWKS endpoint answers 500
	fetches atomic.Int32
}

const audience = "http://127.0.0.1:9000/mcp"

func newMcpgate(t *testing.T) *mcpgate {
	t.Helper()
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := &mcpgate{kid: "k1", private: private}
	jwks, _ := json.Marshal(assertion.JWKS{Keys: []assertion.JWK{assertion.PublicJWK(m.kid, public)}})
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.fetches.Add(1)
		if m.down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// claims are a valid assertion's, for X-Tenant-Id: acme.
func claims() *assertion.Claims {
	now := time.Now()
	headers := []assertion.Header{{Name: "X-Tenant-Id", Value: "acme"}}
	return &assertion.Claims{Issuer: "mcpgate", Subject: "alice", ClientIssuer: "https://idp.example", Audience: audience,
		Method: "tools/call", Name: "add", RequestID: json.RawMessage("7"), Headers: assertion.Names(headers), HeaderDigest: assertion.HeaderDigest(headers),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: "j1"}
}

func (m *mcpgate) sign(t *testing.T, c *assertion.Claims, edit func(*jwt.Token)) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["typ"], tok.Header["kid"] = assertion.Type, m.kid
	if edit != nil {
		edit(tok)
	}
	s, err := tok.SignedString(m.private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func request(token string, tenants ...string) *http.Request {
	r := httptest.NewRequest("POST", audience, nil)
	if token != "" {
		r.Header.Set(assertion.DefaultHeader, token)
	}
	for _, v := range tenants {
		r.Header.Add("X-Tenant-Id", v)
	}
	return r
}

func verifier(t *testing.T, m *mcpgate) *assertion.Verifier {
	t.Helper()
	v, err := assertion.NewVerifier(assertion.Config{JWKSURL: m.srv.URL, Audience: audience, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyReturnsTheClaims(t *testing.T) {
	m := newMcpgate(t)
	c, err := verifier(t, m).Verify(request(m.sign(t, claims(), nil), "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity() != (assertion.Identity{Issuer: "https://idp.example", Subject: "alice"}) || c.Method != "tools/call" || c.Name != "add" || string(c.RequestID) != "7" {
		t.Errorf("claims %+v", c)
	}
}

// TestVerifyRefuses: each bad assertion is refused by the check that
// names its fault.
func TestVerifyRefuses(t *testing.T) {
	m := newMcpgate(t)
	other := newMcpgate(t) // another key under the same kid
	public := m.private.Public().(ed25519.PublicKey)
	hs256 := func() string { // algorithm confusion: HMAC keyed with the public key
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
		tok.Header["typ"], tok.Header["kid"] = assertion.Type, m.kid
		s, _ := tok.SignedString([]byte(public))
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims())
		tok.Header["typ"], tok.Header["kid"] = assertion.Type, m.kid
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	with := func(edit func(*assertion.Claims)) string {
		c := claims()
		edit(c)
		return m.sign(t, c, nil)
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want error
	}{
		{"no assertion", request("", "acme"), assertion.ErrMissing},
		{"two assertions", func() *http.Request {
			r := request(m.sign(t, claims(), nil), "acme")
			r.Header.Add(assertion.DefaultHeader, "x")
			return r
		}(), assertion.ErrMalformed},
		{"not a JWS", request("not.a.jws", "acme"), assertion.ErrMalformed},
		{"alg none", request(none(), "acme"), assertion.ErrMalformed},
		{"HS256 keyed with the public key", request(hs256(), "acme"), assertion.ErrMalformed},
		{"another typ", request(m.sign(t, claims(), func(tok *jwt.Token) { tok.Header["typ"] = "JWT" }), "acme"), assertion.ErrMalformed},
		{"unknown kid", request(m.sign(t, claims(), func(tok *jwt.Token) { tok.Header["kid"] = "k9" }), "acme"), assertion.ErrUnknownKey},
		{"signed with another key", request(other.sign(t, claims(), nil), "acme"), assertion.ErrSignature},
		{"another issuer", request(with(func(c *assertion.Claims) { c.Issuer = "evil" }), "acme"), assertion.ErrIssuer},
		{"another upstream", request(with(func(c *assertion.Claims) { c.Audience = "http://127.0.0.1:9001/mcp" }), "acme"), assertion.ErrAudience},
		{"expired", request(with(func(c *assertion.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }), "acme"), assertion.ErrExpired},
		{"no exp", request(with(func(c *assertion.Claims) { c.ExpiresAt = nil }), "acme"), assertion.ErrMalformed},
		{"not yet valid", request(with(func(c *assertion.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Minute)) }), "acme"), assertion.ErrNotYet},
		{"header changed", request(m.sign(t, claims(), nil), "evil"), assertion.ErrDigest},
		{"header removed", request(m.sign(t, claims(), nil)), assertion.ErrDigest},
		{"header added to", request(m.sign(t, claims(), nil), "acme", "evil"), assertion.ErrDigest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier(t, m).Verify(tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if tok := tc.req.Header.Get(assertion.DefaultHeader); len(tok) > 20 && strings.Contains(err.Error(), tok) {
				t.Errorf("the error echoes the token: %v", err)
			}
		})
	}
}

// TestAFailedJWKSFetchKeepsTheKeys: once fetched, keys survive an
// endpoint that is down; an unknown kid is looked up at most once per
// RefreshInterval.
func TestAFailedJWKSFetchKeepsTheKeys(t *testing.T) {
	m := newMcpgate(t)
	v, err := assertion.NewVerifier(assertion.Config{JWKSURL: m.srv.URL, Audience: audience, RefreshInterval: time.Hour, MaxKeyAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(request(m.sign(t, claims(), nil), "acme")); err != nil {
		t.Fatal(err)
	}
	m.down.Store(true)
	if _, err := v.Verify(request(m.sign(t, claims(), nil), "acme")); err != nil {
		t.Errorf("with the JWKS endpoint down and the set stale: %v, want the last good keys used", err)
	}
	before := m.fetches.Load()
	unknown := m.sign(t, claims(), func(tok *jwt.Token) { tok.Header["kid"] = "k9" })
	for range 3 {
		if _, err := v.Verify(request(unknown, "acme")); !errors.Is(err, assertion.ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := m.fetches.Load() - before; n > 1 {
		t.Errorf("three unknown kids fetched the JWKS %d times, want at most once per RefreshInterval", n)
	}
}

func TestMiddlewareRefusesWith401AndPassesTheClaims(t *testing.T) {
	m := newMcpgate(t)
	var seen *assertion.Claims
	h := verifier(t, m).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = assertion.FromContext(r.Context())
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request(m.sign(t, claims(), nil), "evil"))
	if w.Code != http.StatusUnauthorized || seen != nil {
		t.Errorf("a tampered header: HTTP %d, handler reached %t; want 401 and not reached", w.Code, seen != nil)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, request(m.sign(t, claims(), nil), "acme"))
	if w.Code != http.StatusOK || seen == nil || seen.Subject != "alice" {
		t.Errorf("a valid assertion: HTTP %d, claims %+v", w.Code, seen)
	}
}
