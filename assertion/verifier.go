package assertion

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config is what a Verifier checks against.
type Config struct {
	// JWKSURL is mcpgate's key set: https://<mcpgate>/.well-known/jwks.json.
	JWKSURL string
	// Audience is this upstream's URL exactly as it is registered at
	// mcpgate (the aud claim). Required.
	Audience string
	// Issuer is mcpgate's IDENTITY_ASSERTION_ISSUER; "" means DefaultIssuer.
	Issuer string
	// Header carries the assertion; "" means DefaultHeader.
	Header string
	// Leeway allows for clock skew on exp, nbf and iat; 0 means 5 s.
	Leeway time.Duration
	// RefreshInterval is the least time between two fetches of the JWKS
	// prompted by an unknown key id; 0 means 10 s. MaxKeyAge is how long a
	// fetched set is used before it is fetched again; 0 means 10 minutes.
	RefreshInterval, MaxKeyAge time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock expiry is checked against; nil means time.Now.
	Now func() time.Time
}

// Verifier checks mcpgate's identity assertions. It fetches mcpgate's JWKS
// when it first needs it, again when an assertion names a key it does not
// have (at most once per RefreshInterval) and when its set is older than
// MaxKeyAge; a failed fetch keeps the keys it had. It is safe for
// concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser

	mu        sync.Mutex // guards keys, fetchedAt, lastTry
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
	lastTry   time.Time
	fetching  sync.Mutex // one fetch at a time
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("assertion: Config.JWKSURL is empty: give mcpgate's /.well-known/jwks.json URL")
	}
	if cfg.Audience == "" {
		return nil, errors.New("assertion: Config.Audience is empty: give this upstream's URL as registered at mcpgate")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Header == "" {
		cfg.Header = DefaultHeader
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 5 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 10 * time.Second
	}
	if cfg.MaxKeyAge <= 0 {
		cfg.MaxKeyAge = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg}
	v.parser = jwt.NewParser(jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(cfg.Issuer), jwt.WithAudience(cfg.Audience),
		jwt.WithTimeFunc(cfg.Now))
	return v, nil
}

// Verify checks r's assertion: its signature under a key of mcpgate's JWKS,
// its type, expiry, issuer and audience, and that the passthrough headers
// it names arrived exactly as mcpgate forwarded them, each once. It returns
// the claims, or an error wrapping the check that failed (ErrMissing,
// ErrMalformed, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYet,
// ErrIssuer, ErrAudience, ErrDigest).
func (v *Verifier) Verify(r *http.Request) (*Claims, error) {
	values := r.Header.Values(v.cfg.Header)
	switch {
	case len(values) == 0:
		return nil, failed(ErrMissing, "the request has no %s header", v.cfg.Header)
	case len(values) > 1:
		return nil, failed(ErrMalformed, "the request has %d %s headers", len(values), v.cfg.Header)
	}
	claims, err := v.Parse(r.Context(), values[0])
	if err != nil {
		return nil, err
	}
	if err := CheckHeaders(claims, r.Header); err != nil {
		return nil, err
	}
	return claims, nil
}

// Parse checks an assertion's signature, type, expiry, issuer and audience
// (not the header digest: see CheckHeaders) and returns its claims.
func (v *Verifier) Parse(ctx context.Context, token string) (*Claims, error) {
	claims := &Claims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// The algorithm is fixed: a token naming another (none, HS256 with
		// the public key as secret) is refused before any key is looked at.
		if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok || t.Method.Alg() != Algorithm {
			return nil, failed(ErrMalformed, "alg is %q; assertions are %s", t.Method.Alg(), Algorithm)
		}
		if typ, _ := t.Header["typ"].(string); typ != Type {
			return nil, failed(ErrMalformed, "typ is %q, not %q", typ, Type)
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, failed(ErrMalformed, "no kid in the JWS header")
		}
		return v.key(ctx, kid)
	})
	if err == nil {
		return claims, nil
	}
	var ce *checkError
	switch {
	case errors.As(err, &ce):
		return nil, ce
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, failed(ErrExpired, "expired at %s", claims.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, failed(ErrNotYet, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return nil, failed(ErrIssuer, "iss is %q, want %q", claims.Issuer, v.cfg.Issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, failed(ErrAudience, "aud is %q, want %q", claims.Audience, v.cfg.Audience)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, failed(ErrSignature, "")
	}
	return nil, failed(ErrMalformed, "%v", err)
}

// CheckHeaders checks that the headers named by c arrived as mcpgate
// forwarded them: each exactly once, and with values whose HeaderDigest is
// c's.
func CheckHeaders(c *Claims, h http.Header) error {
	got := make([]Header, 0, len(c.Headers))
	for _, name := range c.Headers {
		values := h.Values(name)
		if len(values) != 1 {
			return failed(ErrDigest, "%s arrived %d times; mcpgate forwarded it once", name, len(values))
		}
		got = append(got, Header{name, values[0]})
	}
	if HeaderDigest(got) != c.HeaderDigest {
		return failed(ErrDigest, "the values of %s are not those mcpgate forwarded", strings.Join(c.Headers, ", "))
	}
	return nil
}

// key returns the public key kid, fetching the JWKS when the set held has
// no such key (at most once per RefreshInterval) or is older than MaxKeyAge.
func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	k, ok := v.keys[kid]
	fresh := time.Since(v.fetchedAt) < v.cfg.MaxKeyAge
	mayTry := time.Since(v.lastTry) >= v.cfg.RefreshInterval
	v.mu.Unlock()
	if ok && fresh {
		return k, nil
	}
	if !ok && !mayTry {
		return nil, failed(ErrUnknownKey, "kid %q", kid)
	}
	if err := v.refresh(ctx); err != nil && !ok {
		return nil, failed(ErrUnknownKey, "kid %q (fetching the JWKS failed: %v)", kid, err)
	}
	v.mu.Lock()
	k, ok = v.keys[kid]
	v.mu.Unlock()
	if !ok {
		return nil, failed(ErrUnknownKey, "kid %q", kid)
	}
	return k, nil
}

// refresh fetches the JWKS, keeping the keys held when it fails.
func (v *Verifier) refresh(ctx context.Context) error {
	v.fetching.Lock()
	defer v.fetching.Unlock()
	v.mu.Lock()
	if time.Since(v.lastTry) < v.cfg.RefreshInterval && time.Since(v.fetchedAt) < v.cfg.MaxKeyAge && !v.lastTry.IsZero() {
		v.mu.Unlock()
		return nil // another request just fetched it
	}
	v.lastTry = time.Now()
	v.mu.Unlock()
	keys, err := v.fetch(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = keys, time.Now()
	v.mu.Unlock()
	return nil
}

// JWK is one key of mcpgate's JWKS (RFC 7517): an OKP key on Ed25519
// (RFC 8037), use sig, alg EdDSA.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"` // the public key, base64url without padding
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is the set served at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK is the JWK of an Ed25519 public key.
func PublicJWK(kid string, public ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(public), Kid: kid, Use: "sig", Alg: Algorithm}
}

func (v *Verifier) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered HTTP %d", v.cfg.JWKSURL, resp.StatusCode)
	}
	var set JWKS
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode the JWKS: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Kid == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != Algorithm) {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys, nil
}

type claimsKey struct{}

// FromContext returns the claims Middleware verified for the request whose
// context ctx is.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// Middleware verifies every request before next sees it: one that fails
// is answered 401 with the failed check in the body (as text; the token is
// not echoed), and one that passes reaches next with its claims in the
// context (FromContext).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := v.Verify(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}
