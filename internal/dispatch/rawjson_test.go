package dispatch

import (
	"encoding/json"
	"testing"
)

// TestWithStringFieldKeepsEveryOtherByte: renaming a tool touches its name
// and nothing else, so unknown fields and key order reach the client as the
// upstream sent them.
func TestWithStringFieldKeepsEveryOtherByte(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"name":"echo","x-new":{"b":1,"a":2},"inputSchema":{}}`, `{"name":"crm-echo","x-new":{"b":1,"a":2},"inputSchema":{}}`},
		{`{ "z": [1, 2] ,  "name" :  "echo" , "a":null }`, `{ "z": [1, 2] ,  "name" :  "crm-echo" , "a":null }`},
		{`{"title":"name","nested":{"name":"inner"},"name":"echo"}`, `{"title":"name","nested":{"name":"inner"},"name":"crm-echo"}`},
		{`{"description":"no name"}`, `{"description":"no name","name":"crm-echo"}`},
		{`{}`, `{"name":"crm-echo"}`},
	}
	for _, tt := range tests {
		got, err := withStringField(json.RawMessage(tt.in), "name", "crm-echo")
		if err != nil || string(got) != tt.want {
			t.Errorf("withStringField(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := withStringField(json.RawMessage(`[1]`), "name", "x"); err == nil {
		t.Error("an array was accepted as an object")
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
