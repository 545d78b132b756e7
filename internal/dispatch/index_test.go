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

func TestTemplatePattern(t *testing.T) {
	tests := []struct {
		template, uri string
		match         bool
	}{
		{"test://items/{id}", "test://items/42", true},
		{"test://items/{id}", "test://items/42/more", false},
		{"file:///{+path}", "file:///a/b/c.txt", true},
		{"db://{table}/rows/{id}", "db://users/rows/7", true},
		{"db://{table}/rows/{id}", "db://users/cols/7", false},
		{"plain://exact.txt", "plain://exact.txt", true},
		{"a.b://{x}", "aXb://y", false},
	}
	for _, tt := range tests {
		if got := templatePattern(tt.template).MatchString(tt.uri); got != tt.match {
			t.Errorf("%s ~ %s = %v, want %v", tt.template, tt.uri, got, tt.match)
		}
	}
}

// TestIndexPrefixesAndRoutes: names are prefixed with the slug, a name
// clash within one upstream keeps the first, and resources route by URI.
func TestIndexPrefixesAndRoutes(t *testing.T) {
	a := &Route{ID: "1", Slug: "a", Catalogue: Catalogue{
		Tools:     []json.RawMessage{json.RawMessage(`{"name":"t"}`), json.RawMessage(`{"name":"t","dup":true}`), json.RawMessage(`{"noname":1}`)},
		Resources: []json.RawMessage{json.RawMessage(`{"uri":"x://1","name":"one"}`)},
	}}
	b := &Route{ID: "2", Slug: "b", Catalogue: Catalogue{
		Tools:             []json.RawMessage{json.RawMessage(`{"name":"t"}`)},
		ResourceTemplates: []json.RawMessage{json.RawMessage(`{"uriTemplate":"y://{id}","name":"ys"}`)},
	}}
	ix := NewIndex([]*Route{b, a}, "-")
	if got := string(ix.lists["tools/list"]); got != `{"tools":[{"name":"a-t"},{"name":"b-t"}]}` {
		t.Errorf("tools/list = %s", got)
	}
	if e := ix.tools["b-t"]; e.route != b || e.name != "t" {
		t.Errorf("b-t routes to %+v", e)
	}
	if r, own, ok := ix.resourceRoute("x://1"); !ok || r != a || own != "x://1" {
		t.Error("x://1 not routed to a")
	}
	if r, own, ok := ix.resourceRoute("y://9"); !ok || r != b || own != "y://9" {
		t.Error("y://9 not routed to b by its template")
	}
	if _, _, ok := ix.resourceRoute("z://0"); ok {
		t.Error("z://0 routed")
	}
}

// TestIndexListsEachURIOnce: a URI three upstreams list is plain for the
// first in slug order and scoped for the others; an upstream's repetition
// of its own URI or template is left out; and each listed URI routes to
// its upstream under that upstream's own URI.
func TestIndexListsEachURIOnce(t *testing.T) {
	res := func(uris ...string) []json.RawMessage {
		var out []json.RawMessage
		for _, u := range uris {
			out = append(out, json.RawMessage(`{"uri":"`+u+`","name":"n"}`))
		}
		return out
	}
	tpl := json.RawMessage(`{"uriTemplate":"t://{id}","name":"t"}`)
	a := &Route{ID: "1", Slug: "a", Catalogue: Catalogue{Resources: res("x://1", "x://1"), ResourceTemplates: []json.RawMessage{tpl, tpl}}}
	b := &Route{ID: "2", Slug: "b", Catalogue: Catalogue{Resources: res("x://1", "x://2"), ResourceTemplates: []json.RawMessage{tpl}}}
	c := &Route{ID: "3", Slug: "c", Catalogue: Catalogue{Resources: res("x://1")}}
	ix := NewIndex([]*Route{c, b, a}, "-")
	if got, want := string(ix.lists["resources/list"]),
		`{"resources":[{"uri":"x://1","name":"a-n"},{"uri":"mcpgate://b/x://1","name":"b-n"},{"uri":"x://2","name":"b-n"},{"uri":"mcpgate://c/x://1","name":"c-n"}]}`; got != want {
		t.Errorf("resources/list = %s\nwant %s", got, want)
	}
	if got, want := string(ix.lists["resources/templates/list"]),
		`{"resourceTemplates":[{"uriTemplate":"t://{id}","name":"a-t"},{"uriTemplate":"mcpgate://b/t://{id}","name":"b-t"}]}`; got != want {
		t.Errorf("resources/templates/list = %s\nwant %s", got, want)
	}
	for _, tt := range []struct {
		uri, own string
		to       *Route
	}{
		{"x://1", "x://1", a}, {"mcpgate://b/x://1", "x://1", b}, {"mcpgate://c/x://1", "x://1", c},
		{"x://2", "x://2", b}, {"t://5", "t://5", a}, {"mcpgate://b/t://5", "t://5", b},
	} {
		if r, own, ok := ix.resourceRoute(tt.uri); !ok || r != tt.to || own != tt.own {
			t.Errorf("%s routes to %v as %q, want %s as %q", tt.uri, r, own, tt.to.Slug, tt.own)
		}
	}
	for _, uri := range []string{"mcpgate://d/x://1", "mcpgate://b/", "mcpgate:///x://1"} {
		if r, _, ok := ix.resourceRoute(uri); ok {
			t.Errorf("%s routes to %s, want nowhere", uri, r.Slug)
		}
	}
}
