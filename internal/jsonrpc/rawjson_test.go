package jsonrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDuplicateKeyRefused: a message with a key twice in any object, at
// any depth, is an invalid request naming the key and where it is.
func TestDuplicateKeyRefused(t *testing.T) {
	many := func(extra string) string {
		var b strings.Builder
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + b.String() + extra + `}}`
	}
	tests := []struct{ name, in, key, path string }{
		{"envelope", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, "method", ""},
		{"envelope id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, "id", ""},
		{"routed name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_safe","arguments":{},"name":"b_rm"}}`, "name", "params"},
		{"escaped twin", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_x","n\u0061me":"b_y"}}`, "name", "params"},
		{"arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_x","arguments":{"path":"/ok","path":"/etc"}}}`, "path", "params.arguments"},
		{"meta", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a_x","_meta":{"progressToken":1,"progressToken":2}}}`, "progressToken", "params._meta"},
		{"in an array", `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text"},{"type":"text","type":"image"}]}}`, "type", "result.content[1]"},
		{"large object", many(`"k7":0`), "k7", "params"},
		{"in a batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","params":{"a":1,"a":1}}]`, "a", "params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode([]byte(tt.in))
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidRequest {
				t.Fatalf("Decode = %v; want an invalid request", err)
			}
			want := fmt.Sprintf("duplicate key %q", tt.key)
			if tt.path != "" {
				want += " in " + tt.path
			}
			if !strings.Contains(e.Message, want) {
				t.Errorf("message %q does not say %q", e.Message, want)
			}
		})
	}
}

// TestSameKeyInDifferentObjectsAccepted: a key may repeat across objects,
// siblings or nested, and a string value may look like a key.
func TestSameKeyInDifferentObjectsAccepted(t *testing.T) {
	for _, in := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"name":"b","x":{"name":"c"}}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\"type\":"},{"type":"text"}]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{"a\\b":1,"a\\\\b":2,"":3,"\u00e9":4,"é ":5}}`,
		` { "jsonrpc" : "2.0" , "id" : 1 , "method" : "x" , "params" : { "a" : [ 1 , { "a" : 2 } ] } } `,
	} {
		if _, _, err := Decode([]byte(in)); err != nil {
			t.Errorf("Decode(%s) = %v", in, err)
		}
	}
}

// TestCheckKeysNeverPanics: on input that is not JSON, CheckKeys answers
// something and returns.
func TestCheckKeysNeverPanics(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a`, `{"a":`, `[`, `[1,`, `{"a":1,"a"`, `"\`, `{"\`, `}}]]`} {
		_ = CheckKeys([]byte(in))
	}
}

func TestMemberSpan(t *testing.T) {
	obj := []byte(` {"a" : 1, "n\u0061me": "x\"y", "o":{"name":"inner"}, "arr":[{"}":"]"}], "z":null}`)
	for key, want := range map[string]string{"a": "1", "name": `"x\"y"`, "o": `{"name":"inner"}`, "arr": `[{"}":"]"}]`, "z": "null"} {
		got, ok := Member(obj, key)
		if !ok || string(got) != want {
			t.Errorf("Member(%q) = %s, %v; want %s", key, got, ok, want)
		}
	}
	if _, ok := Member(obj, "missing"); ok {
		t.Error("Member(missing) found something")
	}
	if s, ok := StringMember(obj, "name"); !ok || s != `x"y` {
		t.Errorf("StringMember(name) = %q, %v", s, ok)
	}
	if _, _, err := MemberSpan([]byte(`{"name":"a","name":"b"}`), "name"); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("MemberSpan of a repeated key = %v; want ErrDuplicateKey", err)
	}
	for _, bad := range []string{`[]`, `"s"`, `{"a":1`, `{"a" 1}`, ``} {
		if _, _, err := MemberSpan([]byte(bad), "a"); err == nil {
			t.Errorf("MemberSpan(%s) = nil error", bad)
		}
	}
}

