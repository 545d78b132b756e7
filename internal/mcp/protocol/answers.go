package protocol

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// This file is what a 2026-07-28 server adds to its answers (MCP
// 2026-07-28 basic/index, "Per-request protocol fields"; SEP-2575), on top
// of the request side in headers.go and meta.go.

// CodeUnsupportedProtocolVersion is the JSON-RPC error of a request whose
// params._meta names a revision the server does not speak; its data lists
// the ones it does (UnsupportedProtocolVersionError), and it is sent with
// HTTP 400.
const CodeUnsupportedProtocolVersion = -32022

// MetaSubscriptionID is the member of a notification's _meta that names
// the subscriptions/listen request whose stream it is sent on: that
// request's id.
const MetaSubscriptionID = MetaReservedPrefix + "subscriptionId"

// ResultTypeComplete is a 2026-07-28 result's resultType when it is the
// answer itself; "input_required" is an InputRequiredResult (MRTR).
const ResultTypeComplete = "complete"

// Removed reports whether method is one MCP 2026-07-28 removed: the
// handshake, ping (no session to keep alive), logging/setLevel (the log
// level is in _meta) and resources/(un)subscribe (subscriptions/listen
// instead). A 2026-07-28 server answers them with -32601, whatever the
// request's _meta.
func Removed(method string) bool {
	switch method {
	case "initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe":
		return true
	}
	return false
}

// RemovedError is the answer to a Removed method at 2026-07-28.
func RemovedError(method string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound,
		Message: fmt.Sprintf("method %s is not part of MCP %s; send it on a session (initialize) of an earlier revision", quote(method), Version20260728)}
}

// UnsupportedVersion is the error answering a request at revision v,
// which mcpgate does not speak: its data lists Versions under "supported",
// as the revision's UnsupportedProtocolVersionError shapes it.
func UnsupportedVersion(v string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]any{"supported": Versions(), "requested": v})
	return &jsonrpc.Error{Code: CodeUnsupportedProtocolVersion,
		Message: fmt.Sprintf("unsupported protocol version %s (supported: %s)", quote(v), SupportedList()), Data: data}
}

// CompleteResult returns a 2026-07-28 result as it goes to the client:
// with resultType "complete" unless it has a resultType already, and with
// serverInfo (an Implementation, raw) in its _meta. Every other byte is
// kept. A result that is not an object is returned unchanged.
func CompleteResult(result, serverInfo json.RawMessage) json.RawMessage {
	if len(result) == 0 || result[0] != '{' {
		return result
	}
	out := result
	if _, ok := jsonrpc.Member(out, "resultType"); !ok {
		if r, err := jsonrpc.WithMember(out, "resultType", json.RawMessage(`"`+ResultTypeComplete+`"`)); err == nil {
			out = r
		}
	}
	if r, err := WithMeta(out, MetaServerInfo, serverInfo); err == nil {
		out = r
	}
	return out
}

// requestMeta are the members of params._meta that describe a 2026-07-28
// request's client in place of a session's initialize.
var requestMeta = []string{MetaProtocolVersion, MetaClientInfo, MetaClientCapabilities, MetaLogLevel}

// WithoutRequestMeta returns params without the members of _meta that
// describe a 2026-07-28 request's client (protocol version, clientInfo,
// capabilities, log level), for a hop that carries them in its session
// instead: an upstream on an earlier revision refuses a request whose
// _meta names another revision than its session (the go-sdk server does).
// Only _meta is rewritten (an empty one stays, {}); every other byte of
// params is kept. Params that cannot be read are returned as they are.
func WithoutRequestMeta(params json.RawMessage) json.RawMessage {
	metaRaw, ok := jsonrpc.Member(params, MetaKey)
	if !ok {
		return params
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(metaRaw, &meta) != nil {
		return params
	}
	n := len(meta)
	for _, k := range requestMeta {
		delete(meta, k)
	}
	if len(meta) == n {
		return params
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return params
	}
	out, err := jsonrpc.WithMember(params, MetaKey, b)
	if err != nil {
		return params
	}
	return out
}

// ErrorStatus is the HTTP status of a 2026-07-28 answer that is the
// JSON-RPC error code (SEP-2575, as the go-sdk applies it): 404 for
// -32601, 400 for invalid params (-32602), a header mismatch (-32020), a
// missing client capability (-32021) and an unsupported revision (-32022),
// and 200 for every other error, which is an answer like a result.
func ErrorStatus(code int) int {
	switch code {
	case jsonrpc.CodeMethodNotFound:
		return http.StatusNotFound
	case jsonrpc.CodeInvalidParams, CodeHeaderMismatch, CodeMissingClientCapability, CodeUnsupportedProtocolVersion:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// CodeMissingClientCapability is the JSON-RPC error of a request that
// needs a capability its client did not declare in _meta (MCP 2026-07-28,
// MissingRequiredClientCapabilityError); sent with HTTP 400.
const CodeMissingClientCapability = -32021
