package auth

import (
	"sync/atomic"
	"time"
)

// Revocation is one revoked token (TokenID, any issuer) or every token of
// (Issuer, Subject) issued up to IssuedUpTo. Issuer "" means mcpgate's own.
type Revocation struct {
	TokenID    string
	Issuer     string
	Subject    string
	IssuedUpTo time.Time
}

// RevocationList is the revocations in force, replaced whole when they
// change; Revoked reads it without locking, on every request. The zero
// value revokes nothing.
type RevocationList struct {
	set atomic.Pointer[revocationSet]
}

type revocationSet struct {
	tokenIDs map[string]struct{}
	subjects map[string]time.Time // Identity.Key → issued up to
}

// Replace puts rs in force instead of the revocations before.
func (l *RevocationList) Replace(rs []Revocation) {
	s := &revocationSet{tokenIDs: map[string]struct{}{}, subjects: map[string]time.Time{}}
	for _, r := range rs {
		switch {
		case r.TokenID != "":
			s.tokenIDs[r.TokenID] = struct{}{}
		case r.Subject != "":
			s.subjects[Identity{Issuer: r.Issuer, Subject: r.Subject}.Key()] = r.IssuedUpTo
		}
	}
	l.set.Store(s)
}

// Revoked reports whether id's token is revoked: its jti is, or its
// subject's tokens issued up to a time after its iat (a token without iat
// counts as issued before any revocation).
func (l *RevocationList) Revoked(id Identity) bool {
	s := l.set.Load()
	if s == nil {
		return false
	}
	if _, ok := s.tokenIDs[id.TokenID]; ok && id.TokenID != "" {
		return true
	}
	upTo, ok := s.subjects[id.Key()]
	return ok && !id.IssuedAt.After(upTo)
}
