package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// MetaKey is the member of a request's params that carries its metadata:
// params._meta (MCP basic, _meta).
const MetaKey = "_meta"

// Members of params._meta that mcpgate reads or rewrites.
const (
	// MetaProgressToken asks for progress notifications under this token
	// (MCP basic/utilities/progress). Each hop has its own: mcpgate swaps a
	// client's for one unique on the upstream session, and back.
	MetaProgressToken = "progressToken"
	// MetaReservedPrefix starts the keys the MCP specification reserves for
	// itself (MCP basic, _meta: the io.modelcontextprotocol/ prefix).
	MetaReservedPrefix = "io.modelcontextprotocol/"
	// MetaProtocolVersion, MetaClientInfo, MetaClientCapabilities and
	// MetaLogLevel are what a 2026-07-28 request carries in place of a
	// session's initialize: every request describes its client.
	MetaProtocolVersion    = MetaReservedPrefix + "protocolVersion"
	MetaClientInfo         = MetaReservedPrefix + "clientInfo"
	MetaClientCapabilities = MetaReservedPrefix + "clientCapabilities"
	MetaLogLevel           = MetaReservedPrefix + "logLevel"
)

// Meta returns member key of params._meta, raw; ok is false when params
// has no _meta object or it has no such member, or either cannot be read
// (jsonrpc.MemberSpan: a repeated key is never read).
func Meta(params json.RawMessage, key string) (value json.RawMessage, ok bool) {
	meta, ok := jsonrpc.Member(params, MetaKey)
	if !ok || len(meta) == 0 || meta[0] != '{' {
		return nil, false
	}
	return jsonrpc.Member(meta, key)
}

// WithMeta returns a copy of params with member key of params._meta set
// to value (raw JSON), adding _meta when params has none. Every other
// byte is kept as it was. Empty params are read as {}.
func WithMeta(params json.RawMessage, key string, value json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage("{}")
	}
	meta, ok := jsonrpc.Member(params, MetaKey)
	if !ok {
		meta = json.RawMessage("{}")
	} else if len(meta) == 0 || meta[0] != '{' {
		return nil, fmt.Errorf("set params._meta.%s: _meta is not an object", key)
	}
	meta, err := jsonrpc.WithMember(meta, key, value)
	if err != nil {
		return nil, fmt.Errorf("set params._meta.%s: %w", key, err)
	}
	out, err := jsonrpc.WithMember(params, MetaKey, meta)
	if err != nil {
		return nil, fmt.Errorf("set params._meta.%s: %w", key, err)
	}
	return out, nil
}

// IsToken reports whether raw is usable as a progress token or a request
// id: a JSON string or number (MCP basic: "a string or integer").
func IsToken(raw []byte) bool {
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

// SwapProgressToken replaces params._meta.progressToken of a request by
// token, keeping every other byte. It returns the new params and the token
// it replaced; ok is false, and params are returned untouched, when the
// request asks for no progress (no token, or one that is not a string or
// number).
func SwapProgressToken(params json.RawMessage, token json.RawMessage) (out, old json.RawMessage, ok bool) {
	old, ok = Meta(params, MetaProgressToken)
	if !ok || !IsToken(old) {
		return params, nil, false
	}
	out, err := WithMeta(params, MetaProgressToken, token)
	if err != nil {
		return params, nil, false
	}
	return out, bytes.Clone(old), true
}
