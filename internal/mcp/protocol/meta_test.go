package protocol

import (
	"encoding/json"
	"testing"
)

func TestSwapProgressToken(t *testing.T) {
	tests := []struct {
		name, params, wantParams, wantOld string
		ok                                bool
	}{
		{"string token, other bytes kept",
			`{"name":"slow", "_meta": {"progressToken": "tok-1", "x": [1, 2]}, "arguments":{"ms": 5}}`,
			`{"name":"slow", "_meta": {"progressToken": 42, "x": [1, 2]}, "arguments":{"ms": 5}}`, `"tok-1"`, true},
		{"number token", `{"_meta":{"progressToken":7}}`, `{"_meta":{"progressToken":42}}`, `7`, true},
		{"no _meta", `{"name":"echo"}`, `{"name":"echo"}`, ``, false},
		{"no token", `{"_meta":{"other":1}}`, `{"_meta":{"other":1}}`, ``, false},
		{"null token is none", `{"_meta":{"progressToken":null}}`, `{"_meta":{"progressToken":null}}`, ``, false},
		{"a token elsewhere is not one", `{"arguments":{"_meta":{"progressToken":1}}}`, `{"arguments":{"_meta":{"progressToken":1}}}`, ``, false},
		{"a repeated key is never read", `{"_meta":{"progressToken":1,"progressToken":2}}`, `{"_meta":{"progressToken":1,"progressToken":2}}`, ``, false},
		{"escaped key", `{"\u005fmeta":{"progressToken":"a"}}`, `{"\u005fmeta":{"progressToken":42}}`, `"a"`, true},
		{"params an array", `[1,2]`, `[1,2]`, ``, false},
		{"no params", ``, ``, ``, false},
		{"broken JSON", `{"_meta":{"progressToken":"a"`, `{"_meta":{"progressToken":"a"`, ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, old, ok := SwapProgressToken([]byte(tt.params), []byte("42"))
			if ok != tt.ok || string(out) != tt.wantParams || string(old) != tt.wantOld {
				t.Errorf("SwapProgressToken(%s) = %s, %s, %v; want %s, %s, %v", tt.params, out, old, ok, tt.wantParams, tt.wantOld, tt.ok)
			}
		})
	}
}

// TestMetaReservedKeys: a 2026-07-28 request's reserved _meta members are
// read and written like any other, byte for byte.
func TestMetaReservedKeys(t *testing.T) {
	params := json.RawMessage(`{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`)
	if v, ok := Meta(params, MetaProtocolVersion); !ok || string(v) != `"2026-07-28"` {
		t.Errorf("Meta(protocolVersion) = %s, %v", v, ok)
	}
	if v, ok := Meta(params, MetaClientCapabilities); !ok || string(v) != `{}` {
		t.Errorf("Meta(clientCapabilities) = %s, %v", v, ok)
	}
	if _, ok := Meta(params, MetaClientInfo); ok {
		t.Error("Meta(clientInfo) found one")
	}
	out, err := WithMeta(params, MetaClientInfo, json.RawMessage(`{"name":"c"}`))
	want := `{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c"}}}`
	if err != nil || string(out) != want {
		t.Errorf("WithMeta = %s, %v; want %s", out, err, want)
	}
}

func TestWithMetaAddsMeta(t *testing.T) {
	tests := []struct{ params, want string }{
		{`{"name":"x"}`, `{"name":"x","_meta":{"progressToken":1}}`},
		{``, `{"_meta":{"progressToken":1}}`},
		{`{}`, `{"_meta":{"progressToken":1}}`},
	}
	for _, tt := range tests {
		got, err := WithMeta(json.RawMessage(tt.params), MetaProgressToken, json.RawMessage(`1`))
		if err != nil || string(got) != tt.want {
			t.Errorf("WithMeta(%s) = %s, %v; want %s", tt.params, got, err, tt.want)
		}
	}
	if _, err := WithMeta(json.RawMessage(`{"_meta":[]}`), MetaProgressToken, json.RawMessage(`1`)); err == nil {
		t.Error("WithMeta on a _meta that is not an object succeeded")
	}
}
