package dispatch

import (
	"encoding/json"
	"strconv"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Caching hints of federated lists (MCP 2026-07-28 server/utilities/
// caching): a federated list is as fresh as its stalest part, and as
// private as its most private one.

// The cacheScope values.
const (
	CachePublic  = "public"
	CachePrivate = "private"
)

// DefaultListTTLMs is the ttlMs of a federated list when no upstream gave
// a hint for it: a minute. mcpgate refreshes an upstream's lists when it
// says they changed and tells listening clients (subscriptions/listen),
// so a client need not ask again sooner; one that does not listen learns
// of a change within a minute.
const DefaultListTTLMs = 60_000

// mergeCache merges the hints the routes' list results gave, per list
// method: the smallest ttlMs of those that gave one, and private if any
// of them is (an absent or unknown scope counts as public, as the revision
// says). A method none gave a hint for is absent.
func mergeCache(routes []*Route) map[string]CacheHint {
	out := map[string]CacheHint{}
	for _, r := range routes {
		for method, h := range r.Catalogue.Cache {
			merged, seen := out[method]
			switch {
			case !seen:
				merged = CacheHint{TTLMs: h.TTLMs, Scope: CachePublic}
			case h.TTLMs < merged.TTLMs:
				merged.TTLMs = h.TTLMs
			}
			if h.Scope == CachePrivate {
				merged.Scope = CachePrivate
			}
			out[method] = merged
		}
	}
	return out
}

// listCache is the hint a federated list result carries for the client of
// a view: the upstreams' merged (or DefaultListTTLMs, public, when none
// gave one), private whenever access rules are in force, since then the
// list is the view of one client's grant.
func (d *Dispatcher) listCache(ix *Index, method string) CacheHint {
	h, ok := ix.cache[method]
	if !ok {
		h = CacheHint{TTLMs: DefaultListTTLMs, Scope: CachePublic}
	}
	if d.cfg.Access != nil {
		h.Scope = CachePrivate
	}
	return h
}

// ReadCacheHint reads the ttlMs and cacheScope of a list result; ok is
// false when it has no ttlMs (a result of a revision before 2026-07-28,
// or a server that gives none). A negative ttlMs counts as 0 (stale).
func ReadCacheHint(result json.RawMessage) (CacheHint, bool) {
	var r struct {
		TTLMs      *json.Number `json:"ttlMs"`
		CacheScope string       `json:"cacheScope"`
	}
	if json.Unmarshal(result, &r) != nil || r.TTLMs == nil {
		return CacheHint{}, false
	}
	ttl, err := strconv.ParseFloat(string(*r.TTLMs), 64)
	if err != nil {
		return CacheHint{}, false
	}
	h := CacheHint{TTLMs: int(max(0, min(ttl, 1<<31-1))), Scope: CachePublic}
	if r.CacheScope == CachePrivate {
		h.Scope = CachePrivate
	}
	return h, true
}

// withCache returns a list result with h as its ttlMs and cacheScope.
func withCache(list json.RawMessage, h CacheHint) json.RawMessage {
	out, err := jsonrpc.WithMember(list, "ttlMs", json.RawMessage(strconv.Itoa(h.TTLMs)))
	if err == nil {
		out, err = jsonrpc.WithMember(out, "cacheScope", json.RawMessage(strconv.Quote(h.Scope)))
	}
	if err != nil {
		return list
	}
	return out
}
