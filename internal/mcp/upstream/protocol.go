package upstream

// The MCP protocol facts the upstream hop needs: the version asked for, the
// versions accepted, and the headers the transport owns. Kept together and
// apart from the session and transport code so that one protocol layer can
// take them over.

// ProtocolVersion is the MCP version mcpgate asks every upstream for. It is
// pinned rather than "the newest the SDK knows", so an SDK upgrade cannot
// silently change what upstreams are spoken to with. An upstream may answer
// with another version; Connect accepts 2025-11-25, 2025-06-18, 2025-03-26
// and 2024-11-05 and fails on anything else.
const ProtocolVersion = "2025-06-18"

// supportedVersion reports whether mcpgate speaks MCP protocol version v
// with an upstream.
func supportedVersion(v string) bool {
	switch v {
	case "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05":
		return true
	}
	return false
}

// ownedHeader reports whether the transport owns the header, given by its
// canonical key: a caller's value under that name, in any case, is dropped,
// and the Client or Go's HTTP client sets its own. The passthrough engine
// never forwards most of these (spec §2.3, the MCP per-hop and protocol
// headers); they are enforced here as well because a wrong Mcp-Session-Id
// or Content-Type would break the session every caller shares, a caller's
// Accept-Encoding would stop Go's transport from decoding the answer, and Go
// writes Host, Content-Length and Transfer-Encoding from the request itself,
// so a caller's would go out as a second, conflicting copy.
func ownedHeader(key string) bool {
	switch key {
	case "Content-Type", "Accept", "Accept-Encoding", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-Id",
		"Host", "Content-Length", "Transfer-Encoding", "Trailer", "Te", "Connection", "Keep-Alive",
		"Proxy-Connection", "Upgrade":
		return true
	}
	return false
}
