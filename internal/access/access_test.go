package access

import (
	"testing"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// TestGrantIsTheUnionOfMatchingRules: a client may use what every rule
// matching it grants; issuers tell equal subjects apart; a client no rule
// matches gets the default; an anonymous request everything.
func TestGrantIsTheUnionOfMatchingRules(t *testing.T) {
	rules := []Rule{
		{Subject: "alice", Upstreams: []string{"id-a"}},
		{Group: "ops", Upstreams: []string{"Beta"}},
		{Scope: "all", Upstreams: []string{AllUpstreams}},
		{Subject: "carol", Issuer: auth.ProxyIssuer, Upstreams: []string{"id-c"}},
	}
	alice := auth.Identity{Issuer: auth.Issuer, Subject: "alice", Groups: []string{"ops"}}
	for _, c := range []struct {
		name   string
		id     auth.Identity
		anon   bool
		deny   bool
		allows map[string]bool // upstream id ("name" as the name) -> allowed
	}{
		{"subject and group", alice, false, false, map[string]bool{"id-a": true, "beta": true, "id-c": false}},
		{"scope grants all", auth.Identity{Subject: "x", Scopes: []string{"all"}}, false, true, map[string]bool{"id-a": true, "id-c": true}},
		{"issuer must match", auth.Identity{Issuer: auth.Issuer, Subject: "carol"}, false, true, map[string]bool{"id-c": false}},
		{"proxy user", auth.Identity{Issuer: auth.ProxyIssuer, Subject: "carol"}, false, true, map[string]bool{"id-c": true, "id-a": false}},
		{"no rule, allow", auth.Identity{Subject: "bob"}, false, false, map[string]bool{"id-a": true, "id-c": true}},
		{"no rule, deny", auth.Identity{Subject: "bob"}, false, true, map[string]bool{"id-a": false, "id-c": false}},
		{"anonymous", auth.Identity{}, true, true, map[string]bool{"id-a": true}},
	} {
		g := NewPolicy(rules, c.deny).For(c.id, !c.anon)
		for up, want := range c.allows {
			name := ""
			if up == "beta" {
				up, name = "id-b", "BETA"
			}
			if got := g.Allows(up, name); got != want {
				t.Errorf("%s: allows %s/%s = %t, want %t", c.name, up, name, got, want)
			}
		}
	}
	if NewPolicy(rules, false).For(alice, true).Key() != NewPolicy(rules, false).For(alice, true).Key() {
		t.Error("equal grants have different keys")
	}
}
