package passthrough

import (
	"net/http"
	"strings"
)

// Policy applies one set of Settings. It is immutable and safe for
// concurrent use; build it once at start-up with NewPolicy.
type Policy struct {
	settings      Settings
	proxyUser     string // lower-case PROXY_USER_HEADER
	clientAuth    string // lower-case AUTH_HEADER_NAME when mcpgate authenticates clients with it, else ""
	clientAuthKey string // the same name as a canonical http.Header key, else ""
}

// NewPolicy returns the policy for s.
func NewPolicy(s Settings) *Policy {
	s.DefaultPassthroughHeaders = append([]string(nil), s.DefaultPassthroughHeaders...)
	p := &Policy{settings: s, proxyUser: lowerASCII(s.ProxyUserHeader)}
	if s.AuthenticatesClients && s.AuthHeaderName != "" {
		p.clientAuth = lowerASCII(s.AuthHeaderName)
		p.clientAuthKey = http.CanonicalHeaderKey(s.AuthHeaderName)
	}
	return p
}

// Settings returns the settings the policy was built from.
func (p *Policy) Settings() Settings {
	s := p.settings
	s.DefaultPassthroughHeaders = append([]string(nil), s.DefaultPassthroughHeaders...)
	return s
}

// consumesAuthorization reports whether the client's Authorization header is
// mcpgate's own credential, which the auth_type none rule must then not
// forward (spec §2.2, deviation D4).
func (p *Policy) consumesAuthorization() bool { return p.clientAuth == "authorization" }

// NeverForwarded returns why a header name may never be copied from a
// client to an upstream, or 0 when it may be (spec §2.3). The answer is the
// same whatever the case of name.
func (p *Policy) NeverForwarded(name string) Reason {
	lower := lowerASCII(name)
	r := fixedNeverForwarded(lower)
	if r == ReasonProtocolHeader || r == ReasonMCPHeader {
		return r
	}
	if p.clientAuth != "" && lower == p.clientAuth {
		return ReasonClientCredential
	}
	if lower == p.proxyUser {
		return ReasonInternalHeader
	}
	return r
}

// fixedNeverForwarded is the part of the never-forwarded set that no
// setting changes (spec §2.3), for a lower-case name.
func fixedNeverForwarded(lower string) Reason {
	switch lower {
	// Headers of the HTTP connection or of message framing.
	case "content-type", "content-length", "host", "transfer-encoding",
		"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade":
		return ReasonProtocolHeader
	}
	if IsMCPHopHeader(lower) {
		return ReasonMCPHeader
	}
	// The WebSocket handshake (Sec-WebSocket-Key, -Version, -Extensions,
	// -Protocol, -Accept) belongs to the client's connection, like Upgrade and
	// Connection (spec §2.3, D11); and a browser, which cannot set
	// Authorization on an upgrade, sends mcpgate's client token in
	// Sec-WebSocket-Protocol, which must never reach an upstream (D4).
	if strings.HasPrefix(lower, "sec-websocket-") {
		return ReasonProtocolHeader
	}
	switch {
	// Set by mcpgate's upstream transport for its own use: Accept
	// negotiates JSON or SSE answers, Last-Event-ID resumes a stream.
	case lower == "accept", lower == "last-event-id",
		// Reserved for headers mcpgate sets for itself.
		strings.HasPrefix(lower, "x-mcpgate-"),
		// ContextForge's internal hop and trust headers: an upstream that is
		// itself a ContextForge believes them, so a client must not be able
		// to set them through mcpgate.
		lower == "x-forwarded-internally", strings.HasPrefix(lower, "x-contextforge-"):
		return ReasonInternalHeader
	}
	return 0
}

// MCPParamHeaderPrefix starts every Mcp-Param-<name> header, which an MCP
// client sets from a tool's parameters on its own request (MCP 2026-07-28):
// all of them are per-hop.
const MCPParamHeaderPrefix = "Mcp-Param-"

// MCPHopHeaders returns the MCP per-hop headers other than the
// Mcp-Param-* family (see MCPParamHeaderPrefix), canonically spelled. Each
// hop negotiates its own session and protocol version and describes its
// own request, so a client's are never forwarded (spec §2.3, deviation
// D11), and an upstream transport sets its own. It is the one list: the
// MCP protocol layer and the upstream transport build on it.
func MCPHopHeaders() []string {
	return []string{"Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name", "X-Mcp-Session-Id"}
}

