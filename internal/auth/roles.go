package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AdminClaim is the boolean claim that gives a token the admin role:
// ContextForge's is_admin, so that its administrators' tokens stay
// administrators' at mcpgate.
const AdminClaim = "is_admin"

// adminClaims are the claims of a token MintAdmin mints.
type adminClaims struct {
	jwt.RegisteredClaims
	IsAdmin bool `json:"is_admin"`
}

// MintAdmin returns a token for subject, as Mint does, that also carries
// AdminClaim: its holder has the admin role besides the client role.
func (j *JWT) MintAdmin(subject string, ttl time.Duration, now time.Time) (string, error) {
	if subject == "" || ttl <= 0 {
		return "", fmt.Errorf("mint admin token for %q: the subject must be set and the lifetime positive", subject)
	}
	c := adminClaims{IsAdmin: true, RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: subject,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(j.secret)
	if err != nil {
		return "", fmt.Errorf("mint admin token for %q: %w", subject, err)
	}
	return s, nil
}

// VerifyIdentity verifies token as Verify does and returns the identity it
// carries: mcpgate's issuer, its subject and jti, and the client role, with
// the admin role too when AdminClaim is true.
func (j *JWT) VerifyIdentity(token string, now time.Time) (Identity, error) {
	c, err := j.Verify(token, now)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Issuer: Issuer, Subject: c.Subject, TokenID: c.ID, ExpiresAt: c.ExpiresAt, Roles: []Role{RoleClient}}
	admin, err := boolClaim(token, AdminClaim)
	if err != nil {
		return Identity{}, &TokenError{Problem: TokenMalformed, Detail: "its " + AdminClaim + " claim is not a boolean", err: err}
	}
	if admin {
		id.Roles = append(id.Roles, RoleAdmin)
	}
	return id, nil
}

// boolClaim reads a boolean claim of a token already verified; false when
// absent.
func boolClaim(token, name string) (bool, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false, errors.New("not three parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false, err
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return false, err
	}
	raw, ok := claims[name]
	if !ok {
		return false, nil
	}
	var v bool
	err = json.Unmarshal(raw, &v)
	return v, err
}
