package upstream

import (
	"bytes"
	"encoding/json"
)

// memberSpan finds key in the JSON object obj and returns the byte span of
// its value. When the key repeats, the last one wins, as encoding/json (and
// most servers) read it. ok is false when obj is not an object or lacks key.
func memberSpan(obj []byte, key string) (start, end int, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, false
		}
		name, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return 0, 0, false
		}
		if name == key {
			end = int(dec.InputOffset())
			start, ok = end-len(value), true
		}
	}
	return start, end, ok
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

// isToken reports whether raw is a usable progress token or request id: a
// JSON string or number.
func isToken(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// swapProgressToken replaces params._meta.progressToken of a request by
// token, keeping every other byte. It returns the new params and the token
// it replaced; ok is false (params untouched) when there is no token.
func swapProgressToken(params json.RawMessage, token []byte) (out, old json.RawMessage, ok bool) {
	ms, me, ok := memberSpan(params, "_meta")
	if !ok {
		return params, nil, false
	}
	meta := params[ms:me]
	ts, te, ok := memberSpan(meta, "progressToken")
	if !ok || !isToken(meta[ts:te]) {
		return params, nil, false
	}
	old = bytes.Clone(meta[ts:te])
	meta = splice(meta, ts, te, token)
	return splice(params, ms, me, meta), old, true
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
