package passthrough

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StoredList is the global allowlist as the database holds it.
type StoredList struct {
	// Exists is false when no global row has ever been written.
	Exists bool
	// Names is the stored list; nil when the row holds NULL.
	Names []string
}

// GlobalAllowlist returns the global allowlist (spec §3):
//   - env: the env list; stored is not consulted;
//   - db: the stored list when it exists and is non-empty, else the env list;
//   - merge: the env list then the stored one, de-duplicated case-insensitively,
//     the stored spelling winning; env entries in env order, then stored-only
//     entries in stored order.
//
// Any other source behaves as db.
func GlobalAllowlist(source Source, env []string, stored StoredList) []string {
	switch source {
	case SourceEnv:
		return clone(env)
	case SourceMerge:
		merged := make([]string, 0, len(env)+len(stored.Names))
		at := make(map[string]int, cap(merged)) // lower-case name -> index in merged
		for _, list := range [][]string{env, stored.Names} {
			for _, n := range list {
				k := strings.ToLower(n)
				if i, ok := at[k]; ok {
					merged[i] = n // the later spelling, so the stored one, wins
					continue
				}
				at[k] = len(merged)
				merged = append(merged, n)
			}
		}
		return merged
	default:
		if stored.Exists && len(stored.Names) > 0 {
			return clone(stored.Names)
		}
		return clone(env)
	}
}

// EffectiveAllowlist returns the allowlist for one upstream (spec §3): its own
// list when it has one, even an empty one (which forwards nothing); the global
// list when its own is nil, meaning "inherit" (deviation D5: ContextForge's
// tool path turns null into [], issue #6963).
func EffectiveAllowlist(own *[]string, global []string) []string {
	if own != nil {
		return clone(*own)
	}
	return clone(global)
}

func clone(names []string) []string { return append([]string{}, names...) }

// ShouldSeed reports whether start-up must create an absent stored global
// list (spec §3): the switch is on and the source is not env.
func (s Settings) ShouldSeed() bool {
	return s.EnableHeaderPassthrough && s.Source != SourceEnv
}

// SeedList splits the env list into the names a first start stores as the
// global list, in order, and the invalid names it leaves out (to warn about).
// Whoever stores it must create the row only when none exists, atomically,
// and never overwrite it (spec §3).
func SeedList(env []string) (valid, invalid []string) {
	valid = []string{}
	for _, n := range env {
		if ValidName(n) {
			valid = append(valid, n)
		} else {
			invalid = append(invalid, n)
		}
	}
	return valid, invalid
}

// LoadStoredList reads the stored global list. It is the only I/O the
// resolver does, and it is the caller's.
type LoadStoredList func(ctx context.Context) (StoredList, error)

// RetryInterval is how long a resolver waits before it reads the stored list
// again after a failed read (spec §4).
const RetryInterval = 10 * time.Second

// AllowlistResolver resolves effective allowlists (spec §3), reading the
// stored global list through a LoadStoredList and caching the compiled result
// for GLOBAL_CONFIG_CACHE_TTL (deviation D9: the TTL is used). Invalidate
// makes the next call read again; it is how a configuration change takes
// effect at once (deviation D10). When a read fails, the last known list is
// used and the read is retried no more often than every RetryInterval; with no
// list ever known, the error is returned and the caller forwards only
// X-Upstream-Authorization (spec §4).
//
// It is safe for concurrent use. Concurrent misses share one read.
type AllowlistResolver struct {
	policy *Policy
	load   LoadStoredList
	now    func() time.Time
	env    *Allowlist // the compiled env list, for source env

	mu         sync.Mutex // held while reading the stored list
	generation atomic.Uint64
	current    atomic.Pointer[resolved]
	hits       atomic.Uint64
	misses     atomic.Uint64
	loadErrors atomic.Uint64
}

type resolved struct {
	list       *Allowlist // nil when no list was ever read successfully
	err        error      // the last read error, when list is nil
	generation uint64
	expires    time.Time
}

// NewAllowlistResolver returns a resolver for the policy's settings. now is
// the clock; nil means time.Now.
func NewAllowlistResolver(p *Policy, load LoadStoredList, now func() time.Time) *AllowlistResolver {
	if now == nil {
		now = time.Now
	}
	return &AllowlistResolver{
		policy: p,
		load:   load,
		now:    now,
		env:    p.Compile(p.settings.DefaultPassthroughHeaders),
	}
}

// Effective returns the allowlist for an upstream whose own list is own, nil
// meaning "inherit the global list" (spec §3). It returns nil, and reads
// nothing, when header passthrough is off; it reads nothing either when the
// upstream has its own list.
func (r *AllowlistResolver) Effective(ctx context.Context, own *Allowlist) (*Allowlist, error) {
	if !r.policy.settings.EnableHeaderPassthrough {
		return nil, nil
	}
	if own != nil {
		return own, nil
	}
	return r.Global(ctx)
}

// Global returns the compiled global allowlist.
func (r *AllowlistResolver) Global(ctx context.Context) (*Allowlist, error) {
	if r.policy.settings.Source == SourceEnv {
		return r.env, nil
	}
	if cur := r.fresh(r.now()); cur != nil {
		r.hits.Add(1)
		return cur.list, cur.err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Another caller may have read it while this one waited.
	now := r.now()
	if cur := r.fresh(now); cur != nil {
		r.hits.Add(1)
		return cur.list, cur.err
	}
	r.misses.Add(1)
	gen := r.generation.Load()
	stored, err := r.load(ctx)
	if err != nil {
		r.loadErrors.Add(1)
		next := &resolved{err: err, generation: gen, expires: now.Add(RetryInterval)}
		if prev := r.current.Load(); prev != nil && prev.list != nil {
			next.list, next.err = prev.list, nil
		}
		r.current.Store(next)
		return next.list, next.err
	}
	names := GlobalAllowlist(r.policy.settings.Source, r.policy.settings.DefaultPassthroughHeaders, stored)
	next := &resolved{list: r.policy.Compile(names), generation: gen, expires: now.Add(r.policy.settings.GlobalConfigCacheTTL)}
	r.current.Store(next)
	return next.list, nil
}

// fresh returns the cached entry if it is still valid at now.
func (r *AllowlistResolver) fresh(now time.Time) *resolved {
	cur := r.current.Load()
	if cur == nil || cur.generation != r.generation.Load() || !now.Before(cur.expires) {
		return nil
	}
	return cur
}

// Invalidate makes the next call read the stored list again. It never blocks;
// a read in progress when it is called is not cached as fresh.
func (r *AllowlistResolver) Invalidate() {
	r.generation.Add(1)
}

// CacheStats counts resolver activity since it was created.
type CacheStats struct {
	Hits       uint64  `json:"hits"`
	Misses     uint64  `json:"misses"`
	LoadErrors uint64  `json:"load_errors"`
	HitRate    float64 `json:"hit_rate"`
}

// Stats returns the counters.
func (r *AllowlistResolver) Stats() CacheStats {
	s := CacheStats{Hits: r.hits.Load(), Misses: r.misses.Load(), LoadErrors: r.loadErrors.Load()}
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRate = float64(s.Hits) / float64(total)
	}
	return s
}
