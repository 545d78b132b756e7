package gatewaytest

import (
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
)

// AdminToken returns a token signed with JWTSecret for subject with the
// admin role (the default JWT_ADMIN_SCOPE) and the client role: the admin
// API and the MCP endpoints.
func AdminToken(t testing.TB, subject string) string {
	t.Helper()
	return mint(t, subject, auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}})
}

// ClientToken returns a token signed with JWTSecret for subject with the
// client role only, as `mcpgate token` mints one without --admin.
func ClientToken(t testing.TB, subject string) string {
	t.Helper()
	return mint(t, subject, auth.MintOptions{})
}

func mint(t testing.TB, subject string, o auth.MintOptions) string {
	t.Helper()
	j, err := auth.NewJWT([]byte(JWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	token, err := j.MintWith(subject, time.Hour, time.Now(), o)
	if err != nil {
		t.Fatal(err)
	}
	return token
}
