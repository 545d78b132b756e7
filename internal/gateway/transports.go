package gateway

import (
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/passthrough"
)

// subprotocolTokenPrefix marks the WebSocket subprotocol that carries a
// client token: bearer.<token>.
const subprotocolTokenPrefix = passthrough.WebSocketTokenPrefix

// webSocketToken finds the client token of a /ws upgrade: in header
// (AUTH_HEADER_NAME) as on every endpoint or, when the request has no such
// header, in the subprotocol bearer.<token>. A browser cannot set headers on
// a WebSocket upgrade, but it can offer subprotocols:
//
//	new WebSocket(url, ["mcp", "bearer." + token])
//
// The front door selects only mcp, so the token is never echoed, and
// Sec-WebSocket-Protocol is never forwarded nor kept in a session's headers:
// the token is mcpgate's own credential (spec §2.3, D4).
func webSocketToken(header string) func(*http.Request) (string, bool) {
	return func(r *http.Request) (string, bool) {
		if len(r.Header.Values(header)) > 0 {
			return auth.BearerToken(r.Header, header)
		}
		// The passthrough engine reads the same token to withhold it
		// (D4): one parser for both.
		token := passthrough.SubprotocolToken(r.Header)
		return token, token != ""
	}
}

// webSocketHowTo tells a /ws client without a token how to send one.
func webSocketHowTo(header string) string {
	return fmt.Sprintf("send %s: Bearer <token>, or offer the WebSocket subprotocols mcp and %s<token>", header, subprotocolTokenPrefix)
}

// OpenSessions returns how many client sessions each transport holds:
// Streamable HTTP (/mcp), legacy SSE (/sse) and WebSocket (/ws).
func (g *Gateway) OpenSessions() (streamable, legacySSE, websocket int) {
	return g.streamable.Sessions(), g.legacySSE.Sessions(), g.websocket.Sessions()
}
