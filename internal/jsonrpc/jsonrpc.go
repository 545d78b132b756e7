// Package jsonrpc is mcpgate's one codec for JSON-RPC 2.0 messages.
//
// Messages are kept raw: ids, params, results and error data stay
// json.RawMessage, so whatever an upstream or a client sends — unknown fields,
// unknown content types — is forwarded byte for byte. Only the envelope is
// interpreted.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version is the only JSON-RPC version there is.
const Version = "2.0"

// Standard and MCP error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeUpstreamError is mcpgate's code for an upstream that is down, slow
	// or failing (in the implementation-defined server error range).
	CodeUpstreamError = -32000
	// CodeUnauthorized is mcpgate's code for a request without valid client
	// credentials, where the transport cannot say 401 itself.
	CodeUnauthorized = -32001
	// CodeResourceNotFound is MCP's code for an unknown resource URI.
	CodeResourceNotFound = -32002
)

// Message is one JSON-RPC message: a request (Method and ID), a notification
// (Method, no ID) or a response (ID with Result or Error).
type Message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// Error is a JSON-RPC error object.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsRequest reports whether m is a request: a method and an id.
func (m *Message) IsRequest() bool { return m.Method != "" && len(m.ID) > 0 }

// IsNotification reports whether m is a notification: a method, no id.
func (m *Message) IsNotification() bool { return m.Method != "" && len(m.ID) == 0 }

// IsResponse reports whether m is a response: no method, an id, and a result
// or an error.
func (m *Message) IsResponse() bool {
	return m.Method == "" && len(m.ID) > 0 && (m.Result != nil || m.Error != nil)
}

// NewRequest returns a request with the given id (raw JSON) and params,
// which are marshalled unless they are a json.RawMessage already.
func NewRequest(id json.RawMessage, method string, params any) (Message, error) {
	p, err := rawParams(params)
	return Message{JSONRPC: Version, ID: id, Method: method, Params: p}, err
}

// NewNotification returns a notification.
func NewNotification(method string, params any) (Message, error) {
	p, err := rawParams(params)
	return Message{JSONRPC: Version, Method: method, Params: p}, err
}

func rawParams(params any) (json.RawMessage, error) {
	switch p := params.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return p, nil
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("marshal params: %w", err)
		}
		return b, nil
	}
}

// NewResult returns the response to id carrying result, which is marshalled
// unless it is a json.RawMessage already.
func NewResult(id json.RawMessage, result any) (Message, error) {
	r, err := rawParams(result)
	if err != nil {
		return Message{}, err
	}
	if r == nil {
		r = json.RawMessage("{}")
	}
	return Message{JSONRPC: Version, ID: id, Result: r}, nil
}

// NewError returns the error response to id. A nil id (the request could not
// be read far enough to know it) is sent as null.
func NewError(id json.RawMessage, e *Error) Message {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return Message{JSONRPC: Version, ID: id, Error: e}
}

// Decode reads one message or a batch. batch reports whether the input was
// an array. A malformed input is a *Error with CodeParseError; a well-formed
// one that is not a JSON-RPC message is CodeInvalidRequest, and so is one
// with a duplicate object key anywhere in it, named in the message (see
// CheckKeys). An empty batch is invalid, as the specification says.
//
// Decode and DecodeMessage are the one parse path of every message mcpgate
// receives, from clients on every front door and from upstreams.
func Decode(data []byte) (msgs []Message, batch bool, err error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, false, Errorf(CodeParseError, "parse error: empty body")
	}
	if data[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, true, Errorf(CodeParseError, "parse error: %v", err)
		}
		if len(raws) == 0 {
			return nil, true, Errorf(CodeInvalidRequest, "invalid request: empty batch")
		}
		msgs = make([]Message, len(raws))
		for i, raw := range raws {
			if msgs[i], err = decodeOne(raw); err != nil {
				return nil, true, err
			}
		}
		return msgs, true, nil
	}
	m, err := decodeOne(data)
	if err != nil {
		return nil, false, err
	}
	return []Message{m}, false, nil
}

