package auth

import (
	"testing"
	"time"
)

func TestRevocationList(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	var l RevocationList
	alice := Identity{Issuer: "https://idp", Subject: "alice", TokenID: "t-1", IssuedAt: at.Add(-time.Hour)}
	if l.Revoked(alice) {
		t.Fatal("the zero list revokes")
	}
	l.Replace([]Revocation{{TokenID: "t-9"}, {Issuer: "https://idp", Subject: "alice", IssuedUpTo: at}, {Subject: "bob", IssuedUpTo: at}})
	for _, tc := range []struct {
		name string
		id   Identity
		want bool
	}{
		{"a revoked jti of any issuer", Identity{Issuer: "x", Subject: "carol", TokenID: "t-9"}, true},
		{"the subject's older token", alice, true},
		{"the subject's token issued in the second of the revocation", Identity{Issuer: "https://idp", Subject: "alice", IssuedAt: at.Truncate(time.Second)}, true},
		{"the subject's token issued after", Identity{Issuer: "https://idp", Subject: "alice", IssuedAt: at.Add(time.Second)}, false},
		{"the subject's token without iat", Identity{Issuer: "https://idp", Subject: "alice"}, true},
		{"another issuer's alice", Identity{Issuer: "https://other", Subject: "alice", IssuedAt: at.Add(-time.Hour)}, false},
		{"mcpgate's bob, with or without iss", Identity{Subject: "bob", IssuedAt: at.Add(-time.Hour)}, true},
		{"mcpgate's bob by name", Identity{Issuer: Issuer, Subject: "bob", IssuedAt: at.Add(-time.Hour)}, true},
		{"no jti is not the empty jti", Identity{Subject: "dave"}, false},
	} {
		if got := l.Revoked(tc.id); got != tc.want {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.want)
		}
	}
	l.Replace(nil)
	if l.Revoked(alice) {
		t.Error("a lifted revocation still revokes")
	}
}
