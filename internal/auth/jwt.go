package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLength is the shortest client-token secret NewJWT accepts, in
// bytes: HS256 is only as strong as its key, and 32 bytes is its hash size.
const MinSecretLength = 32

// Issuer is the iss claim of the tokens mcpgate mints.
const Issuer = "mcpgate"

// Leeway is the clock skew allowed when checking a token's exp and nbf.
const Leeway = 30 * time.Second

// maxTokenLength bounds the work done on a token before its signature is
// checked; real tokens are a few hundred bytes.
const maxTokenLength = 8 << 10

// JWT mints and verifies mcpgate's client tokens: JSON Web Tokens signed with
// HS256 and a shared secret. It is immutable and safe for concurrent use.
type JWT struct {
	secret   []byte
	verifier *Verifier // HS256 only, exp required
}

// NewJWT returns a JWT signing and verifying with secret, which must be at
// least MinSecretLength bytes long. The secret is copied.
func NewJWT(secret []byte) (*JWT, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("client token secret is %d bytes long, it must be at least %d: "+
			"make one with `mcpgate token --new-secret` or `openssl rand -hex 32`",
			len(secret), MinSecretLength)
	}
	j := &JWT{secret: append([]byte(nil), secret...)}
	v, err := NewVerifier(VerifierConfig{Secret: j.secret, RequireExpiration: true})
	if err != nil {
		return nil, err
	}
	j.verifier = v
	return j, nil
}

// NewSecret returns a new client-token secret: 32 random bytes, hex-encoded
// (64 characters).
func NewSecret() (string, error) {
	b := make([]byte, MinSecretLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client token secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Claims are what a verified client token says.
type Claims struct {
	Subject   string    // sub: who the client is
	IssuedAt  time.Time // iat; zero when the token has none
	ExpiresAt time.Time // exp
	ID        string    // jti; "" when the token has none
}

// MintOptions are what a minted token says beyond its subject.
type MintOptions struct {
	// Scopes go in the scope claim, space separated; the admin scope
	// (JWT_ADMIN_SCOPE) among them gives the admin role.
	Scopes []string
	// Audience, when not empty, is the aud claim: JWT_AUDIENCE's first
	// value, so that the token passes the audience check.
	Audience string
}

// Mint returns a token for subject, issued at now and expiring ttl later,
// with iss "mcpgate" and a random jti. Every token expires: ttl must be
// positive. Without scopes it gives the client role only.
func (j *JWT) Mint(subject string, ttl time.Duration, now time.Time) (string, error) {
	return j.MintWith(subject, ttl, now, MintOptions{})
}

// mintedClaims are the claims of a token mcpgate mints.
type mintedClaims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope,omitempty"`
}

// MintWith is Mint with scopes and an audience.
func (j *JWT) MintWith(subject string, ttl time.Duration, now time.Time, o MintOptions) (string, error) {
	if subject == "" {
		return "", errors.New("mint client token: the subject is empty")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint client token for %q: the lifetime must be positive, got %v", subject, ttl)
	}
	for _, sc := range o.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
			return "", fmt.Errorf("mint client token for %q: scope %q is empty or holds a space, a quote or a backslash", subject, sc)
		}
	}
	claims := mintedClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        rand.Text(),
	}, Scope: strings.Join(o.Scopes, " ")}
	if o.Audience != "" {
		claims.Audience = jwt.ClaimStrings{o.Audience}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(j.secret)
	if err != nil {
		return "", fmt.Errorf("mint client token for %q: %w", subject, err)
	}
	return s, nil
}

// Verify checks token as of now and returns its claims. It accepts HS256
// only (alg none and every other algorithm are refused), requires exp and sub,
// honours nbf, and allows Leeway of clock skew on both. The issuer and
// audience are not checked: any holder of the secret may mint tokens.
//
// A refused token is a *TokenError saying what is wrong; its message never
// contains the token.
func (j *JWT) Verify(token string, now time.Time) (Claims, error) {
	id, err := j.verifier.verify(context.Background(), token, now)
	if err != nil {
		return Claims{}, err
	}
	return Claims{Subject: id.Subject, IssuedAt: id.IssuedAt, ExpiresAt: id.ExpiresAt, ID: id.TokenID}, nil
}

