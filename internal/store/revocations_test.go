package store

import (
	"errors"
	"testing"
	"time"
)

func TestRevocationsAddListDelete(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		before := time.Now().Add(-time.Second)
		jti, err := s.AddRevocation(ctx, Revocation{Kind: RevokeTokenID, Value: "j-1", Reason: "leaked", RevokedBy: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := s.AddRevocation(ctx, Revocation{Kind: RevokeSubject, Issuer: "https://idp", Value: "alice", RevokedBy: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		if jti.ID == "" || jti.ID == sub.ID || jti.RevokedAt.Before(before) || jti.Reason != "leaked" {
			t.Errorf("stored %+v and %+v", jti, sub)
		}
		// Revoking a subject again keeps the id and moves the time on.
		again, err := s.AddRevocation(ctx, Revocation{Kind: RevokeSubject, Issuer: "https://idp", Value: "alice", Reason: "again", RevokedBy: "ops2"})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != sub.ID || again.RevokedAt.Before(sub.RevokedAt) || again.Reason != "again" {
			t.Errorf("revoked again: %+v, was %+v", again, sub)
		}
		// The same subject of another issuer is another revocation.
		if other, err := s.AddRevocation(ctx, Revocation{Kind: RevokeSubject, Issuer: "mcpgate", Value: "alice"}); err != nil || other.ID == sub.ID {
			t.Errorf("another issuer's alice: %+v, %v", other, err)
		}
		list, err := s.Revocations(ctx)
		if err != nil || len(list) != 3 || list[0] != jti {
			t.Fatalf("Revocations = %+v, %v; want 3, the jti first as stored", list, err)
		}
		if err := s.DeleteRevocation(ctx, jti.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRevocation(ctx, jti.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting it again: %v, want ErrNotFound", err)
		}
		if list, _ := s.Revocations(ctx); len(list) != 2 {
			t.Errorf("after the delete: %+v", list)
		}
		if _, err := s.AddRevocation(ctx, Revocation{Kind: "everything", Value: "x"}); err == nil {
			t.Error("an unknown kind was stored")
		}
	})
}
