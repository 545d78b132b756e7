// Package protocol is mcpgate's one MCP protocol layer: the revisions
// mcpgate speaks and their negotiation, the headers that belong to one hop,
// and the codec of a request's params._meta. Nothing else in mcpgate knows
// a protocol version string; bridging a client's revision to an upstream's
// is dispatch's, on top of this.
package protocol

import (
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// The MCP revisions mcpgate speaks, by their dates.
const (
	Version20251125 = "2025-11-25"
	Version20250618 = "2025-06-18"
	Version20250326 = "2025-03-26"
	Version20241105 = "2024-11-05"
)

// Versions returns the MCP revisions mcpgate speaks, to clients and to
// upstreams alike, newest first: the stateless Version20260728, then the
// HandshakeVersions. A new slice on every call.
func Versions() []string {
	return append([]string{Version20260728}, HandshakeVersions()...)
}

// HandshakeVersions returns the revisions that open a session with
// initialize, newest first: every one of Versions but Version20260728,
// which has no initialize (MCP 2026-07-28 basic/lifecycle: server/discover
// and per-request _meta replace it). A new slice on every call.
func HandshakeVersions() []string {
	return []string{Version20251125, Version20250618, Version20250326, Version20241105}
}

// Latest is the newest revision mcpgate speaks.
func Latest() string { return Versions()[0] }

// LatestHandshake is the newest revision that has initialize, the one a
// client that asks initialize for a revision mcpgate does not have in
// initialize (Version20260728 included) is answered with.
func LatestHandshake() string { return HandshakeVersions()[0] }

// Supported reports whether v is a revision mcpgate speaks on a session:
// one of HandshakeVersions, which an initialize may ask for or answer
// with, and a session's MCP-Protocol-Version may name. Version20260728,
// the other of Versions, has no initialize and no session, so it is not:
// an upstream that answers initialize with it is refused, as before.
func Supported(v string) bool { return slices.Contains(HandshakeVersions(), v) }

// Negotiate returns the revision a server answers to a client whose
// initialize asks for requested: the same when it is one of
// HandshakeVersions, else the newest of those (MCP basic/lifecycle,
// version negotiation). A client asking initialize for 2026-07-28 gets
// 2025-11-25: that revision has no initialize, so a client that sends one
// has fallen back to the handshake, and the go-sdk client does exactly
// this (it offers 2025-11-25 once server/discover fails).
func Negotiate(requested string) string {
	if slices.Contains(HandshakeVersions(), requested) {
		return requested
	}
	return LatestHandshake()
}

// DiscoveryCapabilities are the client capabilities mcpgate declares on the
// upstream sessions of its own (discovery): every one a client of mcpgate
// may have, so that an upstream lists the tools that need them (a server may
// offer a sampling tool only to clients that can sample). Those sessions
// have no client behind them: they answer roots/list with no roots and
// refuse sampling and elicitation; each client reaches the upstream on a
// session of its own, opened with its own capabilities.
const DiscoveryCapabilities = `{"roots":{},"sampling":{},"elicitation":{"form":{},"url":{}}}`

// UpstreamVersion is the revision mcpgate asks every upstream for in its
// own initialize, once server/discover has shown the upstream does not
// speak Version20260728 (see stateless.go). It is pinned rather than "the
// newest mcpgate knows", so that adding a revision to Versions cannot
// silently change what upstreams are spoken to with; an upstream may answer
// with any of Versions.
const UpstreamVersion = Version20251125

// SupportedList is Versions as one human-readable string, for messages
// that tell someone which revisions mcpgate accepts.
func SupportedList() string { return strings.Join(Versions(), ", ") }

// The MCP per-hop headers mcpgate reads or writes itself.
const (
	// HeaderSessionID carries a Streamable HTTP session's id (MCP
	// basic/transports, session management).
	HeaderSessionID = "Mcp-Session-Id"
	// HeaderProtocolVersion carries the negotiated revision on every
	// request after initialize (MCP 2025-06-18 and later).
	HeaderProtocolVersion = "Mcp-Protocol-Version"
	// HeaderMethod and HeaderName describe a request for routing without
	// its body (MCP 2026-07-28).
	HeaderMethod = "Mcp-Method"
	HeaderName   = "Mcp-Name"
	// HeaderParamPrefix starts the Mcp-Param-<name> headers (MCP 2026-07-28).
	HeaderParamPrefix = passthrough.MCPParamHeaderPrefix
)

// HopHeaders returns the MCP per-hop headers, canonically spelled, other
// than the Mcp-Param-* family (HeaderParamPrefix). It is the passthrough
// engine's list (spec §2.3): the engine never forwards a client's, and an
// upstream transport drops any given it and sets its own.
func HopHeaders() []string { return passthrough.MCPHopHeaders() }

// IsHopHeader reports whether name, in any case, is an MCP per-hop header:
// one of HopHeaders, or an Mcp-Param-* header.
func IsHopHeader(name string) bool { return passthrough.IsMCPHopHeader(name) }
