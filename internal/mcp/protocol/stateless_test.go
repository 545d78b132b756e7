package protocol

import (
	"encoding/json"
	"testing"
)

// TestCompleteResult: a 2026-07-28 result gets resultType complete (one it
// has is kept: an InputRequiredResult stays one) and serverInfo in _meta,
// every other member kept.
func TestCompleteResult(t *testing.T) {
	info := json.RawMessage(`{"name":"mcpgate","version":"1"}`)
	tests := []struct{ in, want string }{
		{`{"tools":[]}`, `{"tools":[],"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcpgate","version":"1"}}}`},
		{`{"resultType":"input_required","_meta":{"x":1}}`, `{"resultType":"input_required","_meta":{"x":1,"io.modelcontextprotocol/serverInfo":{"name":"mcpgate","version":"1"}}}`},
		{`[]`, `[]`},
	}
	for _, tt := range tests {
		if got := string(CompleteResult(json.RawMessage(tt.in), info)); got != tt.want {
			t.Errorf("CompleteResult(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestWithoutRequestMeta: the members that describe a 2026-07-28 client
// leave _meta (and _meta with them when nothing else is in it); a
// progress token and every other byte of params stay.
func TestWithoutRequestMeta(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`, `{"name":"a","_meta":{}}`},
		{`{"name":"a","_meta":{"progressToken":3,"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}}}`, `{"name":"a","_meta":{"progressToken":3}}`},
		{`{"name":"a","_meta":{"progressToken":3}}`, `{"name":"a","_meta":{"progressToken":3}}`},
		{`{"name":"a"}`, `{"name":"a"}`},
	}
	for _, tt := range tests {
		if got := string(WithoutRequestMeta(json.RawMessage(tt.in))); got != tt.want {
			t.Errorf("WithoutRequestMeta(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestUnsupportedVersion: the error lists the revisions mcpgate speaks.
func TestUnsupportedVersion(t *testing.T) {
	e := UnsupportedVersion("2099-01-01")
	var data struct{ Supported []string }
	if e.Code != CodeUnsupportedProtocolVersion || json.Unmarshal(e.Data, &data) != nil || len(data.Supported) != len(Versions()) {
		t.Errorf("UnsupportedVersion = %+v %s", e, e.Data)
	}
}
