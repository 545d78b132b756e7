package frontdoor

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Subprotocol is the WebSocket subprotocol mcpgate selects when the client
// offers it. It is the only one it ever selects: a browser authenticating
// with the subprotocol bearer.<token> must not get its token echoed.
const Subprotocol = "mcp"

// WebSocketConfig configures a WebSocket.
type WebSocketConfig struct {
	StreamConfig
	// OriginPatterns lists the page origins (host patterns, as
	// websocket.AcceptOptions reads them) allowed to open a socket besides
	// the request's own host. Empty, the default, refuses every cross-origin
	// upgrade with 403, so that a page elsewhere cannot use a browser's
	// credentials to reach mcpgate.
	OriginPatterns []string
}

// WebSocket serves MCP over WebSocket at /ws. Each text message from the
// client is one JSON-RPC message or a batch; the answers, the notifications
// upstreams send during calls, and catalogue changes go back as text
// messages. Up to MaxInFlight messages of one socket are handled at once,
// so a slow call does not hold the others; writes are serialised by one
// goroutine per socket. A message larger than MaxBodyBytes closes the
// socket (1009).
//
// Every call of the socket's session is forwarded with the headers of the
// upgrade request, under the allowlist in force at the time of the call
// (spec §4, D12). A session ends when the client closes the socket, after
// IdleTimeout without a message from it, or on Close. Create it with
// NewWebSocket.
type WebSocket struct {
	sessions *streamSessions
	accept   websocket.AcceptOptions
}

// NewWebSocket returns the WebSocket handler.
func NewWebSocket(cfg WebSocketConfig) *WebSocket {
	return &WebSocket{
		sessions: newStreamSessions(cfg.StreamConfig),
		accept:   websocket.AcceptOptions{Subprotocols: []string{Subprotocol}, OriginPatterns: cfg.OriginPatterns},
	}
}

// Close ends every session, closing their sockets (1001 Going Away), and
// returns when all their goroutines are gone. Later upgrades are refused.
func (h *WebSocket) Close() { h.sessions.closeAll() }

// Drain is the graceful Close: new sessions and messages are refused, the
// calls in flight finish and their answers go out (while ctx lasts), then
// every socket is closed.
func (h *WebSocket) Drain(ctx context.Context) { h.sessions.drain(ctx) }

// Sessions returns the number of open sessions.
func (h *WebSocket) Sessions() int { return h.sessions.count() }

// Broadcast sends a notification (e.g. notifications/tools/list_changed) on
// every open socket; sockets that are not keeping up miss it.
func (h *WebSocket) Broadcast(m jsonrpc.Message) { h.sessions.broadcast(m) }

func (h *WebSocket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The session's context must not end with the request's: once the
	// connection is hijacked, net/http no longer watches it.
	sess, err := h.sessions.open(context.WithoutCancel(r.Context()), r)
	if err != nil {
		writeJSONRPCError(w, openStatus(err), jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
		return
	}
	conn, err := websocket.Accept(w, r, &h.accept)
	if err != nil {
		h.sessions.release(sess, err) // Accept answered the client: 400, 403 or 426
		return
	}
	conn.SetReadLimit(MaxBodyBytes)
	cfg := h.sessions.cfg
	cfg.Logger.Debug("websocket session opened", "session", sess.id, "subprotocol", conn.Subprotocol(), "request_id", cfg.RequestID(r))

	reading := make(chan struct{})
	go func() {
		defer close(reading)
		h.read(conn, sess, r)
	}()
	err = h.sessions.pump(sess,
		func(data []byte) error {
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			return conn.Write(ctx, websocket.MessageText, data)
		},
		func() error {
			ctx, cancel := context.WithTimeout(sess.ctx, writeTimeout)
			defer cancel()
			if err := conn.Ping(ctx); err != nil {
				return fmt.Errorf("keep-alive ping unanswered: %w", err)
			}
			return nil
		})
	switch end, ok := asSessionEnd(err); {
	case ok && end.shutdown:
		_ = conn.Close(websocket.StatusGoingAway, end.reason)
	case ok:
		_ = conn.Close(websocket.StatusNormalClosure, end.reason)
	default: // the client closed the socket, or it broke
		_ = conn.CloseNow()
	}
	<-reading
	h.sessions.release(sess, err)
	cfg.Logger.Debug("websocket session ended", "session", sess.id, "reason", err)
}

// read reads the client's messages and hands each to the session, until the
// socket closes; then it ends the session.
func (h *WebSocket) read(conn *websocket.Conn, sess *streamSession, r *http.Request) {
	requestID := h.sessions.cfg.RequestID(r)
	for {
		// Not the session's context: cancelling a read closes the socket
		// without the closing handshake. Closing the socket ends the read.
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			sess.end(fmt.Errorf("read: %w", err))
			return
		}
		sess.heard()
		if typ != websocket.MessageText {
			sess.push(encodeError(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "send JSON-RPC messages as text messages, not binary")))
			continue
		}
		if still := h.sessions.cfg.Still; still != nil {
			if err := still(r); err != nil {
				sess.end(&sessionEnd{reason: err.Error()})
				return
			}
		}
		msgs, batch, err := jsonrpc.Decode(data)
		if err != nil {
			sess.push(encodeError(asRPCError(err)))
			continue
		}
		if !sess.handleAsync(sess.ctx, r, h.sessions.cfg, msgs, batch, requestID) {
			return // the session ended
		}
	}
}