// IsMCPHopHeader reports whether name, in any case, is an MCP per-hop
// header: one of MCPHopHeaders, or an Mcp-Param-* header (spec §2.3).
func IsMCPHopHeader(name string) bool {
	for _, h := range MCPHopHeaders() {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return len(name) >= len(MCPParamHeaderPrefix) && strings.EqualFold(name[:len(MCPParamHeaderPrefix)], MCPParamHeaderPrefix)
}

// clientCredential returns the sanitised value of the header mcpgate
// authenticates the client with, or "" when mcpgate authenticates no one or
// the request has none. Its value, under whatever name it comes, is mcpgate's
// credential and never the upstream's (deviation D4).
//
// A WebSocket upgrade without that header may carry the credential as the
// subprotocol bearer.<token> instead, and mcpgate then authenticates the
// client with that token (see [SubprotocolToken]).
func (p *Policy) clientCredential(h http.Header) string {
	if p.clientAuthKey == "" {
		return ""
	}
	if vals := h[p.clientAuthKey]; len(vals) > 0 {
		return SanitizeValue(vals[len(vals)-1])
	}
	return SanitizeValue(SubprotocolToken(h))
}

// WebSocketTokenPrefix marks the WebSocket subprotocol in which a client
// offers its mcpgate token, bearer.<token>: a browser cannot set headers on a
// WebSocket upgrade, but it can offer subprotocols.
const WebSocketTokenPrefix = "bearer."

// SubprotocolToken returns the token a WebSocket upgrade offers as the
// subprotocol bearer.<token> in Sec-WebSocket-Protocol (keys canonical, as
// net/http delivers them): the first such offer, or "" when there is none.
func SubprotocolToken(h http.Header) string {
	for _, v := range h["Sec-Websocket-Protocol"] {
		for v != "" {
			var offered string
			offered, v, _ = strings.Cut(v, ",")
			if token, ok := strings.CutPrefix(strings.TrimSpace(offered), WebSocketTokenPrefix); ok && token != "" {
				return token
			}
		}
	}
	return ""
}

// carriesCredential reports whether the sanitised value v carries the
// client's credential cred (from clientCredential), D4: the same value, the
// same token with or without the Bearer scheme ("Bearer T", "bearer T",
// "T"), or — for a token of at least minContainedToken bytes, which no
// value holds by chance — any value containing the token ("Token T",
// "access_token=T", "T, x"). An empty cred matches nothing.
func carriesCredential(v, cred string) bool {
	if cred == "" {
		return false
	}
	token := bearerToken(cred)
	if len(token) >= minContainedToken {
		return strings.Contains(v, token)
	}
	return v == cred || bearerToken(v) == token
}

// minContainedToken is the shortest client token looked for inside other
// values. mcpgate's tokens are JWTs of a hundred bytes and more; a short
// credential (a custom AUTH_HEADER_NAME's value) is matched whole, so that
// a common word is not withheld from every header that contains it.
const minContainedToken = 16

// bearerToken is what follows the Bearer scheme of a sanitised value, or the
// whole value when it has no such scheme.
func bearerToken(v string) string {
	const scheme = "bearer "
	if len(v) > len(scheme) && sameName(v[:len(scheme)], scheme) {
		return strings.TrimLeft(v[len(scheme):], " \t")
	}
	return v
}

// Allowlist is a list of passthrough header names prepared for Compute: each
// name checked, classified and canonicalised once, not on every call.
// Build it with Policy.Compile; it is immutable.
type Allowlist struct {
	names       []string
	entries     []entry
	forwardable int // entries that may be forwarded: valid and not never-forwarded
}

type entry struct {
	name          string // as configured; this spelling is what goes upstream
	canonical     string // http.CanonicalHeaderKey(name), the key in a net/http request
	skip          Reason // invalid name or never forwarded, else 0
	authorization bool   // the name is Authorization, whatever its case
	caseVariant   bool   // an earlier entry has the same name in another case
}

// Compile prepares names, in order, for Compute. A nil result forwards
// nothing; so does an empty list.
func (p *Policy) Compile(names []string) *Allowlist {
	a := &Allowlist{names: append([]string(nil), names...), entries: make([]entry, len(names))}
	for i, n := range names {
		e := entry{name: n}
		switch {
		case !ValidName(n):
			e.skip = ReasonInvalidName
		default:
			e.skip = p.NeverForwarded(n)
			e.canonical = http.CanonicalHeaderKey(n)
			e.authorization = sameName(n, authorization)
			for _, prev := range a.entries[:i] {
				if prev.skip == 0 && sameName(prev.name, n) {
					e.caseVariant = true
				}
			}
		}
		a.entries[i] = e
		if e.skip == 0 {
			a.forwardable++
		}
	}
	return a
}

// Names returns the names as configured, in order.
func (a *Allowlist) Names() []string {
	if a == nil {
		return nil
	}
	return append([]string(nil), a.names...)
}

// Len returns the number of names.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.entries)
}
