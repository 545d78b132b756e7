package store

import "testing"

// TestAccessRulesRoundTrip: no rules until some are stored; a write
// replaces them whole, on both dialects.
func TestAccessRulesRoundTrip(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, databaseURL string) {
		s, err := Open(t.Context(), databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, err := s.AccessRules(t.Context()); err != nil || got != nil {
			t.Fatalf("before any write: %s, %v; want none", got, err)
		}
		for _, rules := range []string{`[{"subject":"a","upstreams":["x"]}]`, `[]`} {
			if err := s.SetAccessRules(t.Context(), []byte(rules)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.AccessRules(t.Context()); err != nil || string(got) != rules {
				t.Errorf("after writing %s: %s, %v", rules, got, err)
			}
		}
		if err := s.SetAccessRules(t.Context(), []byte(`[{`)); err == nil {
			t.Error("stored rules that are not JSON")
		}
	})
}
