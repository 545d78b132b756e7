package dispatch

import (
	"encoding/json"
	"testing"
)

// TestMergeCache: a federated list is as fresh as its stalest part (the
// smallest ttlMs) and as private as its most private one; an upstream
// that gave no hint does not count, and a list none gave one for has none.
func TestMergeCache(t *testing.T) {
	route := func(hints map[string]CacheHint) *Route { return &Route{Catalogue: Catalogue{Cache: hints}} }
	got := mergeCache([]*Route{
		route(map[string]CacheHint{"tools/list": {TTLMs: 30_000, Scope: CachePublic}, "prompts/list": {TTLMs: 10, Scope: CachePublic}}),
		route(nil),
		route(map[string]CacheHint{"tools/list": {TTLMs: 5_000, Scope: CachePrivate}}),
		route(map[string]CacheHint{"tools/list": {TTLMs: 60_000, Scope: CachePublic}}),
	})
	want := map[string]CacheHint{"tools/list": {TTLMs: 5_000, Scope: CachePrivate}, "prompts/list": {TTLMs: 10, Scope: CachePublic}}
	if len(got) != len(want) || got["tools/list"] != want["tools/list"] || got["prompts/list"] != want["prompts/list"] {
		t.Errorf("mergeCache = %v, want %v", got, want)
	}
}

// TestReadCacheHint: ttlMs and cacheScope of a list result; none without
// a ttlMs, public unless private.
func TestReadCacheHint(t *testing.T) {
	tests := []struct {
		result string
		want   CacheHint
		ok     bool
	}{
		{`{"tools":[],"ttlMs":1500,"cacheScope":"private"}`, CacheHint{1500, CachePrivate}, true},
		{`{"tools":[],"ttlMs":0}`, CacheHint{0, CachePublic}, true},
		{`{"tools":[],"ttlMs":-4,"cacheScope":"odd"}`, CacheHint{0, CachePublic}, true},
		{`{"tools":[]}`, CacheHint{}, false},
	}
	for _, tt := range tests {
		got, ok := ReadCacheHint(json.RawMessage(tt.result))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ReadCacheHint(%s) = %v %v, want %v %v", tt.result, got, ok, tt.want, tt.ok)
		}
	}
}
