package auth

import "testing"

// TestKeysOfDifferentIdentitiesDiffer: no two (issuer, subject) pairs share
// a key, whatever spaces they hold; mcpgate's own subjects keep their name.
func TestKeysOfDifferentIdentitiesDiffer(t *testing.T) {
	a := Identity{Issuer: "A B", Subject: "c"}
	b := Identity{Issuer: "A", Subject: "B c"}
	if a.Key() == b.Key() {
		t.Errorf("%+v and %+v share the key %q", a, b, a.Key())
	}
	c := Identity{Issuer: Issuer, Subject: `"A" B c`} // spelled like a key of issuer A
	if c.Key() == (Identity{Issuer: "A", Subject: "B c"}).Key() {
		t.Errorf("mcpgate's subject %q has issuer A's key %q", c.Subject, c.Key())
	}
	if k := (Identity{Issuer: Issuer, Subject: "agent"}).Key(); k != "agent" {
		t.Errorf("mcpgate's own agent has the key %q, want agent", k)
	}
}
