package upstream

import (
	"bytes"
	"encoding/json"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// memberSpan finds key in the JSON object obj and returns the byte span of
// its value (jsonrpc.MemberSpan: a repeated key is never read). ok is false
// when obj is not an object, lacks key, or has it twice.
func memberSpan(obj []byte, key string) (start, end int, ok bool) {
	start, end, err := jsonrpc.MemberSpan(obj, key)
	return start, end, err == nil && start >= 0
}

// member returns the raw value of key in the JSON object obj.
func member(obj []byte, key string) (json.RawMessage, bool) {
	start, end, ok := memberSpan(obj, key)
	if !ok {
		return nil, false
	}
	return json.RawMessage(obj[start:end]), true
}

// splice returns a copy of b with b[start:end] replaced by v.
func splice(b []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(b)-(end-start)+len(v))
	out = append(out, b[:start]...)
	out = append(out, v...)
	return append(out, b[end:]...)
}

// setTopLevel replaces the value of key in the object obj (a notification's
// params) by v; obj is returned unchanged when it lacks key.
func setTopLevel(obj json.RawMessage, key string, v []byte) json.RawMessage {
	start, end, ok := memberSpan(obj, key)
	if !ok {
		return obj
	}
	return splice(obj, start, end, v)
}

// idKey is the map key of a request id or progress token as raw JSON.
func idKey(raw []byte) string { return string(bytes.TrimSpace(raw)) }
