package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// TestTokenRoles: `mcpgate token` mints a client token, and with --admin
// one that carries the admin role too.
func TestTokenRoles(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-cmd-test"
	j, err := auth.NewJWT([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		admin bool
	}{{[]string{"token", "--subject", "agent"}, false}, {[]string{"token", "--subject", "ops", "--admin"}, true}} {
		code, stdout, stderr := runMcpgate(t, "", testEnviron(t, "JWT_SECRET_KEY="+secret), c.args...)
		if code != exitOK || stderr != "" {
			t.Fatalf("%q: exit %d, stderr %q", c.args, code, stderr)
		}
		id, err := j.VerifyIdentity(strings.TrimSpace(stdout), time.Now())
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if !id.Has(auth.RoleClient) || id.Has(auth.RoleAdmin) != c.admin {
			t.Errorf("%q: roles %v, want client, and admin %t", c.args, id.Roles, c.admin)
		}
	}
}