func TestWithMember(t *testing.T) {
	tests := []struct{ in, key, value, want string }{
		{`{"name":"a","x":[1, 2]}`, "name", `"b"`, `{"name":"b","x":[1, 2]}`},
		{`{"x":1 }`, "name", `"b"`, `{"x":1 ,"name":"b"}`},
		{`{ }`, "name", `"b"`, `{ "name":"b"}`},
	}
	for _, tt := range tests {
		got, err := WithMember([]byte(tt.in), tt.key, json.RawMessage(tt.value))
		if err != nil || string(got) != tt.want {
			t.Errorf("WithMember(%s, %s, %s) = %s, %v; want %s", tt.in, tt.key, tt.value, got, err, tt.want)
		}
	}
	if _, err := WithStringMember([]byte(`{"name":"a","name":"b"}`), "name", "c"); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("WithStringMember on a repeated key = %v; want ErrDuplicateKey", err)
	}
}

// benchMessage is a typical tools/call: a few arguments, a _meta.
var benchMessage = []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"files_read_file",` +
	`"arguments":{"path":"/srv/data/report.txt","encoding":"utf-8","range":{"start":0,"end":4096},"tags":["a","b","c"]},` +
	`"_meta":{"progressToken":"tok-42"}}}`)

// BenchmarkDecode compares the parse before duplicate keys were refused
// (envelope) with the one path now (strict), in one run.
func BenchmarkDecode(b *testing.B) {
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEnvelope(benchMessage); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeOne(benchMessage); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheckKeysAfterEmptyContainers: an empty object or array closes
// before the next key of the object around it.
func TestCheckKeysAfterEmptyContainers(t *testing.T) {
	for _, in := range []string{`{"a":{},"a":1}`, `{"a":[],"a":1}`, `{"x":[{},[]],"a":1,"a":2}`} {
		if err := CheckKeys([]byte(in)); !errors.Is(err, ErrDuplicateKey) {
			t.Errorf("CheckKeys(%s) = %v; want ErrDuplicateKey", in, err)
		}
	}
}

// TestWithStringMemberKeepsEveryOtherByte: renaming a tool touches its name
// and nothing else, so unknown fields and key order reach the client as the
// upstream sent them.
func TestWithStringMemberKeepsEveryOtherByte(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"name":"echo","x-new":{"b":1,"a":2},"inputSchema":{}}`, `{"name":"crm-echo","x-new":{"b":1,"a":2},"inputSchema":{}}`},
		{`{ "z": [1, 2] ,  "name" :  "echo" , "a":null }`, `{ "z": [1, 2] ,  "name" :  "crm-echo" , "a":null }`},
		{`{"title":"name","nested":{"name":"inner"},"name":"echo"}`, `{"title":"name","nested":{"name":"inner"},"name":"crm-echo"}`},
		{`{"description":"no name"}`, `{"description":"no name","name":"crm-echo"}`},
		{`{}`, `{"name":"crm-echo"}`},
	}
	for _, tt := range tests {
		got, err := WithStringMember(json.RawMessage(tt.in), "name", "crm-echo")
		if err != nil || string(got) != tt.want {
			t.Errorf("WithStringMember(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := WithStringMember(json.RawMessage(`[1]`), "name", "x"); err == nil {
		t.Error("an array was accepted as an object")
	}
}

// hasDuplicateKey is CheckKeys the slow way, with encoding/json's tokens,
// for comparison.
func hasDuplicateKey(data []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			if top != nil && top.object {
				top.expectKey = true
			}
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('['):
			if top != nil && top.object {
				top.expectKey = true
			}
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expectKey = true
			}
			continue
		}
		if top != nil && top.object {
			top.expectKey = true
		}
		if len(stack) == 0 {
			return false
		}
	}
}

// FuzzCheckKeys: on valid JSON, CheckKeys finds a duplicate key exactly
// when encoding/json's tokens show one.
func FuzzCheckKeys(f *testing.F) {
	for _, seed := range []string{
		`{"a":1,"b":{"a":2,"c":[{"a":1},{"a":1,"a":2}]}}`,
		`{"a":{},"a":[]}`, `[{"x":1},{"x":2}]`, `{"\u0061":1,"a":2}`, `{"a\\":1,"a":2}`,
		`{"k":"\"k\":1","k2":{"":1,"":2}}`, `[]`, `{}`, `"s"`, `1`,
		many(40, `"k3":0`), many(40, `"z":0`),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			_ = CheckKeys(data) // must return
			return
		}
		got, want := CheckKeys(data) != nil, hasDuplicateKey(data)
		if got != want {
			t.Errorf("CheckKeys(%s) found a duplicate: %v; encoding/json: %v", data, got, want)
		}
	})
}

func many(n int, last string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	return b.String() + last + "}"
}
