package dispatch

import (
	"encoding/json"
	"testing"
)

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
	if r, ok := ix.resourceOwner("x://1"); !ok || r != a {
		t.Error("x://1 not routed to a")
	}
	if r, ok := ix.resourceOwner("y://9"); !ok || r != b {
		t.Error("y://9 not routed to b by its template")
	}
	if _, ok := ix.resourceOwner("z://0"); ok {
		t.Error("z://0 routed")
	}
}
