package protocol

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// This file is the request metadata of MCP 2026-07-28 over Streamable HTTP
// (basic/transports/streamable-http, "Request Metadata"): the headers that
// mirror a request's body so that intermediaries can route it unread, how
// a client builds them, and how a server checks them against the body.
// Both are pure: a message and a tool's inputSchema in, headers or a
// verdict out. Section names below are that page's unless another is named.

// Version20260728 is the stateless revision: no initialize, every request
// carries its revision and its client in params._meta (MCP 2026-07-28
// basic/index, "_meta"), and its metadata in headers. It is the first of
// Versions, and in none of HandshakeVersions.
const Version20260728 = "2026-07-28"

// CodeHeaderMismatch is the JSON-RPC error of a request whose headers do
// not match its body, or lack a required one or carry a malformed one
// (MCP 2026-07-28 "Server Validation"; schema HeaderMismatchError). It is
// sent with HTTP 400.
const CodeHeaderMismatch = -32020

// XMCPHeader is the inputSchema keyword that names the Mcp-Param-{name}
// header a tool parameter is mirrored into ("Custom Headers from Tool
// Parameters").
const XMCPHeader = "x-mcp-header"

// The Base64 sentinel of a header value that is not plain ASCII ("Value
// Encoding"): case-sensitive, exactly as written.
const (
	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// maxSafeInteger is the largest integer an IEEE 754 double holds exactly:
// an x-mcp-header integer must be within ±(2^53-1) ("Schema Extension").
const maxSafeInteger = 1<<53 - 1

// RequestError is a 2026-07-28 request refused for its headers or its
// params._meta. Every one is answered with HTTP 400 (HTTPStatus) and the
// JSON-RPC error RPCError.
type RequestError struct {
	// Code is CodeHeaderMismatch for a header, jsonrpc.CodeInvalidParams
	// for a required _meta member that is missing or malformed (MCP
	// 2026-07-28 basic/index, "Per-request protocol fields").
	Code int
	// Header is the header at fault, as the specification spells it
	// ("MCP-Protocol-Version", "Mcp-Name", "Mcp-Param-Region"); "" when
	// the fault is in the body alone.
	Header string
	// Field is the body member at fault ("params.name",
	// "params._meta.io.modelcontextprotocol/clientCapabilities"), or "".
	Field string
	// Message is what the client is told; it names the header or field.
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// HTTPStatus is the status of the HTTP response that carries the error.
func (e *RequestError) HTTPStatus() int { return http.StatusBadRequest }

// RPCError is the error as a JSON-RPC error object. HeaderMismatchError
// has no data (schema HeaderMismatchError), nor has an invalid-params one.
func (e *RequestError) RPCError() *jsonrpc.Error {
	return &jsonrpc.Error{Code: e.Code, Message: e.Message}
}

func mismatch(header, format string, args ...any) *RequestError {
	return &RequestError{Code: CodeHeaderMismatch, Header: header, Message: "Header mismatch: " + fmt.Sprintf(format, args...)}
}

// protocolVersionHeader is the version header as the specification spells
// it, for messages; HeaderProtocolVersion is its canonical key.
const protocolVersionHeader = "MCP-Protocol-Version"

// nameField returns the params member that Mcp-Name mirrors for method, or
// "" when the method has no Mcp-Name ("Standard Request Headers").
func nameField(method string) string {
	switch method {
	case "tools/call", "prompts/get":
		return "name"
	case "resources/read":
		return "uri"
	}
	return ""
}

// RequestHeaders returns the headers a 2026-07-28 request carries over
// Streamable HTTP ("Standard Request Headers", "Client Behavior"):
// MCP-Protocol-Version from params._meta, Mcp-Method, Mcp-Name for
// tools/call, prompts/get (params.name) and resources/read (params.uri),
// and, for tools/call, one Mcp-Param-{name} for each argument that
// inputSchema (the tool's, as its server declared it) annotates with
// x-mcp-header and the call gives a value other than null. Values are
// encoded as "Value Encoding" says (EncodeHeaderValue). Keys are canonical.
//
// It fails, naming the member or keyword, when the request lacks what a
// header mirrors or inputSchema's annotations break the rules of "Schema
// Extension" (a client must then not offer the tool at all).
func RequestHeaders(msg jsonrpc.Message, inputSchema json.RawMessage) (http.Header, error) {
	if msg.Method == "" {
		return nil, fmt.Errorf("request headers: the message is not a request (no method)")
	}
	if !plainASCII(msg.Method) {
		return nil, fmt.Errorf("request headers: method %q cannot be sent as an Mcp-Method header", msg.Method)
	}
	h := make(http.Header, 4)
	version, ok := metaString(msg.Params, MetaProtocolVersion)
	switch {
	case ok && plainASCII(version):
		h.Set(HeaderProtocolVersion, version)
	case ok:
		return nil, fmt.Errorf("request headers: params._meta.%s %q cannot be sent as an %s header", MetaProtocolVersion, version, protocolVersionHeader)
	case msg.IsRequest():
		return nil, fmt.Errorf("request headers: params._meta.%s is missing or not a string", MetaProtocolVersion)
	}
	h.Set(HeaderMethod, msg.Method)
	if field := nameField(msg.Method); field != "" {
		name, ok := jsonrpc.StringMember(msg.Params, field)
		if !ok {
			return nil, fmt.Errorf("request headers: %s needs params.%s, a string", msg.Method, field)
		}
		h.Set(HeaderName, EncodeHeaderValue(name))
	}
	if msg.Method != "tools/call" {
		return h, nil
	}
	bindings, err := ParamHeaders(inputSchema)
	if err != nil {
		return nil, fmt.Errorf("request headers: %w", err)
	}
	for _, b := range bindings {
		raw, present, err := argumentAt(msg.Params, b.Path)
		if err != nil {
			return nil, fmt.Errorf("request headers: %w", err)
		}
		if !present {
			continue // absent or null: the header is omitted ("Server Behavior for Custom Headers")
		}
		v, _, err := paramValue(raw)
		if err != nil {
			return nil, fmt.Errorf("request headers: argument %s: %w", b.pathString(), err)
		}
		h.Set(b.Header(), EncodeHeaderValue(v))
	}
	return h, nil
}

// CheckRequestHeaders checks the headers of a 2026-07-28 request against
// its body, as a server that reads the body must ("Server Validation"):
// MCP-Protocol-Version equals params._meta's protocolVersion, Mcp-Method
// the method, Mcp-Name (decoded) the name or URI, and each Mcp-Param-*
// that inputSchema annotates the argument (decoded; integers compared as
// numbers). A required header missing, present twice (two readers could
// take different ones) or malformed is refused too. The refusal is a
// *RequestError with CodeHeaderMismatch naming the header. Mcp-Param-*
// headers the schema does not annotate are ignored ("Server Behavior for
// Custom Headers"). Run CheckRequestMeta first: a request without its
// _meta is invalid params, not a header mismatch. A notification passes:
// the revision sets no header rules for one.
//
// An inputSchema whose annotations break "Schema Extension" is an error
// that is not a *RequestError: the tool is at fault, not the request.
func CheckRequestHeaders(h http.Header, msg jsonrpc.Message, inputSchema json.RawMessage) error {
	if !msg.IsRequest() {
		return nil // "header requirements for notification POSTs are not defined by this revision" ("Sending Messages")
	}
	version, err := singleHeader(h, HeaderProtocolVersion, protocolVersionHeader, true)
	if err != nil {
		return err
	}
	if body, _ := metaString(msg.Params, MetaProtocolVersion); version != body {
		return mismatch(protocolVersionHeader, "%s header value %s does not match body value %s", protocolVersionHeader, quote(version), quote(body))
	}
	method, err := singleHeader(h, HeaderMethod, HeaderMethod, true)
	if err != nil {
		return err
	}
	if method != msg.Method {
		return mismatch(HeaderMethod, "%s header value %s does not match body value %s", HeaderMethod, quote(method), quote(msg.Method))
	}
	if field := nameField(msg.Method); field != "" {
		raw, err := singleHeader(h, HeaderName, HeaderName, true)
		if err != nil {
			return err
		}
		if !validFieldValue(raw) {
			// A name outside plain ASCII must come Base64-encoded ("Value
			// Encoding"); the go-sdk v1.8.0 client sends it raw.
			return mismatch(HeaderName, "%s header value contains invalid characters (a name outside plain ASCII is sent as =?base64?...?=)", HeaderName)
		}
		name, err := DecodeHeaderValue(raw)
		if err != nil {
			return mismatch(HeaderName, "%s header value %s: %v", HeaderName, quote(raw), err)
		}
		body, ok := jsonrpc.StringMember(msg.Params, field)
		if !ok {
			return &RequestError{Code: jsonrpc.CodeInvalidParams, Field: "params." + field,
				Message: fmt.Sprintf("%s needs params.%s, a string", msg.Method, field)}
		}
		if name != body {
			return mismatch(HeaderName, "%s header value %s does not match body value %s", HeaderName, quote(name), quote(body))
		}
	}
	if msg.Method != "tools/call" {
		return nil
	}
	bindings, err := ParamHeaders(inputSchema)
	if err != nil {
		return fmt.Errorf("check request headers: %w", err)
	}
	for _, b := range bindings {
		if err := checkParam(h, msg.Params, b); err != nil {
			return err
		}
	}
	return nil
}

// checkParam checks the header of one annotated argument. Values are not
// repeated in messages: a parameter may hold what its server would rather
// not see echoed, and the header name says which one is wrong.
func checkParam(h http.Header, params json.RawMessage, b ParamHeader) error {
	name := b.Header()
	raw, present, err := argumentAt(params, b.Path)
	if err != nil {
		return &RequestError{Code: jsonrpc.CodeInvalidParams, Field: "params.arguments." + b.pathString(), Message: err.Error()}
	}
	value, sent, err := singleHeaderValue(h, name)
	if err != nil {
		return err
	}
	if !present {
		if sent {
			return mismatch(name, "unexpected %s header: argument %s is absent or null", name, b.pathString())
		}
		return nil
	}
	if !sent {
		return mismatch(name, "missing %s header for argument %s", name, b.pathString())
	}
	if !validFieldValue(value) {
		return mismatch(name, "%s header value contains invalid characters", name)
	}
	decoded, err := DecodeHeaderValue(value)
	if err != nil {
		return mismatch(name, "%s header value: %v", name, err)
	}
	body, isInt, err := paramValue(raw)
	if err != nil {
		return mismatch(name, "%s header present but argument %s %v", name, b.pathString(), err)
	}
	if !sameParam(decoded, body, isInt) {
		return mismatch(name, "%s header value does not match argument %s", name, b.pathString())
	}
	return nil
}

// sameParam compares a decoded header with the body's value; integers
// numerically, so that 42.0 is 42 ("Server Validation", note).
func sameParam(header, body string, isInt bool) bool {
	if !isInt {
		return header == body
	}
	f, err := strconv.ParseFloat(header, 64)
	if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > maxSafeInteger {
		return false
	}
	return strconv.FormatInt(int64(f), 10) == body
}

// CheckRequestMeta checks the per-request protocol fields of a 2026-07-28
// request (MCP 2026-07-28 basic/index, "Per-request protocol fields"):
// params._meta must hold io.modelcontextprotocol/protocolVersion, a
// string, and io.modelcontextprotocol/clientCapabilities, an object;
// io.modelcontextprotocol/clientInfo is optional, but when present it is
// an Implementation (an object with a string name and version). A request
// missing a required one is malformed: a *RequestError with
// jsonrpc.CodeInvalidParams (-32602) and HTTP 400 naming the member.
// Notifications carry no such fields and pass. Whether mcpgate speaks the
// version is the caller's to answer (UnsupportedProtocolVersion, -32022).
func CheckRequestMeta(msg jsonrpc.Message) error {
	if !msg.IsRequest() {
		return nil
	}
	invalid := func(key, format string, args ...any) error {
		return &RequestError{Code: jsonrpc.CodeInvalidParams, Field: "params._meta." + key,
			Message: fmt.Sprintf("params._meta.%s ", key) + fmt.Sprintf(format, args...)}
	}
	if _, ok := metaString(msg.Params, MetaProtocolVersion); !ok {
		return invalid(MetaProtocolVersion, "is required: a string, the request's protocol version")
	}
	if v, ok := Meta(msg.Params, MetaClientCapabilities); !ok || v[0] != '{' {
		return invalid(MetaClientCapabilities, "is required: an object, the client's capabilities for this request")
	}
	if v, ok := Meta(msg.Params, MetaClientInfo); ok {
		_, nameOK := jsonrpc.StringMember(v, "name")
		_, versionOK := jsonrpc.StringMember(v, "version")
		if !nameOK || !versionOK {
			return invalid(MetaClientInfo, "must be an object with a string name and version")
		}
	}
	return nil
}

// metaString returns member key of params._meta when it is a string.
func metaString(params json.RawMessage, key string) (string, bool) {
	meta, ok := jsonrpc.Member(params, MetaKey)
	if !ok {
		return "", false
	}
	return jsonrpc.StringMember(meta, key)
}

// singleHeader returns the one value of header key, refusing one sent
// twice, and one missing when required. spelled is the name in messages.
func singleHeader(h http.Header, key, spelled string, required bool) (string, error) {
	v, present, err := singleHeaderValue(h, key)
	if err == nil && !present && required {
		return "", mismatch(spelled, "missing required %s header", spelled)
	}
	return v, err
}

func singleHeaderValue(h http.Header, key string) (value string, present bool, err error) {
	vals := h.Values(key)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		return vals[0], true, nil
	}
	return "", true, mismatch(key, "%s header appears %d times", key, len(vals))
}

// quote puts a value in a message as the specification's example does
// ('foo'), or Go-quoted when it holds anything but plain printable ASCII,
// and cut to a length a message can carry.
func quote(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max] + "…"
	}
	if plainASCII(s) && !strings.ContainsRune(s, '\'') {
		return "'" + s + "'"
	}
	return strconv.QuoteToASCII(s)
}

