package jsonrpc

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeKinds(t *testing.T) {
	tests := []struct {
		in                            string
		request, notification, answer bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, true, false, false},
		{`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}`, true, false, false},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, false, true, false},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, false, false, true},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, false, false, true},
	}
	for _, tt := range tests {
		msgs, batch, err := Decode([]byte(tt.in))
		if err != nil || batch || len(msgs) != 1 {
			t.Fatalf("Decode(%s) = %v, %v, %v", tt.in, msgs, batch, err)
		}
		m := msgs[0]
		if m.IsRequest() != tt.request || m.IsNotification() != tt.notification || m.IsResponse() != tt.answer {
			t.Errorf("%s: request %v notification %v response %v", tt.in, m.IsRequest(), m.IsNotification(), m.IsResponse())
		}
	}
}

// TestRawFieldsSurvive: unknown content inside params and results is kept
// byte for byte.
func TestRawFieldsSurvive(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"x-new","weird":[1,2,{"z":null}]}],"_meta":{"k":"v"}}}`
	msgs, _, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msgs[0].Result); got != `{"content":[{"type":"x-new","weird":[1,2,{"z":null}]}],"_meta":{"k":"v"}}` {
		t.Errorf("result = %s", got)
	}
	out, err := Encode(msgs[0])
	if err != nil || string(out) != in {
		t.Errorf("Encode = %s, %v; want the input back", out, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in   string
		code int
	}{
		{``, CodeParseError},
		{`{"jsonrpc":"2.0","id":1,"method":`, CodeParseError},
		{`not json`, CodeParseError},
		{`{"jsonrpc":"2.0","id":1,"method":"a"} {}`, CodeParseError},
		{`[]`, CodeInvalidRequest},
		{`{"jsonrpc":"1.0","id":1,"method":"a"}`, CodeInvalidRequest},
		{`{"id":1,"method":"a"}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":{},"method":"a"}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":null,"method":"a"}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":5}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"a","params":3}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"a","result":{}}`, CodeInvalidRequest},
		{`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0"}]`, CodeInvalidRequest},
	}
	for _, tt := range tests {
		_, _, err := Decode([]byte(tt.in))
		var e *Error
		if !errors.As(err, &e) || e.Code != tt.code {
			t.Errorf("Decode(%q) error = %v, want code %d", tt.in, err, tt.code)
		}
	}
}

func TestBatch(t *testing.T) {
	msgs, batch, err := Decode([]byte(` [{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`))
	if err != nil || !batch || len(msgs) != 2 {
		t.Fatalf("got %v, %v, %v", msgs, batch, err)
	}
	if _, err := DecodeMessage([]byte(`[{"jsonrpc":"2.0","id":1,"method":"a"}]`)); err == nil {
		t.Error("DecodeMessage accepted a batch")
	}
}

func TestNewError(t *testing.T) {
	m := NewError(nil, Errorf(CodeMethodNotFound, "unknown tool %q", "crm-x"))
	b, _ := Encode(m)
	var back map[string]any
	_ = json.Unmarshal(b, &back)
	if back["id"] != nil || back["error"].(map[string]any)["message"] != `unknown tool "crm-x"` {
		t.Errorf("got %s", b)
	}
}

// TestEncodeKeepsRawBytes: raw fields are written as they are (no
// compaction, no HTML escaping); strings are escaped only as JSON needs.
func TestEncodeKeepsRawBytes(t *testing.T) {
	m := Message{ID: json.RawMessage(`"a<b"`), Result: json.RawMessage(`{ "html": "<b>&amp;</b>",  "n": [1, 2] }`)}
	got, err := Encode(m)
	if want := `{"jsonrpc":"2.0","id":"a<b","result":{ "html": "<b>&amp;</b>",  "n": [1, 2] }}`; err != nil || string(got) != want {
		t.Errorf("Encode = %s, %v; want %s", got, err, want)
	}
	e := NewError(json.RawMessage(`1`), Errorf(CodeUpstreamError, "upstream \"crm\"\nfailed \xff"))
	got, err = Encode(e)
	if want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"upstream \"crm\"\u000afailed ` + "\uFFFD" + `"}}`; err != nil || string(got) != want {
		t.Errorf("Encode = %s, %v; want %s", got, err, want)
	}
	if _, err := Encode(Message{ID: json.RawMessage(`1`), Result: json.RawMessage(`{oops`)}); err == nil {
		t.Error("invalid raw JSON encoded")
	}
	batch, _ := EncodeBatch([]Message{{ID: json.RawMessage(`1`), Result: json.RawMessage(`{}`)}, {Method: "n"}})
	if string(batch) != `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"n"}]` {
		t.Errorf("EncodeBatch = %s", batch)
	}
}
