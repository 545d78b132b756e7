package auth

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Role is what an identity may do at mcpgate.
type Role string

// The roles. Every authenticated client has RoleClient (the MCP endpoints);
// RoleAdmin adds the admin API.
const (
	RoleClient Role = "client"
	RoleAdmin  Role = "admin"
)

// Identity is who a request's client is, as its verified token (or a
// trusted proxy) says.
type Identity struct {
	Issuer    string    // iss; Issuer for tokens mcpgate minted
	Subject   string    // sub
	TokenID   string    // jti; "" when the token has none
	IssuedAt  time.Time // iat; zero when the token has none
	ExpiresAt time.Time // exp; zero when the token has none (REQUIRE_TOKEN_EXPIRATION=false)
	Roles     []Role
	Scopes    []string // scope (space separated) or scp
	Groups    []string
}

// Has reports whether the identity holds role.
func (id Identity) Has(role Role) bool { return slices.Contains(id.Roles, role) }

// Key is the identity's one name for everything keyed by client: session
// ownership, per-client upstream sessions, logs. Two issuers' equal
// subjects are different clients.
func (id Identity) Key() string {
	issuer := id.Issuer
	if issuer == "" {
		issuer = Issuer
	}
	if issuer == Issuer && !strings.HasPrefix(id.Subject, `"`) {
		return id.Subject
	}
	// The issuer quoted, so that no (issuer, subject) pair spells another's
	// ("A B" + "c" against "A" + "B c"); no key of mcpgate's own subjects
	// starts with a quote.
	return strconv.Quote(issuer) + " " + id.Subject
}

// identityKey keys the authenticated client's identity in a request's
// context.
type identityKey struct{}

// WithIdentity returns ctx carrying the identity of the client that
// authenticated the request.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityOf is the identity WithIdentity put in ctx; ok is false when the
// request was not authenticated (AUTH_REQUIRED=false).
func IdentityOf(ctx context.Context) (id Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// WithPrincipal returns ctx carrying a client identity of mcpgate's own
// issuer with subject and the client role.
func WithPrincipal(ctx context.Context, subject string) context.Context {
	return WithIdentity(ctx, Identity{Issuer: Issuer, Subject: subject, Roles: []Role{RoleClient}})
}

// Principal is the Key of the identity in ctx; "" when the request was not
// authenticated (AUTH_REQUIRED=false).
func Principal(ctx context.Context) string {
	id, ok := IdentityOf(ctx)
	if !ok {
		return ""
	}
	return id.Key()
}
