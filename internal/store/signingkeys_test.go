package store

import (
	"testing"
	"time"
)

// TestIdentityAssertionRoundTrips: the flag reads back as written, through
// create and update; an upstream registered without it has it false.
func TestIdentityAssertionRoundTrips(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		s := openStore(t, databaseURL)
		ctx := t.Context()
		u := sampleUpstream("asserted")
		u.IdentityAssertion = true
		created, err := s.CreateUpstream(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUpstream(ctx, created.ID); err != nil || !got.IdentityAssertion {
			t.Fatalf("read back identity_assertion %v (%v), want true", got.IdentityAssertion, err)
		}
		created.IdentityAssertion = false
		if _, err := s.UpdateUpstream(ctx, created); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUpstream(ctx, created.ID); err != nil || got.IdentityAssertion {
			t.Fatalf("after the update identity_assertion %v (%v), want false", got.IdentityAssertion, err)
		}
		if plain, err := s.CreateUpstream(ctx, sampleUpstream("plain")); err != nil || plain.IdentityAssertion {
			t.Fatalf("a new upstream without it: %v %v", plain.IdentityAssertion, err)
		}
	})
}

// TestSigningKeysAreAddedOnceAndDeleted: a key is not added when one was
// created after the caller's cut-off (another instance rotated first);
// keys come back oldest first, byte for byte.
func TestSigningKeysAreAddedOnceAndDeleted(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		s := openStore(t, databaseURL)
		ctx := t.Context()
		t0 := time.Now().UTC().Truncate(time.Microsecond)
		k1 := SigningKey{ID: "k1", Sealed: []byte{1, 2, 3}, Public: []byte{4, 5}, CreatedAt: t0, SignsFrom: t0}
		if added, err := s.AddSigningKey(ctx, k1, time.Time{}); err != nil || !added {
			t.Fatalf("first key: added %v, %v", added, err)
		}
		k2 := SigningKey{ID: "k2", Sealed: []byte{6}, Public: []byte{7}, CreatedAt: t0.Add(time.Second), SignsFrom: t0.Add(time.Minute)}
		if added, err := s.AddSigningKey(ctx, k2, t0.Add(-time.Second)); err != nil || added {
			t.Fatalf("a key after another was created since the cut-off: added %v, %v; want not added", added, err)
		}
		if added, err := s.AddSigningKey(ctx, k2, t0); err != nil || !added {
			t.Fatalf("second key: added %v, %v", added, err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "k2" || string(keys[0].Sealed) != "\x01\x02\x03" ||
			!keys[1].SignsFrom.Equal(k2.SignsFrom) || !keys[0].CreatedAt.Equal(t0) {
			t.Fatalf("keys %+v (%v)", keys, err)
		}
		if err := s.DeleteSigningKeys(ctx, []string{"k1", "unknown"}); err != nil {
			t.Fatal(err)
		}
		if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 1 || keys[0].ID != "k2" {
			t.Fatalf("after deleting k1: %+v (%v)", keys, err)
		}
	})
}
