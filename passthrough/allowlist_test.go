package passthrough

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestGlobalAllowlistBySource(t *testing.T) {
	env := []string{"X-Common", "X-Env"}
	stored := StoredList{Exists: true, Names: []string{"x-common", "X-Stored"}}
	tests := []struct {
		source Source
		stored StoredList
		want   []string
	}{
		{SourceEnv, stored, []string{"X-Common", "X-Env"}},
		{SourceDB, stored, []string{"x-common", "X-Stored"}},
		{SourceDB, StoredList{Exists: true, Names: []string{}}, env}, // empty stored list: env
		{SourceDB, StoredList{Exists: true}, env},                    // NULL row: env
		{SourceDB, StoredList{}, env},                                // no row: env
		{SourceMerge, stored, []string{"x-common", "X-Env", "X-Stored"}},
		{SourceMerge, StoredList{}, env},
	}
	for _, tt := range tests {
		if got := GlobalAllowlist(tt.source, env, tt.stored); !slices.Equal(got, tt.want) {
			t.Errorf("%s with %+v: got %v, want %v", tt.source, tt.stored, got, tt.want)
		}
	}
}

// TestNullInheritsGlobal: an upstream's null list inherits the global list,
// an empty one forwards nothing (spec §3, D5).
func TestNullInheritsGlobal(t *testing.T) {
	global := []string{"X-Tenant-Id"}
	if got := EffectiveAllowlist(nil, global); !slices.Equal(got, global) {
		t.Errorf("null: %v, want the global %v", got, global)
	}
	empty := []string{}
	if got := EffectiveAllowlist(&empty, global); got == nil || len(got) != 0 {
		t.Errorf("[]: %v, want an empty list", got)
	}
	p := NewPolicy(settingsOn())
	r := NewAllowlistResolver(p, (&countingLoader{list: StoredList{Exists: true, Names: global}}).load, nil)
	req := hdr("X-Tenant-Id", "acme")
	ctx := context.Background()
	inherit, _ := r.Effective(ctx, nil)
	none, _ := r.Effective(ctx, p.Compile(empty))
	if res := p.Compute(Call{Request: req, Allowlist: inherit}); len(res.Headers) != 1 {
		t.Errorf("inheriting upstream forwarded %v, want X-Tenant-Id", res.Headers)
	}
	if res := p.Compute(Call{Request: req, Allowlist: none}); len(res.Headers) != 0 {
		t.Errorf("upstream with [] forwarded %v, want nothing", res.Headers)
	}
}

func TestSeedList(t *testing.T) {
	valid, invalid := SeedList([]string{"X-Ok", "Bad Header", "X-Also"})
	if !slices.Equal(valid, []string{"X-Ok", "X-Also"}) || !slices.Equal(invalid, []string{"Bad Header"}) {
		t.Errorf("got %v, %v", valid, invalid)
	}
	s := settingsOn()
	if !s.ShouldSeed() {
		t.Error("switch on, source db: should seed")
	}
	s.Source = SourceEnv
	if s.ShouldSeed() {
		t.Error("source env: should not seed")
	}
}

// TestResolverTTL: the global list is cached for GLOBAL_CONFIG_CACHE_TTL (D9)
// and read again after it.
func TestResolverTTL(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	loader := &countingLoader{list: StoredList{Exists: true, Names: []string{"X-A"}}}
	s := settingsOn(func(s *Settings) { s.GlobalConfigCacheTTL = 30 * time.Second })
	r := NewAllowlistResolver(NewPolicy(s), loader.load, clock.Now)
	ctx := context.Background()
	_, _ = r.Global(ctx)
	clock.Advance(29 * time.Second)
	_, _ = r.Global(ctx)
	if loader.count() != 1 {
		t.Fatalf("read %d times within the TTL, want 1", loader.count())
	}
	clock.Advance(time.Second)
	_, _ = r.Global(ctx)
	if loader.count() != 2 {
		t.Errorf("read %d times after the TTL, want 2", loader.count())
	}
}

