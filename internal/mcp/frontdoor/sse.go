package frontdoor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// SSE serves MCP's legacy HTTP+SSE transport (protocol 2024-11-05). GET on
// the stream path opens a session: an event stream whose first event,
// endpoint, names where to post the client's messages,
// MessagePath?session_id=<id>. Each POST there carries one message or a
// batch and is answered 202 Accepted at once; its answers, the
// notifications upstreams send during its calls, and catalogue changes all
// go out on the stream as message events.
//
// Every call of a session is forwarded with the headers of the GET that
// opened it, never a POST's (spec §4), under the allowlist in force at the
// time of the call (D12). A session ends when its stream is closed, after
// IdleTimeout without a POST, or on Close. Create it with NewSSE.
type SSE struct {
	sessions *streamSessions
	sharing  *sharingLog
}

// MessagePath is where a legacy SSE session posts its messages. The
// endpoint event gives it from the server's root: behind a reverse proxy
// that serves mcpgate under a path prefix, the proxy must add the prefix.
const MessagePath = "/message"

// NewSSE returns the legacy SSE handler.
func NewSSE(cfg StreamConfig) *SSE {
	s := newStreamSessions(cfg)
	return &SSE{sessions: s, sharing: &sharingLog{logger: s.cfg.Logger}}
}

// Close ends every session, closing their streams, and returns when all
// their goroutines are gone. Later GETs are refused.
func (h *SSE) Close() { h.sessions.closeAll() }

// Drain is the graceful Close: new sessions and messages are refused, the
// calls in flight finish and their answers go out (while ctx lasts), then
// every session ends.
func (h *SSE) Drain(ctx context.Context) { h.sessions.drain(ctx) }

// Sessions returns the number of open sessions.
func (h *SSE) Sessions() int { return h.sessions.count() }

// Broadcast sends a notification (e.g. notifications/tools/list_changed) on
// every open stream; streams that are not keeping up miss it.
func (h *SSE) Broadcast(m jsonrpc.Message) { h.sessions.broadcast(m) }

// ServeStream serves GET on the stream path (/sse): it opens a session and
// writes its events until the session ends.
func (h *SSE) ServeStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "GET opens the session's event stream; post messages to the endpoint its first event names", http.StatusMethodNotAllowed)
		return
	}
	sess, err := h.sessions.open(r.Context(), r)
	if err != nil {
		writeJSONRPCError(w, openStatus(err), jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
		return
	}
	cfg := h.sessions.cfg
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// A client that stops reading must not hold the session, nor Close.
	sw := newSSEWriter(w, writeTimeout)

	claim := func() {
		if cfg.Router == nil {
			return
		}
		ctx, cancel := context.WithTimeout(sess.ctx, sharedTimeout)
		defer cancel()
		if err := cfg.Router.Claim(ctx, sess.id, 3*cfg.KeepAlive); err != nil {
			h.sharing.warn("could not tell the other instances where an SSE session lives; its POSTs must land here", err)
		}
	}
	claim()
	path := MessagePath
	if cfg.MessagePath != nil {
		path = cfg.MessagePath(r)
	}
	err = sw.event("endpoint", []byte(path+"?session_id="+url.QueryEscape(sess.id)))
	if err == nil {
		cfg.Logger.Debug("sse session opened", "session", sess.id, "request_id", cfg.RequestID(r))
		err = h.sessions.pump(sess,
			func(data []byte) error { return sw.event("message", data) },
			func() error { claim(); return sw.comment("keepalive") })
	}
	if cfg.Router != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), sharedTimeout)
		_ = cfg.Router.Release(ctx, sess.id)
		cancel()
	}
	if end, ok := asSessionEnd(err); ok {
		_ = sw.comment("closing: " + end.reason)
	}
	h.sessions.release(sess, err)
	cfg.Logger.Debug("sse session ended", "session", sess.id, "reason", err)
}

