package dispatch

import (
	"encoding/json"
	"testing"
)

// TestIndexReportsNameConflictsBetweenUpstreams: when two upstreams' tools
// or prompts get one federated name ("a" + "-" + "b-x" and "a-b" + "-" +
// "x"), the index serves the first upstream in slug order and reports the
// other's item as a conflict, naming both; a name repeated within one
// upstream's own list, and a resource URI two upstreams share, are not
// conflicts of names.
func TestIndexReportsNameConflictsBetweenUpstreams(t *testing.T) {
	items := func(names ...string) []json.RawMessage {
		var out []json.RawMessage
		for _, n := range names {
			out = append(out, json.RawMessage(`{"name":"`+n+`","uri":"test://`+n+`"}`))
		}
		return out
	}
	a := &Route{ID: "id-a", Name: "A", Slug: "a", Catalogue: Catalogue{
		Tools: items("b-x", "y", "y"), Prompts: items("b-p"), Resources: items("shared")}}
	ab := &Route{ID: "id-ab", Name: "A B", Slug: "a-b", Catalogue: Catalogue{
		Tools: items("x", "z"), Prompts: items("p"), Resources: items("shared")}}
	// Given in the other order: the index takes upstreams in slug order.
	ix := NewIndex([]*Route{ab, a}, "-")

	want := []NameConflict{
		{Kind: "tool", Name: "a-b-x", Kept: a, Dropped: ab},
		{Kind: "prompt", Name: "a-b-p", Kept: a, Dropped: ab},
	}
	got := ix.Conflicts()
	if len(got) != len(want) {
		t.Fatalf("conflicts = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("conflict %d = {%s %s kept %s dropped %s}, want {%s %s kept %s dropped %s}", i,
				got[i].Kind, got[i].Name, got[i].Kept.ID, got[i].Dropped.ID, want[i].Kind, want[i].Name, want[i].Kept.ID, want[i].Dropped.ID)
		}
	}
	if e := ix.tools["a-b-x"]; e.route != a || e.name != "b-x" {
		t.Errorf("a-b-x is served by %v as %q, want upstream a's b-x", e.route, e.name)
	}
	if e := ix.tools["a-b-z"]; e.route != ab {
		t.Errorf("a-b-z, which does not collide, is served by %v, want upstream a-b", e.route)
	}

	// Under a separator no slug contains, the same upstreams do not collide.
	if c := NewIndex([]*Route{ab, a}, "__").Conflicts(); len(c) != 0 {
		t.Errorf("with separator __: conflicts %+v, want none", c)
	}
}