// plainASCII reports whether every byte of s is printable ASCII or a
// space (0x20-0x7E).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validFieldValue reports whether v is made only of what an HTTP field
// value may hold: visible ASCII, space and tab ("Value Encoding", RFC
// 9110 field values). Anything else must have come Base64-encoded.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\t' && (c < 0x20 || c > 0x7e) {
			return false
		}
	}
	return true
}

// EncodeHeaderValue returns s as an Mcp-Name or Mcp-Param-{name} header
// value ("Value Encoding"): s itself when it is plain ASCII, else the
// Base64 of its UTF-8 between the sentinels =?base64? and ?=. Not plain:
// a byte outside 0x20-0x7E (non-ASCII, control characters), a leading or
// trailing space, or s already shaped like the sentinel.
func EncodeHeaderValue(s string) string {
	if plainASCII(s) && !strings.HasPrefix(s, " ") && !strings.HasSuffix(s, " ") && !sentinel(s) {
		return s
	}
	return base64Prefix + base64.StdEncoding.EncodeToString([]byte(s)) + base64Suffix
}

// DecodeHeaderValue reverses EncodeHeaderValue: a value between the
// sentinels is decoded from Base64, any other is itself. Malformed Base64
// between the sentinels is an error.
func DecodeHeaderValue(v string) (string, error) {
	if !sentinel(v) {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(v[len(base64Prefix) : len(v)-len(base64Suffix)])
	if err != nil {
		return "", fmt.Errorf("invalid Base64 between %s and %s", base64Prefix, base64Suffix)
	}
	return string(b), nil
}

func sentinel(s string) bool {
	return len(s) >= len(base64Prefix)+len(base64Suffix) && strings.HasPrefix(s, base64Prefix) && strings.HasSuffix(s, base64Suffix)
}

// paramValue converts an argument to its header string ("Value
// Encoding", type conversion): a string as it is, a boolean as true or
// false, an integer (within ±(2^53-1), 42.0 counting as 42) in decimal.
// isInt says the value was an integer. Anything else cannot be a header.
func paramValue(raw json.RawMessage) (s string, isInt bool, err error) {
	switch {
	case len(raw) == 0:
		return "", false, fmt.Errorf("is empty")
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, fmt.Errorf("is not a valid string")
		}
		return s, false, nil
	case string(raw) == "true", string(raw) == "false":
		return string(raw), false, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > maxSafeInteger {
			return "", false, fmt.Errorf("is a number but not an integer within ±(2^53-1)")
		}
		return strconv.FormatInt(int64(f), 10), true, nil
	}
	return "", false, fmt.Errorf("is not a string, integer or boolean")
}