// malformedDetail says what a well-formed token is.
const malformedDetail = "it is not a well-formed JWT: three base64url parts (a JSON header, " +
	"JSON claims with exp, nbf and iat as numbers, a signature)"

// algName returns a printable form of a token's alg header, which the token's
// author controls.
func algName(alg any) string {
	s, ok := alg.(string)
	if !ok || s == "" || len(s) > 16 {
		return "an unsupported algorithm"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "an unsupported algorithm"
		}
	}
	return "alg " + s
}

// TokenProblem says what is wrong with a refused client token.
type TokenProblem uint8

// Token problems, one per TokenError.
const (
	_                   TokenProblem = iota
	TokenMalformed                   // not a JWT, or a registered claim of the wrong type
	TokenWrongAlgorithm              // an algorithm not accepted (alg none included)
	TokenBadSignature                // not signed with the secret or key
	TokenExpired                     // exp is past, beyond the leeway
	TokenNotYetValid                 // nbf is ahead, beyond the leeway
	TokenMissingClaim                // no exp or no sub
	TokenWrongIssuer                 // iss not one of JWT_ISSUER
	TokenWrongAudience               // aud names none of JWT_AUDIENCE
	TokenUnknownKey                  // kid matches no key of the provider
	TokenRevoked                     // revoked by an administrator
)

// String returns a short code for the problem, for logs and metrics labels.
func (p TokenProblem) String() string {
	switch p {
	case TokenMalformed:
		return "malformed"
	case TokenWrongAlgorithm:
		return "wrong_algorithm"
	case TokenBadSignature:
		return "bad_signature"
	case TokenExpired:
		return "expired"
	case TokenNotYetValid:
		return "not_yet_valid"
	case TokenMissingClaim:
		return "missing_claim"
	case TokenWrongIssuer:
		return "wrong_issuer"
	case TokenWrongAudience:
		return "wrong_audience"
	case TokenUnknownKey:
		return "unknown_key"
	case TokenRevoked:
		return "revoked"
	}
	return fmt.Sprintf("TokenProblem(%d)", uint8(p))
}

// TokenError is a refused client token. Its message says what is wrong and
// never contains the token.
type TokenError struct {
	Problem TokenProblem
	Detail  string // a sentence fragment: "it expired at 2026-01-02T03:04:05Z"
	err     error  // the jwt library's error, if any
}

// Error returns "client token refused (<problem>): <detail>".
func (e *TokenError) Error() string {
	return "client token refused (" + e.Problem.String() + "): " + e.Detail
}

// Unwrap returns the underlying jwt library error, if any.
func (e *TokenError) Unwrap() error { return e.err }

// BearerToken returns the client token carried by the header named
// headerName (AUTH_HEADER_NAME; "" means Authorization). The value must be
// "Bearer <token>", the scheme in any case. For a header other than
// Authorization the bare token is accepted too (X-API-Key: <token>).
//
// ok is false when the header is absent, empty, repeated (ambiguous, so
// refused), uses another scheme, or the token contains white space.
func BearerToken(h http.Header, headerName string) (token string, ok bool) {
	if headerName == "" {
		headerName = "Authorization"
	}
	vals := h.Values(headerName)
	if len(vals) != 1 {
		return "", false
	}
	v := strings.TrimSpace(vals[0])
	scheme, rest, found := strings.Cut(v, " ")
	switch {
	case found && strings.EqualFold(scheme, "Bearer"):
		token = strings.TrimLeft(rest, " \t")
	case strings.EqualFold(headerName, "Authorization") || strings.EqualFold(v, "Bearer"):
		return "", false
	default:
		token = v
	}
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}