// DecodeMessage reads exactly one message (no batch).
func DecodeMessage(data []byte) (Message, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		return Message{}, Errorf(CodeInvalidRequest, "invalid request: a batch is not allowed here")
	}
	return decodeOne(data)
}

// decodeOne reads one message: its envelope, then its keys.
func decodeOne(data []byte) (Message, error) {
	m, err := decodeEnvelope(data)
	if err != nil {
		return Message{}, err
	}
	if err := CheckKeys(data); err != nil {
		return Message{}, Errorf(CodeInvalidRequest, "invalid request: %v", err)
	}
	return m, nil
}

// decodeEnvelope reads one message and checks its envelope.
func decodeEnvelope(data []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Message{}, Errorf(CodeInvalidRequest, "invalid request: field %q has the wrong type", typeErr.Field)
		}
		return Message{}, Errorf(CodeParseError, "parse error: %v", err)
	}
	if m.JSONRPC != Version {
		return Message{}, Errorf(CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	if len(m.ID) > 0 {
		switch m.ID[0] {
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		case 'n': // null: only in error responses
			if m.Method != "" {
				return Message{}, Errorf(CodeInvalidRequest, "invalid request: id must be a string or a number")
			}
		default:
			return Message{}, Errorf(CodeInvalidRequest, "invalid request: id must be a string or a number")
		}
	}
	switch {
	case m.Method != "" && (m.Result != nil || m.Error != nil):
		return Message{}, Errorf(CodeInvalidRequest, "invalid request: a message has a method or a result, not both")
	case m.Method == "" && len(m.ID) == 0:
		return Message{}, Errorf(CodeInvalidRequest, `invalid request: "method" is missing`)
	case m.Method == "" && m.Result == nil && m.Error == nil:
		return Message{}, Errorf(CodeInvalidRequest, `invalid request: "method" is missing`)
	}
	if len(m.Params) > 0 && m.Params[0] != '{' && m.Params[0] != '[' {
		return Message{}, Errorf(CodeInvalidRequest, "invalid request: params must be an object or an array")
	}
	return m, nil
}

// Encode returns the message's JSON. Raw fields (id, params, result, error
// data) are written exactly as they are, not re-encoded: what an upstream
// sent reaches the client byte for byte (json.Marshal would compact them and
// escape <, > and &).
func Encode(m Message) ([]byte, error) {
	return AppendEncode(make([]byte, 0, 64+len(m.Params)+len(m.Result)), m)
}

// EncodeBatch returns the JSON array of msgs.
func EncodeBatch(msgs []Message) ([]byte, error) {
	b := []byte{'['}
	var err error
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = AppendEncode(b, m); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// AppendEncode appends the message's JSON to b, as Encode writes it.
func AppendEncode(b []byte, m Message) ([]byte, error) {
	for _, raw := range []json.RawMessage{m.ID, m.Params, m.Result} {
		if len(raw) > 0 && !json.Valid(raw) {
			return nil, fmt.Errorf("encode message: a raw field is not valid JSON")
		}
	}
	b = append(b, `{"jsonrpc":"2.0"`...)
	if len(m.ID) > 0 {
		b = append(append(b, `,"id":`...), m.ID...)
	}
	if m.Method != "" {
		b = appendString(append(b, `,"method":`...), m.Method)
	}
	if len(m.Params) > 0 {
		b = append(append(b, `,"params":`...), m.Params...)
	}
	if m.Result != nil {
		b = append(append(b, `,"result":`...), m.Result...)
	}
	if m.Error != nil {
		b = strconv.AppendInt(append(b, `,"error":{"code":`...), int64(m.Error.Code), 10)
		b = appendString(append(b, `,"message":`...), m.Error.Message)
		if len(m.Error.Data) > 0 {
			if !json.Valid(m.Error.Data) {
				return nil, fmt.Errorf("encode message: error data is not valid JSON")
			}
			b = append(append(b, `,"data":`...), m.Error.Data...)
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string, escaping only what JSON requires.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
