package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is mcpgate's one raw-JSON layer: the scanner that refuses
// duplicate object keys, and the helpers that read and replace one member
// of an object without re-encoding the rest. Every other package reads and
// rewrites raw members through these, so all of mcpgate agrees on what a
// member is.
//
// Why duplicates are refused, at any depth: RFC 8259 leaves the meaning of
// a repeated name to the reader, and readers disagree — encoding/json and
// most servers take the last, a streaming reader may take the first. A
// gateway that routes or checks on one reading while the upstream executes
// the other runs a tool other than the one it routed (tools/call with two
// "name"s). Refusing only where mcpgate reads today (the envelope, params,
// params.name, params.ref, params._meta) would leave every member read
// tomorrow (per-tool policy on arguments, a 2026-07-28 _meta key) to be
// remembered; refusing at any depth costs one linear pass and needs no such
// list. A legitimate client never sends a duplicate key.

// ErrDuplicateKey marks a JSON object that has a key twice.
var ErrDuplicateKey = errors.New("duplicate object key")

// DuplicateKeyError says which key repeats, and where.
type DuplicateKeyError struct {
	// Key is the repeated key, unescaped.
	Key string
	// Path is where the object holding it sits, as members and indexes
	// from the top ("params.arguments", "[2].params"); "" is the top.
	Path string
}

func (e *DuplicateKeyError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("duplicate key %q", e.Key)
	}
	return fmt.Sprintf("duplicate key %q in %s", e.Key, e.Path)
}

// Is makes errors.Is(err, ErrDuplicateKey) true.
func (e *DuplicateKeyError) Is(target error) bool { return target == ErrDuplicateKey }

// smallObject is how many keys an object may have before duplicates are
// looked up in a map instead of by comparing with each earlier key.
const smallObject = 16

// CheckKeys returns a *DuplicateKeyError when a JSON object anywhere in
// data has the same key twice (compared after unescaping, as a reader
// sees them), else nil. data must be valid JSON (json.Valid); on invalid
// input the answer is unspecified but CheckKeys never panics. It takes one
// linear pass and, on a message of usual shape, does not allocate.
func CheckKeys(data []byte) error {
	// One loop over an explicit stack rather than recursion, so that the
	// buffers below stay on the stack.
	var keyBuf [64]keySpan
	var stackBuf [16]container
	keys, stack := keyBuf[:0], stackBuf[:0]
	i := skipSpace(data, 0)
	for i < len(data) {
		// A value starts at i.
		switch data[i] {
		case '{', '[':
			stack = append(stack, container{object: data[i] == '{', first: len(keys)})
			i = skipSpace(data, i+1)
			if i < len(data) && (data[i] == '}' || data[i] == ']') {
				stack, i = stack[:len(stack)-1], i+1 // empty
				break
			}
			if stack[len(stack)-1].object {
				var err error
				if i, keys, err = nextKey(data, i, keys, stack); err != nil {
					return err
				}
			}
			continue // its first value starts at i
		case '"':
			i, _ = stringEnd(data, i)
		default:
			i = scalarEnd(data, i)
			if i < len(data) && (data[i] == '{' || data[i] == '[' || data[i] == '"') {
				return nil // not JSON; never loop
			}
		}
		// A value ended before i: go on in the containers it closes.
		for {
			if len(stack) == 0 {
				return nil
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return nil
			}
			top := &stack[len(stack)-1]
			if data[i] == ',' {
				i = skipSpace(data, i+1)
				if top.object {
					var err error
					if i, keys, err = nextKey(data, i, keys, stack); err != nil {
						return err
					}
				} else {
					top.index++
				}
				break
			}
			keys = keys[:top.first]
			stack = stack[:len(stack)-1]
			i++ // '}' or ']'
		}
	}
	return nil
}

// container is an object or array open around the value being read.
type container struct {
	object bool
	first  int                 // its first key in the keys being kept
	seen   map[string]struct{} // its keys, once it has more than smallObject
	key    keySpan             // the member being read, in an object
	index  int                 // the element being read, in an array
}

// keySpan is a key, between its quotes, in the data being read.
type keySpan struct {
	start, end int
	escaped    bool
}

// text returns the key as a reader sees it.
func (k keySpan) text(data []byte) string {
	if !k.escaped {
		return string(data[k.start:k.end])
	}
	var s string
	if json.Unmarshal(data[k.start-1:k.end+1], &s) != nil {
		return string(data[k.start:k.end])
	}
	return s
}

func (k keySpan) equal(data []byte, o keySpan) bool {
	if !k.escaped && !o.escaped {
		return bytes.Equal(data[k.start:k.end], data[o.start:o.end])
	}
	return k.text(data) == o.text(data)
}