// TestResolverLastKnownListWhenStoreFails: spec §4. The last known list is
// used and the store is asked again no more often than every 10 s; with no
// list ever known, the error reaches the caller.
func TestResolverLastKnownListWhenStoreFails(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	var mu sync.Mutex
	down, reads := true, 0
	load := func(context.Context) (StoredList, error) {
		mu.Lock()
		defer mu.Unlock()
		reads++
		if down {
			return StoredList{}, errors.New("database down")
		}
		return StoredList{Exists: true, Names: []string{"X-A"}}, nil
	}
	s := settingsOn(func(s *Settings) { s.GlobalConfigCacheTTL = 0 })
	r := NewAllowlistResolver(NewPolicy(s), load, clock.Now)
	ctx := context.Background()

	if l, err := r.Global(ctx); err == nil || l != nil {
		t.Fatalf("nothing known and store down: got %v, %v; want the error", l.Names(), err)
	}
	if _, err := r.Global(ctx); err == nil || reads != 1 {
		t.Errorf("second call within 10 s: err %v after %d reads, want the error without a read", err, reads)
	}
	clock.Advance(RetryInterval)
	mu.Lock()
	down = false
	mu.Unlock()
	if l, err := r.Global(ctx); err != nil || !slices.Equal(l.Names(), []string{"X-A"}) {
		t.Fatalf("store back: got %v, %v", l.Names(), err)
	}
	mu.Lock()
	down = true
	mu.Unlock()
	before := reads
	for i := 0; i < 5; i++ {
		clock.Advance(time.Second)
		if l, err := r.Global(ctx); err != nil || !slices.Equal(l.Names(), []string{"X-A"}) {
			t.Fatalf("store down again: got %v, %v; want the last known list", l.Names(), err)
		}
	}
	if reads-before != 1 {
		t.Errorf("%d reads in 5 s with the store down, want 1 (retry every 10 s)", reads-before)
	}
	if r.Stats().LoadErrors != 2 {
		t.Errorf("load errors = %d, want 2", r.Stats().LoadErrors)
	}
}

// TestResolverInvalidateDuringRead: a change published while a read is in
// flight is not lost; the read's result is not cached as fresh.
func TestResolverInvalidateDuringRead(t *testing.T) {
	reading := make(chan struct{})
	proceed := make(chan struct{})
	var mu sync.Mutex
	names := []string{"X-Old"}
	first := true
	load := func(context.Context) (StoredList, error) {
		mu.Lock()
		n, wait := names, first
		first = false
		mu.Unlock()
		if wait {
			close(reading)
			<-proceed
		}
		return StoredList{Exists: true, Names: n}, nil
	}
	r := NewAllowlistResolver(NewPolicy(settingsOn()), load, nil)
	ctx := context.Background()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = r.Global(ctx) }()
	<-reading
	mu.Lock()
	names = []string{"X-New"}
	mu.Unlock()
	r.Invalidate()
	close(proceed)
	<-done
	l, err := r.Global(ctx)
	if err != nil || !slices.Equal(l.Names(), []string{"X-New"}) {
		t.Errorf("after invalidation got %v, %v; want X-New", l.Names(), err)
	}
}

// TestResolverReadsNothingItDoesNotNeed: no read when passthrough is off,
// when the upstream has its own list, or when the source is env.
func TestResolverReadsNothingItDoesNotNeed(t *testing.T) {
	ctx := context.Background()
	loader := &countingLoader{}
	off := NewPolicy(DefaultSettings())
	if l, _ := NewAllowlistResolver(off, loader.load, nil).Effective(ctx, nil); l != nil {
		t.Errorf("switch off: got %v, want nil", l.Names())
	}
	on := NewPolicy(settingsOn())
	own := on.Compile([]string{"X-Own"})
	if l, _ := NewAllowlistResolver(on, loader.load, nil).Effective(ctx, own); l != own {
		t.Error("own list not used as it is")
	}
	envSrc := NewPolicy(settingsOn(func(s *Settings) { s.Source = SourceEnv }))
	if l, _ := NewAllowlistResolver(envSrc, loader.load, nil).Effective(ctx, nil); !slices.Equal(l.Names(), []string{"X-Tenant-Id", "X-Trace-Id"}) {
		t.Errorf("source env: got %v", l.Names())
	}
	if loader.count() != 0 {
		t.Errorf("stored list read %d times, want 0", loader.count())
	}
}