// ParamHeader is one parameter a tool mirrors into a header: the chain of
// properties keys from the schema root to it, and its x-mcp-header value.
type ParamHeader struct {
	Path []string
	Name string
}

// Header is the canonical key of the header, Mcp-Param-{Name}.
func (b ParamHeader) Header() string { return http.CanonicalHeaderKey(HeaderParamPrefix + b.Name) }

func (b ParamHeader) pathString() string { return strings.Join(b.Path, ".") }

// ParamHeaders returns the parameters inputSchema mirrors into headers,
// ordered by path, after checking every x-mcp-header annotation against
// "Schema Extension": a non-empty HTTP token, case-insensitively unique,
// on a property of type string, integer or boolean, reachable from the
// root through properties keys only (not items, oneOf, $ref, $defs…).
// An empty or null schema mirrors nothing. The error names the property.
func ParamHeaders(inputSchema json.RawMessage) ([]ParamHeader, error) {
	if len(inputSchema) == 0 || string(inputSchema) == "null" {
		return nil, nil
	}
	if err := jsonrpc.CheckKeys(inputSchema); err != nil {
		return nil, fmt.Errorf("inputSchema: %w", err)
	}
	var root any
	if err := json.Unmarshal(inputSchema, &root); err != nil {
		return nil, fmt.Errorf("inputSchema: %w", err)
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("inputSchema is not an object")
	}
	if _, ok := obj[XMCPHeader]; ok {
		return nil, fmt.Errorf("inputSchema: %s on the schema root, which is no property", XMCPHeader)
	}
	w := schemaWalk{seen: map[string]string{}}
	if err := w.properties(obj, nil); err != nil {
		return nil, fmt.Errorf("inputSchema: %w", err)
	}
	return w.out, nil
}

