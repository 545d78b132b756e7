package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// VerifierConfig is what a Verifier accepts. The zero value accepts nothing.
type VerifierConfig struct {
	// Secret (JWT_SECRET_KEY) verifies HS256 tokens: mcpgate's own and
	// ContextForge's. Without it HS256 tokens are refused.
	Secret []byte
	// PublicKeyPath (JWT_PUBLIC_KEY_PATH) is a PEM public key that verifies
	// tokens of its algorithm.
	PublicKeyPath string
	// JWKS is an identity provider's key set (JWT_JWKS_URL,
	// JWT_OIDC_DISCOVERY); the Verifier does not close it.
	JWKS *JWKS
	// Algorithms (JWT_ALGORITHM) are the public-key algorithms accepted
	// with JWKS or PublicKeyPath; none means all of PublicKeyAlgorithms.
	// HS256 here changes nothing: it is accepted when Secret is set.
	Algorithms []string
	// Issuers (JWT_ISSUER), when not empty, are the accepted iss values;
	// HS256 tokens may also carry mcpgate's own Issuer.
	Issuers []string
	// Audiences (JWT_AUDIENCE), when not empty, are the accepted aud
	// values: a token must name one of them.
	Audiences []string
	// AcceptAudience, used when Audiences is empty, says which aud values
	// are accepted instead: mcpgate's own resource URLs while
	// MCP_RESOURCE_URL is set (RFC 8707).
	AcceptAudience func(aud string) bool
	// RequireExpiration (REQUIRE_TOKEN_EXPIRATION) refuses tokens without
	// exp.
	RequireExpiration bool
	// AdminScope, AdminClaims and AdminGroups give the admin role: a token
	// with AdminScope among its scopes, with one of AdminClaims true (a
	// dotted name reads a nested claim, as for GroupsClaim), or in one of
	// AdminGroups (JWT_ADMIN_SCOPE, JWT_ADMIN_CLAIM, JWT_ADMIN_GROUPS).
	AdminScope  string
	AdminClaims []string
	AdminGroups []string
	// GroupsClaim (JWT_GROUPS_CLAIM) holds the token's groups: an array of
	// strings or one string. A dotted name (realm_access.roles) reads a
	// member of an object claim when no claim has the whole name.
	GroupsClaim string
	// Revoked, if set, is asked about every identity, from the cache too;
	// true refuses the token (TokenRevoked).
	Revoked func(Identity) bool
}

// Verifier checks client tokens and returns who they name: the one
// verifier of mcpgate, for HS256 tokens and tokens signed by an identity
// provider. It remembers tokens it verified until they expire, so a
// client's every request does not pay for signature checks again; a
// remembered token is checked again after the provider's keys change, and
// its revocation is checked on every request. Safe for concurrent use.
type Verifier struct {
	cfg        VerifierConfig
	file       *publicKey
	algorithms []string // every accepted alg, HS256 first when accepted
	cache      tokenCache
}

// NewVerifier returns a Verifier for c. It reads PublicKeyPath.
func NewVerifier(c VerifierConfig) (*Verifier, error) {
	v := &Verifier{cfg: c}
	if c.Secret != nil {
		if len(c.Secret) < MinSecretLength {
			return nil, fmt.Errorf("client token secret is %d bytes long, it must be at least %d", len(c.Secret), MinSecretLength)
		}
		v.algorithms = append(v.algorithms, AlgHS256)
	}
	var public []string
	for _, a := range c.Algorithms {
		switch {
		case a == AlgHS256:
		case slices.Contains(PublicKeyAlgorithms, a):
			public = append(public, a)
		default:
			return nil, fmt.Errorf("algorithm %q is not one of HS256, RS256, ES256, EdDSA", a)
		}
	}
	if len(public) == 0 {
		public = PublicKeyAlgorithms
	}
	if c.PublicKeyPath != "" {
		pk, err := loadPublicKeyFile(c.PublicKeyPath)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(public, pk.alg) {
			return nil, fmt.Errorf("the key in %s verifies %s, which the accepted algorithms %s do not include", c.PublicKeyPath, pk.alg, strings.Join(public, ", "))
		}
		v.file = &pk
		public = []string{pk.alg}
	}
	if v.file != nil || c.JWKS != nil {
		v.algorithms = append(v.algorithms, public...)
	}
	if len(v.algorithms) == 0 {
		return nil, errors.New("no way to verify tokens: set a secret, a public key or a key set")
	}
	return v, nil
}

// Algorithms are the algorithms of the tokens v accepts.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algorithms) }

// Verify checks token as of now and returns the identity it names. ctx
// bounds a fetch of the provider's keys, which only a token naming an
// unknown kid causes.
//
// A refused token is a *TokenError saying what is wrong; its message never
// contains the token.
func (v *Verifier) Verify(ctx context.Context, token string, now time.Time) (Identity, error) {
	gen := v.generation()
	if id, ok := v.cache.valid(token, now, gen); ok {
		return id, v.checkRevoked(id)
	}
	id, err := v.verify(ctx, token, now)
	if err != nil {
		return Identity{}, err
	}
	if err := v.checkRevoked(id); err != nil {
		return Identity{}, err
	}
	until := id.ExpiresAt
	if until.IsZero() || until.After(now.Add(maxCacheAge)) {
		until = now.Add(maxCacheAge)
	}
	v.cache.remember(token, until, gen, id)
	return id, nil
}

