package upstream

import "github.com/mcpgate/mcpgate/internal/mcp/protocol"

// The MCP protocol facts the upstream hop needs, from the one protocol
// layer: the version asked for, the versions accepted, and the headers the
// transport owns.

// ProtocolVersion is the MCP version mcpgate asks every upstream for in
// initialize (protocol.UpstreamVersion), once server/discover has shown the
// upstream does not speak protocol.Version20260728. An upstream may answer
// with another version; Connect accepts any of protocol.Versions and fails
// on anything else.
const ProtocolVersion = protocol.UpstreamVersion

func supportedVersion(v string) bool { return protocol.Supported(v) }

// sessionVersion reports whether v is a revision mcpgate speaks with an
// initialize handshake: a supported one other than the stateless revision,
// which has no initialize (an upstream answering initialize with it is
// refused, whether or not protocol.Versions lists it for clients).
func sessionVersion(v string) bool { return supportedVersion(v) && !protocol.Stateless(v) }

// ownedHeader reports whether the transport owns the header, given by its
// canonical key: a caller's value under that name, in any case, is dropped,
// and the Client or Go's HTTP client sets its own. The MCP per-hop headers
// are protocol.IsHopHeader's, the passthrough engine's own list. The
// engine never forwards most of these (spec §2.3, the MCP per-hop and
// protocol headers); they are enforced here as well because a wrong
// Mcp-Session-Id or Content-Type would break the session every caller
// shares, a caller's Accept-Encoding would stop Go's transport from
// decoding the answer, and Go writes Host, Content-Length and
// Transfer-Encoding from the request itself, so a caller's would go out as
// a second, conflicting copy.
func ownedHeader(key string) bool {
	if protocol.IsHopHeader(key) {
		return true
	}
	switch key {
	case "Content-Type", "Accept", "Accept-Encoding", "Last-Event-Id",
		"Host", "Content-Length", "Transfer-Encoding", "Trailer", "Te", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade":
		return true
	}
	return false
}