type schemaWalk struct {
	out  []ParamHeader
	seen map[string]string // lower-case name → the path that has it
}

// properties walks the properties of a schema reached through properties
// keys only, where annotations may stand, and every other subschema of
// it, where none may.
func (w *schemaWalk) properties(schema map[string]any, path []string) error {
	for _, kw := range sortedKeys(schema) {
		if kw != "properties" {
			if err := unreachable(kw, schema[kw], joinPath(path, kw)); err != nil {
				return err
			}
		}
	}
	props, ok := schema["properties"].(map[string]any)
	if !ok {
		return nil
	}
	for _, n := range sortedKeys(props) {
		sub, ok := props[n].(map[string]any)
		if !ok {
			continue // a boolean schema has no annotation
		}
		p := append(slices.Clip(path), n)
		if raw, ok := sub[XMCPHeader]; ok {
			if err := w.annotation(sub, raw, p); err != nil {
				return err
			}
		}
		if err := w.properties(sub, p); err != nil {
			return err
		}
	}
	return nil
}

func (w *schemaWalk) annotation(sub map[string]any, raw any, path []string) error {
	where := strings.Join(path, ".")
	name, ok := raw.(string)
	if !ok || name == "" {
		return fmt.Errorf("property %s: %s must be a non-empty string", where, XMCPHeader)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("property %s: %s %q is not an HTTP token (byte %q)", where, XMCPHeader, name, name[i])
		}
	}
	if other, dup := w.seen[strings.ToLower(name)]; dup {
		return fmt.Errorf("property %s: %s %q is also on property %s (names are compared case-insensitively)", where, XMCPHeader, name, other)
	}
	switch t, _ := sub["type"].(string); t {
	case "string", "integer", "boolean":
	default:
		return fmt.Errorf("property %s: %s is only for type string, integer or boolean, not %v", where, XMCPHeader, sub["type"])
	}
	w.seen[strings.ToLower(name)] = where
	w.out = append(w.out, ParamHeader{Path: path, Name: name})
	return nil
}

