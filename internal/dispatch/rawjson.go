package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// stringField returns the top-level string field key of a JSON object.
func stringField(obj json.RawMessage, key string) (string, bool) {
	start, end, err := fieldSpan(obj, key)
	if err != nil || start < 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(obj[start:end], &s) != nil {
		return "", false
	}
	return s, true
}

// withStringField returns obj with the top-level field key set to value.
// Every other byte is kept as it was, so unknown fields and key order reach
// the client untouched; a missing key is added at the end.
func withStringField(obj json.RawMessage, key, value string) (json.RawMessage, error) {
	start, end, err := fieldSpan(obj, key)
	if err != nil {
		return nil, err
	}
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	if start >= 0 {
		out := make([]byte, 0, len(obj)-(end-start)+len(v))
		out = append(out, obj[:start]...)
		out = append(out, v...)
		return append(out, obj[end:]...), nil
	}
	trimmed := bytes.TrimRight(obj, " \t\r\n")
	closing := len(trimmed) - 1
	k, _ := json.Marshal(key)
	out := append([]byte{}, trimmed[:closing]...)
	if !bytes.Equal(bytes.TrimSpace(trimmed[:closing]), []byte("{")) {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, v...)
	return append(out, '}'), nil
}

// fieldSpan finds the byte span of the value of top-level field key in a
// JSON object; start is -1 when the object has no such field.
func fieldSpan(obj json.RawMessage, key string) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return 0, 0, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return 0, 0, err
		}
		var raw json.RawMessage
		before := dec.InputOffset()
		if err := dec.Decode(&raw); err != nil {
			return 0, 0, err
		}
		after := dec.InputOffset()
		if k == key {
			// InputOffset before Decode sits right after the key; the value
			// starts after the colon and any white space.
			i := int(before)
			for i < int(after) && (obj[i] == ':' || obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\r' || obj[i] == '\n') {
				i++
			}
			return i, int(after), nil
		}
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return 0, 0, err
	}
	return -1, -1, nil
}

// objectField returns the raw top-level field key of a JSON object.
func objectField(obj json.RawMessage, key string) (json.RawMessage, bool) {
	start, end, err := fieldSpan(obj, key)
	if err != nil || start < 0 {
		return nil, false
	}
	return obj[start:end], true
}
