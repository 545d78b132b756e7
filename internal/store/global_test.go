package store

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

func TestGlobalPassthroughAbsentNullOrList(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		got, err := s.GlobalPassthrough(ctx)
		if err != nil || got.Exists || got.Names != nil {
			t.Errorf("GlobalPassthrough with no row = %+v, %v; want Exists false", got, err)
		}
		for _, tc := range []struct {
			name string
			set  *[]string
			want passthrough.StoredList
		}{
			{"null", nil, passthrough.StoredList{Exists: true}},
			{"empty", &[]string{}, passthrough.StoredList{Exists: true, Names: []string{}}},
			{"list", &[]string{"X-Tenant-Id", "X-Trace-Id"}, passthrough.StoredList{Exists: true, Names: []string{"X-Tenant-Id", "X-Trace-Id"}}},
			{"null again", nil, passthrough.StoredList{Exists: true}},
		} {
			if err := s.SetGlobalPassthrough(ctx, tc.set); err != nil {
				t.Fatalf("%s: SetGlobalPassthrough: %v", tc.name, err)
			}
			got, err := s.GlobalPassthrough(ctx)
			if err != nil {
				t.Fatalf("%s: GlobalPassthrough: %v", tc.name, err)
			}
			// DeepEqual tells nil Names from empty ones.
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: GlobalPassthrough = %#v, want %#v", tc.name, got, tc.want)
			}
		}
		if n := countRows(t, s.db, `SELECT COUNT(*) FROM global_config`); n != 1 {
			t.Errorf("global_config has %d rows, want 1", n)
		}
	})
}

// TestSeedCreatesOneRow: callers seeding at once, through one Store or
// through a Store each (as separate instances do), create one row between
// them, and exactly one is told it did (spec §3).
func TestSeedCreatesOneRow(t *testing.T) {
	for _, tc := range []struct {
		name     string
		separate bool // a Store per caller
		seeders  int
	}{
		{"one store", false, 10},
		{"a store each", true, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachDatabase(t, func(t *testing.T, databaseURL string) {
				stores := make([]*Store, tc.seeders)
				for i := range stores {
					if i == 0 || tc.separate {
						stores[i] = openStore(t, databaseURL)
					} else {
						stores[i] = stores[0]
					}
				}
				created := make([]bool, tc.seeders)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, s := range stores {
					wg.Go(func() {
						<-start
						var err error
						created[i], err = s.SeedGlobalPassthrough(t.Context(), []string{fmt.Sprintf("X-Seeder-%d", i)})
						if err != nil {
							t.Errorf("seeder %d: %v", i, err)
						}
					})
				}
				close(start)
				wg.Wait()
				winner := -1
				for i, c := range created {
					if c {
						if winner >= 0 {
							t.Errorf("seeders %d and %d were both told they created the row", winner, i)
						}
						winner = i
					}
				}
				if winner < 0 {
					t.Fatal("no seeder was told it created the row")
				}
				s := stores[0]
				if n := countRows(t, s.db, `SELECT COUNT(*) FROM global_config`); n != 1 {
					t.Errorf("global_config has %d rows, want 1", n)
				}
				assertGlobal(t, s, "after the race", passthrough.StoredList{Exists: true, Names: []string{fmt.Sprintf("X-Seeder-%d", winner)}})
			})
		})
	}
}

// TestSeedNeverOverwrites: a seed finding a row, even one holding NULL or
// an empty list, leaves it as it is (spec §3).
func TestSeedNeverOverwrites(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if created, err := s.SeedGlobalPassthrough(ctx, nil); !created || err != nil {
			t.Fatalf("first seed = %t, %v; want it to create the row", created, err)
		}
		assertGlobal(t, s, "a nil seed", passthrough.StoredList{Exists: true, Names: []string{}})
		for _, stored := range []*[]string{nil, {}, {"X-Tenant-Id"}} {
			if err := s.SetGlobalPassthrough(ctx, stored); err != nil {
				t.Fatal(err)
			}
			want, err := s.GlobalPassthrough(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if created, err := s.SeedGlobalPassthrough(ctx, []string{"X-Seeded"}); created || err != nil {
				t.Errorf("seed over %v = %t, %v; want false", want, created, err)
			}
			assertGlobal(t, s, fmt.Sprintf("seed over %v", want), want)
		}
	})
}

func assertGlobal(t *testing.T, s *Store, what string, want passthrough.StoredList) {
	t.Helper()
	got, err := s.GlobalPassthrough(t.Context())
	if err != nil {
		t.Fatalf("%s: GlobalPassthrough: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: GlobalPassthrough = %#v, want %#v", what, got, want)
	}
}
