package auth

import "context"

// principalKey keys the authenticated client's identity in a request's
// context.
type principalKey struct{}

// WithPrincipal returns ctx carrying the identity of the client that
// authenticated the request: its token's subject.
func WithPrincipal(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, principalKey{}, subject)
}

// Principal is the identity WithPrincipal put in ctx; "" when the request
// was not authenticated (AUTH_REQUIRED=false).
func Principal(ctx context.Context) string {
	s, _ := ctx.Value(principalKey{}).(string)
	return s
}