// Keywords whose values are subschemas (JSON Schema 2020-12 and draft-07):
// one, a list, or a map of them. Others (const, enum, default, examples…)
// hold data, in which an "x-mcp-header" member is no annotation.
var (
	oneSubschema  = []string{"items", "additionalItems", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "unevaluatedItems", "unevaluatedProperties"}
	listSubschema = []string{"allOf", "anyOf", "oneOf", "prefixItems", "items"}
	mapSubschema  = []string{"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)

// unreachable refuses an x-mcp-header anywhere in the subschemas of
// keyword kw's value v: only properties chains reach a mirrored parameter
// ("Schema Extension"; an annotation elsewhere makes the tool invalid).
func unreachable(kw string, v any, where string) error {
	var subs []any
	switch x := v.(type) {
	case map[string]any:
		if slices.Contains(mapSubschema, kw) {
			for _, k := range sortedKeys(x) {
				subs = append(subs, x[k])
			}
		} else if slices.Contains(oneSubschema, kw) {
			subs = []any{x}
		}
	case []any:
		if slices.Contains(listSubschema, kw) {
			subs = x
		}
	}
	for _, s := range subs {
		schema, ok := s.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := schema[XMCPHeader]; ok {
			return fmt.Errorf("%s under %s: an %s is allowed only on properties reached through properties keys alone", XMCPHeader, where, XMCPHeader)
		}
		for _, k := range sortedKeys(schema) {
			if err := unreachable(k, schema[k], where+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

// sortedKeys returns the keys of m in order, so that the first fault
// reported is the same on every run.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinPath(path []string, kw string) string {
	if len(path) == 0 {
		return kw
	}
	return strings.Join(path, ".") + "." + kw
}

// isTokenChar reports whether c is an RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// argumentAt returns the argument at path in params.arguments; present is
// false when it, or an object on the way to it, is absent, or it is null.
// A repeated key on the way is an error: the header would mirror one
// reading of the body while the server may act on the other.
func argumentAt(params json.RawMessage, path []string) (raw json.RawMessage, present bool, err error) {
	cur, ok, err := member(params, "arguments", "arguments")
	for i := 0; err == nil && ok && i < len(path); i++ {
		if len(cur) == 0 || cur[0] != '{' {
			return nil, false, nil
		}
		cur, ok, err = member(cur, path[i], "arguments."+strings.Join(path[:i+1], "."))
	}
	if err != nil || !ok || string(cur) == "null" {
		return nil, false, err
	}
	return cur, true, nil
}

func member(obj json.RawMessage, key, where string) (json.RawMessage, bool, error) {
	if len(obj) == 0 {
		return nil, false, nil
	}
	start, end, err := jsonrpc.MemberSpan(obj, key)
	if err != nil {
		return nil, false, fmt.Errorf("params.%s: %w", where, err)
	}
	if start < 0 {
		return nil, false, nil
	}
	return obj[start:end], true, nil
}