// maxCacheAge bounds how long a verified token is remembered, for tokens
// without exp (REQUIRE_TOKEN_EXPIRATION=false) or with a far one.
const maxCacheAge = 5 * time.Minute

func (v *Verifier) generation() uint64 {
	if v.cfg.JWKS == nil {
		return 0
	}
	return v.cfg.JWKS.Generation()
}

// Still says whether an identity verified earlier still holds at now: not
// revoked since, not expired (beyond Leeway). A connection that carries
// many messages on one authenticated request (a WebSocket) asks before
// each; a *TokenError says why not.
func (v *Verifier) Still(id Identity, now time.Time) error {
	if err := v.checkRevoked(id); err != nil {
		return err
	}
	if !id.ExpiresAt.IsZero() && now.After(id.ExpiresAt.Add(Leeway)) {
		return &TokenError{Problem: TokenExpired, Detail: "it expired at " + id.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	return nil
}

func (v *Verifier) checkRevoked(id Identity) error {
	if v.cfg.Revoked != nil && v.cfg.Revoked(id) {
		return &TokenError{Problem: TokenRevoked, Detail: "an administrator revoked it"}
	}
	return nil
}

// tokenClaims are the registered claims and, raw, all others.
type tokenClaims struct {
	jwt.RegisteredClaims
	all map[string]json.RawMessage
}

func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	return json.Unmarshal(b, &c.all)
}

// verify checks token without the cache or revocations.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Identity, error) {
	if len(token) > maxTokenLength {
		return Identity{}, &TokenError{Problem: TokenMalformed, Detail: fmt.Sprintf("it is longer than %d bytes", maxTokenLength)}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algorithms),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if v.cfg.RequireExpiration {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	var c tokenClaims
	t, err := jwt.NewParser(opts...).ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		return Identity{}, v.classify(t, &c, err)
	}
	alg := t.Method.Alg()
	if c.Subject == "" {
		return Identity{}, &TokenError{Problem: TokenMissingClaim, Detail: "it has no sub (subject) claim"}
	}
	if len(v.cfg.Issuers) > 0 && !slices.Contains(v.cfg.Issuers, c.Issuer) && (alg != AlgHS256 || c.Issuer != Issuer) {
		return Identity{}, &TokenError{Problem: TokenWrongIssuer,
			Detail: fmt.Sprintf("its issuer %s is not one of the accepted issuers (JWT_ISSUER)", quoteClaim(c.Issuer))}
	}
	accepts, setting := func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }, "JWT_AUDIENCE"
	if len(v.cfg.Audiences) == 0 && v.cfg.AcceptAudience != nil {
		accepts, setting = v.cfg.AcceptAudience, "MCP_RESOURCE_URL"
	}
	if (len(v.cfg.Audiences) > 0 || v.cfg.AcceptAudience != nil) && !slices.ContainsFunc(c.Audience, accepts) {
		detail := "it names no audience (aud); mcpgate accepts tokens meant for it only (" + setting + ")"
		if len(c.Audience) > 0 {
			detail = fmt.Sprintf("its audience %s is not mcpgate's (%s): it is meant for another service", quoteClaim(strings.Join(c.Audience, " ")), setting)
		}
		return Identity{}, &TokenError{Problem: TokenWrongAudience, Detail: detail}
	}
	id := Identity{Issuer: c.Issuer, Subject: c.Subject, TokenID: c.ID, Roles: []Role{RoleClient},
		Scopes: scopesOf(c.all), Groups: stringsClaim(c.all, v.cfg.GroupsClaim)}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time
	}
	if c.IssuedAt != nil {
		id.IssuedAt = c.IssuedAt.Time
	}
	if v.isAdmin(id, c.all) {
		id.Roles = append(id.Roles, RoleAdmin)
	}
	return id, nil
}

// keyFor returns the key that verifies t: the secret for HS256 and a public
// key for the others, never one for the other (algorithm confusion: an
// HS256 token "signed" with a public key's bytes meets only the secret).
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == AlgHS256 {
		if t.Method != jwt.SigningMethodHS256 || v.cfg.Secret == nil {
			return nil, errors.New("HS256 is not accepted")
		}
		return v.cfg.Secret, nil
	}
	if v.file != nil {
		if v.file.alg != alg {
			return nil, errUnknownKey
		}
		return v.file.key, nil
	}
	if v.cfg.JWKS == nil {
		return nil, errUnknownKey
	}
	kid, _ := t.Header["kid"].(string)
	pk, err := v.cfg.JWKS.lookup(ctx, alg, kid)
	if err != nil {
		return nil, err
	}
	return pk.key, nil
}