// nextKey reads the key starting at data[i] of the innermost object of
// stack, refusing one it has already, and returns where its value starts.
func nextKey(data []byte, i int, keys []keySpan, stack []container) (int, []keySpan, error) {
	top := &stack[len(stack)-1]
	if i >= len(data) || data[i] != '"' {
		return len(data), keys, nil // not JSON: stop
	}
	end, escaped := stringEnd(data, i)
	if end > len(data) {
		return len(data), keys, nil
	}
	k := keySpan{start: i + 1, end: end - 1, escaped: escaped}
	dup := false
	switch n := len(keys) - top.first; {
	case top.seen != nil:
		_, dup = top.seen[k.text(data)]
		top.seen[k.text(data)] = struct{}{}
	case n < smallObject:
		for _, o := range keys[top.first:] {
			if o.equal(data, k) {
				dup = true
				break
			}
		}
		keys = append(keys, k)
	default:
		top.seen = make(map[string]struct{}, 2*n)
		for _, o := range keys[top.first:] {
			top.seen[o.text(data)] = struct{}{}
		}
		_, dup = top.seen[k.text(data)]
		top.seen[k.text(data)] = struct{}{}
	}
	if dup {
		return i, keys, &DuplicateKeyError{Key: k.text(data), Path: path(data, stack[:len(stack)-1])}
	}
	top.key = k
	i = skipSpace(data, end)
	if i < len(data) && data[i] == ':' {
		i = skipSpace(data, i+1)
	}
	return i, keys, nil
}

// path names where the innermost of the containers in stack sits, for an
// error.
func path(data []byte, outer []container) string {
	var b strings.Builder
	for _, c := range outer {
		if !c.object {
			b.WriteString("[" + strconv.Itoa(c.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(c.key.text(data))
	}
	return b.String()
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at data[i]
// (a '"'), and whether it must be decoded to be compared: it holds a
// backslash escape, or a byte beyond ASCII (a reader replaces invalid
// UTF-8 by U+FFFD, so two different invalid sequences read the same).
func stringEnd(data []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			return j + 1, escaped
		case c >= 0x80:
			escaped = true
		}
	}
	return len(data) + 1, escaped
}

// scalarEnd returns the index just past the number, true, false or null
// starting at data[i].
func scalarEnd(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// valueEnd returns the index just past the value starting at data[i], or an
// error when there is none.
func valueEnd(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, errors.New("unexpected end of JSON")
	}
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		if end > len(data) {
			return 0, errors.New("unterminated string")
		}
		return end, nil
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := stringEnd(data, j)
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated object or array")
	}
	end := scalarEnd(data, i)
	if end == i {
		return 0, fmt.Errorf("unexpected %q", data[i])
	}
	return end, nil
}

// MemberSpan returns the byte span of the value of member key in the JSON
// object obj; start is -1 when obj has no such member. It fails when obj is
// not an object, or has key twice (see CheckKeys for why one reading of a
// repeated key is never chosen). Escaped keys are compared unescaped.
func MemberSpan(obj []byte, key string) (start, end int, err error) {
	start, end = -1, -1
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return -1, -1, errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		kEnd, escaped := stringEnd(obj, i)
		if kEnd > len(obj) {
			return -1, -1, errors.New("unterminated key")
		}
		k := obj[i+1 : kEnd-1]
		if escaped {
			var s string
			if json.Unmarshal(obj[i:kEnd], &s) != nil {
				return -1, -1, errors.New("malformed key")
			}
			k = []byte(s)
		}
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return -1, -1, errors.New("missing ':' after a key")
		}
		vStart := skipSpace(obj, i+1)
		vEnd, err := valueEnd(obj, vStart)
		if err != nil {
			return -1, -1, err
		}
		if string(k) == key {
			if start >= 0 {
				return -1, -1, &DuplicateKeyError{Key: key}
			}
			start, end = vStart, vEnd
		}
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	if i >= len(obj) || obj[i] != '}' {
		return -1, -1, errors.New("malformed object")
	}
	return start, end, nil
}

// Member returns the raw value of member key of the JSON object obj; ok is
// false when obj has no such member or cannot be read (see MemberSpan).
func Member(obj []byte, key string) (value json.RawMessage, ok bool) {
	start, end, err := MemberSpan(obj, key)
	if err != nil || start < 0 {
		return nil, false
	}
	return json.RawMessage(obj[start:end]), true
}

// StringMember returns member key of the JSON object obj when it is a
// string.
func StringMember(obj []byte, key string) (string, bool) {
	raw, ok := Member(obj, key)
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if i := bytes.IndexByte(raw, '\\'); i < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// WithMember returns a copy of the JSON object obj with member key's value
// replaced by value (raw JSON), or added at the end when obj has none.
// Every other byte is kept as it was, so unknown members and key order
// survive.
func WithMember(obj []byte, key string, value json.RawMessage) (json.RawMessage, error) {
	start, end, err := MemberSpan(obj, key)
	if err != nil {
		return nil, fmt.Errorf("set %q: %w", key, err)
	}
	if start >= 0 {
		out := make([]byte, 0, len(obj)-(end-start)+len(value))
		out = append(out, obj[:start]...)
		out = append(out, value...)
		return append(out, obj[end:]...), nil
	}
	trimmed := bytes.TrimRight(obj, " \t\r\n")
	closing := len(trimmed) - 1 // MemberSpan checked it is '}'
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(trimmed)+len(k)+len(value)+2)
	out = append(out, trimmed[:closing]...)
	if !bytes.Equal(bytes.TrimSpace(trimmed[:closing]), []byte("{")) {
		out = append(out, ',')
	}
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, value...)
	return append(out, '}'), nil
}

// WithStringMember is WithMember with a string value.
func WithStringMember(obj []byte, key, value string) (json.RawMessage, error) {
	v, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	return WithMember(obj, key, v)
}