// ServeMessage serves POST on MessagePath: one message or a batch for the
// session named by the session_id query parameter.
func (h *SSE) ServeMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONRPCError(w, http.StatusMethodNotAllowed, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "use POST with a JSON-RPC body"))
		return
	}
	id := r.URL.Query().Get("session_id")
	if id == "" {
		writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"the session_id query parameter is required: post to the URL of the endpoint event of your GET /sse stream"))
		return
	}
	sess, ok := h.sessions.find(id, r)
	if why, ended := h.sessions.endedWhy(id, r); !ok && ended {
		writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"session %q ended: %s; open a new one with GET on the stream path", id, why))
		return
	}
	if !ok && h.sessions.cfg.Router != nil {
		h.route(w, r, id)
		return
	}
	if !ok {
		writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"session %q not found: its stream ended or expired; open a new one with GET /sse", id))
		return
	}
	if err := sess.backendErr(); err != nil { // ended on its own; its stream is closing
		writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"session %q ended: %v", id, err))
		return
	}
	msgs, batch, ok := readMessages(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	sess.heard()
	// The POST's own headers are not used: the session's calls carry the
	// opening GET's (spec §4).
	if !sess.handleAsync(r.Context(), r, h.sessions.cfg, msgs, batch, h.sessions.cfg.RequestID(r)) {
		if sess.ctx.Err() == nil && r.Context().Err() != nil {
			return // the client gave up waiting for a free call slot
		}
		if sess.ctx.Err() == nil { // draining
			writeJSONRPCError(w, http.StatusServiceUnavailable, jsonrpc.Errorf(jsonrpc.CodeInternalError,
				"mcpgate is shutting down; open a new session with GET /sse (on another instance, or once it is back)"))
			return
		}
		if end, ok := asSessionEnd(context.Cause(sess.ctx)); ok {
			writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
				"session %q ended: %s; open a new one with GET on the stream path", id, end.reason))
			return
		}
		writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"session %q ended before the message could be handled; open a new one with GET /sse", id))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// route hands a POST for a session this instance does not hold to the
// instance that does: 202 once it is on its way, 404 when no
// live instance holds the session.
func (h *SSE) route(w http.ResponseWriter, r *http.Request, id string) {
	cfg := h.sessions.cfg
	body, status, err := readBody(w, r)
	if err != nil {
		writeJSONRPCError(w, status, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "the message could not be read: %v", err))
		return
	}
	if _, _, err := jsonrpc.Decode(body); err != nil {
		writeJSONRPCError(w, http.StatusBadRequest, asRPCError(err))
		return
	}
	message, err := json.Marshal(routedMessage{Session: id, Scope: fromRequest(cfg.Scope, r),
		Principal: fromRequest(cfg.Principal, r), Body: body, RequestID: cfg.RequestID(r)})
	if err != nil {
		writeJSONRPCError(w, http.StatusInternalServerError, jsonrpc.Errorf(jsonrpc.CodeInternalError, "encode the message for the instance holding its session: %v", err))
		return
	}
	ok, err := cfg.Router.Route(r.Context(), id, message)
	switch {
	case err != nil:
		h.sharing.warn("could not route an SSE message to the instance holding its session", err)
		writeJSONRPCError(w, http.StatusServiceUnavailable, jsonrpc.Errorf(jsonrpc.CodeInternalError,
			"session %q lives on another instance, which could not be reached; retry, or open a new session with GET /sse", id))
	case !ok:
		writeJSONRPCError(w, http.StatusNotFound, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"session %q not found: its stream ended, expired or lived on an instance that stopped; open a new one with GET /sse", id))
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// DeliverRouted handles a POST another instance routed here, as
// its SessionRouter carried it; it reports whether this handler holds the
// session. Its messages are handled as a POST here would be, with the
// session's opening headers (spec §4). A message that is not one is
// dropped (true: no other handler should take it).
func (h *SSE) DeliverRouted(message []byte) bool {
	var m routedMessage
	if err := json.Unmarshal(message, &m); err != nil {
		h.sessions.cfg.Logger.Warn("dropped a routed SSE message that is not one", "err", err)
		return true
	}
	s, ok := h.sessions.findScoped(m.Session, m.Scope, m.Principal)
	if !ok {
		return false
	}
	msgs, batch, err := jsonrpc.Decode(m.Body)
	if err != nil {
		s.push(encodeError(asRPCError(err)))
		return true
	}
	s.heard()
	s.handleAsync(s.ctx, s.opening, h.sessions.cfg, msgs, batch, m.RequestID)
	return true
}