func (v *Verifier) isAdmin(id Identity, all map[string]json.RawMessage) bool {
	if v.cfg.AdminScope != "" && slices.Contains(id.Scopes, v.cfg.AdminScope) {
		return true
	}
	for _, name := range v.cfg.AdminClaims {
		var b bool
		if raw, ok := claim(all, name); ok && json.Unmarshal(raw, &b) == nil && b {
			return true
		}
	}
	return slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(v.cfg.AdminGroups, g) })
}

// scopesOf reads scope (a space-separated string, RFC 8693 §4.2) or scp
// (an array or a string, as Okta and Entra ID write it).
func scopesOf(all map[string]json.RawMessage) []string {
	var s string
	if raw, ok := all["scope"]; ok && json.Unmarshal(raw, &s) == nil {
		return strings.Fields(s)
	}
	if raw, ok := all["scp"]; ok && json.Unmarshal(raw, &s) == nil {
		return strings.Fields(s)
	}
	return stringsClaim(all, "scp")
}

// stringsClaim reads a claim that is an array of strings or one string;
// other members of an array are skipped.
func stringsClaim(all map[string]json.RawMessage, name string) []string {
	raw, ok := claim(all, name)
	if !ok {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []json.RawMessage
	if json.Unmarshal(raw, &many) != nil {
		return nil
	}
	var out []string
	for _, m := range many {
		if json.Unmarshal(m, &one) == nil {
			out = append(out, one)
		}
	}
	return out
}

// claim returns the named claim; a dotted name not found whole is looked
// up in nested objects (Keycloak's realm_access.roles).
func claim(all map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if name == "" {
		return nil, false
	}
	if raw, ok := all[name]; ok {
		return raw, true
	}
	first, rest, found := strings.Cut(name, ".")
	if !found {
		return nil, false
	}
	var inner map[string]json.RawMessage
	if raw, ok := all[first]; !ok || json.Unmarshal(raw, &inner) != nil {
		return nil, false
	}
	return claim(inner, rest)
}

// quoteClaim quotes a claim value of the token for a message, cut short:
// the token's author controls it.
func quoteClaim(s string) string {
	if s == "" {
		return "(none)"
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// classify turns a jwt parse error into a TokenError. The library's own
// messages are kept out of the text (they may quote decoded token bytes) but
// stay reachable through Unwrap.
func (v *Verifier) classify(t *jwt.Token, c *tokenClaims, err error) *TokenError {
	te := &TokenError{err: err}
	var alg any
	if t != nil && t.Header != nil {
		alg = t.Header["alg"]
	}
	accepted := "mcpgate accepts " + strings.Join(v.algorithms, ", ") + " only"
	s, _ := alg.(string)
	switch {
	case alg != nil && !slices.Contains(v.algorithms, s):
		te.Problem, te.Detail = TokenWrongAlgorithm, "it is signed with "+algName(alg)+"; "+accepted
	case errors.Is(err, jwt.ErrTokenMalformed):
		te.Problem, te.Detail = TokenMalformed, malformedDetail
	case t != nil && t.Header != nil && alg == nil:
		te.Problem, te.Detail = TokenWrongAlgorithm, "its header names no algorithm; "+accepted
	case errors.Is(err, errUnknownKey):
		te.Problem, te.Detail = TokenUnknownKey, "no key of the identity provider matches its kid (a key the provider no longer publishes, or another provider's)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		te.Problem, te.Detail = TokenBadSignature, "its signature does not match (signed with another key or secret?)"
	case errors.Is(err, jwt.ErrTokenExpired):
		te.Problem, te.Detail = TokenExpired, "it expired at "+c.ExpiresAt.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		te.Problem, te.Detail = TokenNotYetValid, "it is not valid before "+c.NotBefore.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		te.Problem, te.Detail = TokenMissingClaim, "it has no exp (expiry) claim; mcpgate requires one (REQUIRE_TOKEN_EXPIRATION)"
	default: // not expected from the parser options used
		te.Problem, te.Detail = TokenMalformed, "it cannot be verified"
	}
	return te
}

// tokenCache remembers verified tokens until they expire. It holds at most
// maxTokens; when full it starts afresh.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

// verifiedToken is what is remembered of a verified token.
type verifiedToken struct {
	until      time.Time
	generation uint64 // of the key set it was verified with
	id         Identity
}

const maxTokens = 10000

// valid returns the identity of a token verified before, not expired, with
// the key set of generation gen.
func (v *tokenCache) valid(token string, now time.Time, gen uint64) (Identity, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.m[token]
	if !ok || !now.Before(t.until) || t.generation != gen {
		return Identity{}, false
	}
	return t.id, true
}

func (v *tokenCache) remember(token string, until time.Time, gen uint64, id Identity) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxTokens {
		v.m = make(map[string]verifiedToken)
	}
	v.m[token] = verifiedToken{until: until, generation: gen, id: id}
}
