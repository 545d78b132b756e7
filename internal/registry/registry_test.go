package registry

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// TestOnChangeSaysWhichUpstreamChangedAndWhyItLeft: every index the
// registry publishes comes with the upstream it changed for, and with why
// that upstream left the index when it did — what the relay needs to end
// its sessions, whether the change was made here or applied from another
// instance (ApplyUpstream).
func TestOnChangeSaysWhichUpstreamChangedAndWhyItLeft(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:///"+filepath.Join(t.TempDir(), "mcpgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	policy := passthrough.NewPolicy(passthrough.DefaultSettings())
	var mu sync.Mutex
	var changes []IndexChange
	r := New(Config{Store: st, Policy: policy, Resolver: passthrough.NewAllowlistResolver(policy, st.GlobalPassthrough, nil),
		HTTPClient: upstream.NewHTTPClient(egress.LocalPolicy(), nil), Egress: egress.LocalPolicy(), OnChange: func(c IndexChange) {
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
		}})
	t.Cleanup(func() { _ = r.Close() })
	last := func() IndexChange {
		mu.Lock()
		defer mu.Unlock()
		if len(changes) == 0 {
			t.Fatal("no change was published")
		}
		c := changes[len(changes)-1]
		return IndexChange{Upstream: c.Upstream, Removed: c.Removed} // which lists changed is tested apart
	}

	up := mcptest.NewStreamableHTTP(t)
	v, err := r.Create(ctx, Spec{Name: "crm", URL: up.URL, Transport: upstream.StreamableHTTP, AuthType: passthrough.AuthNone, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := last(); c != (IndexChange{Upstream: v.ID}) {
		t.Errorf("after Create: %+v, want the upstream, still in the index", c)
	}
	empty := []string{}
	if _, err := r.Update(ctx, v.ID, Patch{PassthroughHeaders: OptionalList{Set: true, List: &empty}}); err != nil {
		t.Fatal(err)
	}
	if c := last(); c != (IndexChange{Upstream: v.ID}) {
		t.Errorf("after a new list: %+v, want the upstream, still in the index", c)
	}
	off := false
	if _, err := r.Update(ctx, v.ID, Patch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if c := last(); c != (IndexChange{Upstream: v.ID, Removed: RemovedDisabled}) {
		t.Errorf("after disabling: %+v, want it removed as disabled", c)
	}
	if _, ok := r.Index().Route(v.ID); ok {
		t.Error("a disabled upstream is still in the index")
	}
	if err := r.Delete(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if c := last(); c != (IndexChange{Upstream: v.ID, Removed: RemovedDeleted}) {
		t.Errorf("after Delete: %+v, want it removed as deleted", c)
	}

	// As another instance applies a deletion it was told of.
	v, err = r.Create(ctx, Spec{Name: "crm2", URL: up.URL, Transport: upstream.StreamableHTTP, AuthType: passthrough.AuthNone, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUpstream(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyUpstream(ctx, v.ID, 0); err != nil {
		t.Fatal(err)
	}
	if c := last(); c != (IndexChange{Upstream: v.ID, Removed: RemovedDeleted}) {
		t.Errorf("after ApplyUpstream of a deletion: %+v, want it removed as deleted", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.ContainsFunc(changes, func(c IndexChange) bool { return c.Upstream == "" }) {
		t.Errorf("a change without its upstream: %+v", changes)
	}
}
