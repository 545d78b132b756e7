package auth

import (
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
	secret []byte
}

// NewJWT returns a JWT signing and verifying with secret, which must be at
// least MinSecretLength bytes long. The secret is copied.
func NewJWT(secret []byte) (*JWT, error) {
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("client token secret is %d bytes long, it must be at least %d: "+
			"make one with `mcpgate token --new-secret` or `openssl rand -hex 32`",
			len(secret), MinSecretLength)
	}
	return &JWT{secret: append([]byte(nil), secret...)}, nil
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

// Mint returns a token for subject, issued at now and expiring ttl later,
// with iss "mcpgate" and a random jti. Every token expires: ttl must be
// positive.
func (j *JWT) Mint(subject string, ttl time.Duration, now time.Time) (string, error) {
	if subject == "" {
		return "", errors.New("mint client token: the subject is empty")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint client token for %q: the lifetime must be positive, got %v", subject, ttl)
	}
	claims := jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   subject,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        rand.Text(),
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
	if len(token) > maxTokenLength {
		return Claims{}, &TokenError{Problem: TokenMalformed, Detail: fmt.Sprintf("it is longer than %d bytes", maxTokenLength)}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var rc jwt.RegisteredClaims
	t, err := p.ParseWithClaims(token, &rc, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refuses other algorithms; this makes
		// sure the key can never reach another verifier.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, errors.New("not HS256")
		}
		return j.secret, nil
	})
	if err != nil {
		return Claims{}, classify(t, &rc, err)
	}
	if rc.Subject == "" {
		return Claims{}, &TokenError{Problem: TokenMissingClaim, Detail: "it has no sub (subject) claim"}
	}
	c := Claims{Subject: rc.Subject, ID: rc.ID}
	if rc.IssuedAt != nil {
		c.IssuedAt = rc.IssuedAt.Time
	}
	if rc.ExpiresAt != nil {
		c.ExpiresAt = rc.ExpiresAt.Time
	}
	return c, nil
}

// classify turns a jwt parse error into a TokenError. The library's own
// messages are kept out of the text (they may quote decoded token bytes) but
// stay reachable through Unwrap.
func classify(t *jwt.Token, rc *jwt.RegisteredClaims, err error) *TokenError {
	te := &TokenError{err: err}
	var alg any
	if t != nil && t.Header != nil {
		alg = t.Header["alg"]
	}
	switch {
	case alg != nil && alg != jwt.SigningMethodHS256.Alg():
		te.Problem, te.Detail = TokenWrongAlgorithm, "it is signed with "+algName(alg)+"; mcpgate accepts HS256 only"
	case errors.Is(err, jwt.ErrTokenMalformed):
		te.Problem, te.Detail = TokenMalformed, malformedDetail
	case t != nil && t.Header != nil && alg == nil:
		te.Problem, te.Detail = TokenWrongAlgorithm, "its header names no algorithm; mcpgate accepts HS256 only"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		te.Problem, te.Detail = TokenBadSignature, "its signature does not match (signed with another secret?)"
	case errors.Is(err, jwt.ErrTokenExpired):
		te.Problem, te.Detail = TokenExpired, "it expired at "+rc.ExpiresAt.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		te.Problem, te.Detail = TokenNotYetValid, "it is not valid before "+rc.NotBefore.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		te.Problem, te.Detail = TokenMissingClaim, "it has no exp (expiry) claim; mcpgate requires one"
	default: // not expected from the parser options used
		te.Problem, te.Detail = TokenMalformed, "it cannot be verified"
	}
	return te
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
	TokenWrongAlgorithm              // not HS256 (alg none included)
	TokenBadSignature                // not signed with this secret
	TokenExpired                     // exp is past, beyond the leeway
	TokenNotYetValid                 // nbf is ahead, beyond the leeway
	TokenMissingClaim                // no exp or no sub
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
