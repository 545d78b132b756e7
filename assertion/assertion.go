// Package assertion verifies the identity assertion mcpgate adds to the
// requests it forwards to an upstream MCP server: a short-lived JWS, signed
// with one of mcpgate's own keys (published at /.well-known/jwks.json),
// saying which client the request is for, which MCP method and name it
// carries, and a digest of the passthrough headers mcpgate forwarded — so
// an upstream can tell that `X-Tenant-Id: acme` passed mcpgate's policy for
// this very call and was not added or changed on the way.
//
// It is for upstream authors: a [Verifier] given mcpgate's JWKS URL and the
// upstream's own audience checks a request (signature, expiry, issuer,
// audience, header digest) and returns the [Claims], or an error saying
// which check failed; [Verifier.Middleware] does the same in front of any
// http.Handler. It depends on the standard library and
// github.com/golang-jwt/jwt/v5 only. The format is specified in mcpgate's
// docs/identity-assertion.md; mcpgate itself builds the digest with
// [HeaderDigest], so both ends compute it the one way.
package assertion

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultHeader is the request header that carries the assertion, unless
// mcpgate's IDENTITY_ASSERTION_HEADER names another (always X-Mcpgate-…).
const DefaultHeader = "X-Mcpgate-Identity"

// DefaultIssuer is the iss of mcpgate's assertions unless
// IDENTITY_ASSERTION_ISSUER names another.
const DefaultIssuer = "mcpgate"

// Type is the JWS "typ" header of every assertion (explicit typing, RFC 8725
// §3.11): no other JWT signed with the same key can pass for one.
const Type = "mcpgate-identity+jwt"

// Algorithm is the one JWS algorithm of assertions: EdDSA over Ed25519
// (RFC 8037).
const Algorithm = "EdDSA"

// Claims are an assertion's claims (docs/identity-assertion.md, "Claims").
type Claims struct {
	// Issuer (iss) is mcpgate's issuer name.
	Issuer string `json:"iss"`
	// Subject (sub) is the client's subject, as its token said; empty when
	// mcpgate authenticates no client (AUTH_REQUIRED=false).
	Subject string `json:"sub,omitempty"`
	// ClientIssuer (client_iss) is the issuer of the client's token:
	// (ClientIssuer, Subject) is the client's identity.
	ClientIssuer string `json:"client_iss,omitempty"`
	// Audience (aud) is the upstream's URL as registered at mcpgate.
	Audience string `json:"aud"`
	// UpstreamID (upstream_id) is mcpgate's id of the upstream.
	UpstreamID string `json:"upstream_id,omitempty"`
	// Method (mcp_method) is the JSON-RPC method of the message, such as
	// tools/call; empty on the requests mcpgate's upstream session makes
	// for itself (initialize, its event stream, its end).
	Method string `json:"mcp_method,omitempty"`
	// Name (mcp_name) is what the message names, as the upstream knows it:
	// the tool or prompt name, or the resource URI.
	Name string `json:"mcp_name,omitempty"`
	// RequestID (mcp_id) is the JSON-RPC id of the request as mcpgate's
	// client sent it (mcpgate renumbers ids per hop: it is not the id in the
	// body the upstream receives), for correlating logs.
	RequestID json.RawMessage `json:"mcp_id,omitempty"`
	// Headers (hdr) are the lower-case names of the passthrough headers
	// mcpgate forwarded, sorted; HeaderDigest (hdr_sha256) is their
	// digest (see HeaderDigest).
	Headers      []string `json:"hdr"`
	HeaderDigest string   `json:"hdr_sha256"`
	// IssuedAt (iat), NotBefore (nbf) and ExpiresAt (exp), in seconds since
	// the epoch; ID (jti) is unique per assertion.
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	ID        string           `json:"jti"`
}

// Identity is the client an assertion speaks for.
type Identity struct {
	Issuer, Subject string
}

// Identity is the client the assertion is for.
func (c *Claims) Identity() Identity { return Identity{Issuer: c.ClientIssuer, Subject: c.Subject} }

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) {
	if c.Audience == "" {
		return nil, nil
	}
	return jwt.ClaimStrings{c.Audience}, nil
}

// Header is one forwarded header: its name and its value exactly as sent.
type Header struct {
	Name, Value string
}

// Canonical is the byte string whose SHA-256 is the header digest: for each
// header, in the byte order of the lower-case names, the lower-case name,
// ":", the value exactly as sent, and "\n". Names are letters, digits and
// hyphens and values hold no CR or LF (mcpgate forwards no others), so the
// layout is unambiguous. Two headers with one name are not allowed (mcpgate
// sends one value per name).
func Canonical(headers []Header) []byte {
	sorted := make([]Header, len(headers))
	for i, h := range headers {
		sorted[i] = Header{strings.ToLower(h.Name), h.Value}
	}
	slices.SortFunc(sorted, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	var b []byte
	for _, h := range sorted {
		b = append(b, h.Name...)
		b = append(b, ':')
		b = append(b, h.Value...)
		b = append(b, '\n')
	}
	return b
}

// HeaderDigest is the hdr_sha256 claim of headers: SHA-256 of their
// Canonical form, base64url without padding (RFC 4648 §5). No headers give
// the digest of the empty string.
func HeaderDigest(headers []Header) string {
	sum := sha256.Sum256(Canonical(headers))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Names are the hdr claim of headers: their names in lower case, sorted.
func Names(headers []Header) []string {
	names := make([]string, len(headers))
	for i, h := range headers {
		names[i] = strings.ToLower(h.Name)
	}
	slices.Sort(names)
	return names
}

// The checks a Verifier makes; its errors wrap one of them (errors.Is).
var (
	ErrMissing    = errors.New("no identity assertion")
	ErrMalformed  = errors.New("malformed identity assertion")
	ErrUnknownKey = errors.New("identity assertion signed with a key not in mcpgate's JWKS")
	ErrSignature  = errors.New("identity assertion signature is not valid")
	ErrExpired    = errors.New("identity assertion has expired")
	ErrNotYet     = errors.New("identity assertion is not valid yet")
	ErrIssuer     = errors.New("identity assertion has another issuer")
	ErrAudience   = errors.New("identity assertion is for another upstream")
	ErrDigest     = errors.New("forwarded headers do not match the identity assertion's digest")
)

// checkError says which check failed and why, wrapping the check's error.
type checkError struct {
	check  error
	detail string
}

func (e *checkError) Error() string {
	if e.detail == "" {
		return e.check.Error()
	}
	return fmt.Sprintf("%v: %s", e.check, e.detail)
}

func (e *checkError) Unwrap() error { return e.check }

func failed(check error, format string, args ...any) error {
	return &checkError{check: check, detail: fmt.Sprintf(format, args...)}
}
