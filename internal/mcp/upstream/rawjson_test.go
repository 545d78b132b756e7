package upstream

import "testing"

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
			out, old, ok := swapProgressToken([]byte(tt.params), []byte("42"))
			if ok != tt.ok || string(out) != tt.wantParams || string(old) != tt.wantOld {
				t.Errorf("swapProgressToken(%s) = %s, %s, %v; want %s, %s, %v", tt.params, out, old, ok, tt.wantParams, tt.wantOld, tt.ok)
			}
		})
	}
}

func TestSetTopLevel(t *testing.T) {
	got := setTopLevel([]byte(`{"progressToken": 42, "progress": 1, "_meta": {"progressToken": 42}}`), "progressToken", []byte(`"tok"`))
	if want := `{"progressToken": "tok", "progress": 1, "_meta": {"progressToken": 42}}`; string(got) != want {
		t.Errorf("setTopLevel = %s, want %s", got, want)
	}
}
