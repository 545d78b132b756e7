package frontdoor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// StatelessHandler answers the requests of MCP 2026-07-28 clients, which
// open no session (StreamableConfig.Stateless). The Streamable checks a
// request's _meta and headers first (MCP 2026-07-28 basic/transports/
// streamable-http, "Server Validation"). scope is StreamableConfig.Scope's
// (the relay's upstream id; "" on /mcp). *dispatch.Stateless is one.
type StatelessHandler interface {
	// ToolSchema is the inputSchema of the tool a tools/call names, as
	// the client sees it listed; ok false when none is listed.
	ToolSchema(ctx context.Context, scope, name string) (inputSchema json.RawMessage, ok bool)
	// Serve answers one request; what is sent about it on the way goes to
	// in.Notify.
	Serve(ctx context.Context, scope string, msg jsonrpc.Message, in dispatch.Inbound) jsonrpc.Message
	// Listen serves subscriptions/listen: it sends the notifications the
	// request asks for with send until ctx ends, and returns the result
	// that ends the stream, or an error answer before sending anything.
	Listen(ctx context.Context, scope string, msg jsonrpc.Message, in dispatch.Inbound, send func(jsonrpc.Message)) jsonrpc.Message
}

// statelessRequest reports whether a POST is a 2026-07-28 request, served
// without a session: it has no Mcp-Session-Id and no initialize, and
// either its MCP-Protocol-Version header is not a handshake revision (a
// client of those sends the header only on a session) or its body carries
// params._meta's protocol version. Anything else goes on as before, to
// the session it names or to initialize.
func statelessRequest(r *http.Request, msgs []jsonrpc.Message) bool {
	if r.Header.Get(headerSessionID) != "" || len(msgs) == 0 {
		return false
	}
	for _, m := range msgs {
		if m.Method == "initialize" {
			// A handshake, unless it is sent as a 2026-07-28 request (its
			// _meta names a revision, SEP-2575's per-request detection):
			// then it is a method that revision removed, answered 404.
			_, modern := protocol.Meta(m.Params, protocol.MetaProtocolVersion)
			return modern && len(msgs) == 1
		}
	}
	if v := r.Header.Get(headerProtocolVersion); v != "" && protocol.Negotiate(v) != v {
		return true
	}
	_, ok := protocol.Meta(msgs[0].Params, protocol.MetaProtocolVersion)
	return ok
}

// serveStateless answers a 2026-07-28 POST: one message, no batch (the
// revision has none). A request whose _meta or headers do not hold is
// answered with HTTP 400 and the revision's error; one for a method
// mcpgate does not serve with 404 (the revision's HTTP mapping of
// -32601). notifications/cancelled ends the named request of the same
// client on this instance, if it is here; a client that closes its
// request's connection cancels it too.
func (s *Streamable) serveStateless(w http.ResponseWriter, r *http.Request, msgs []jsonrpc.Message, batch bool) {
	if batch || len(msgs) != 1 {
		writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"MCP %s has no batches: send one message per POST", protocol.Version20260728))
		return
	}
	m := msgs[0]
	scope, principal := fromRequest(s.scope, r), fromRequest(s.principal, r)
	switch {
	case m.IsResponse():
		writeJSONRPCError(w, http.StatusBadRequest, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"MCP %s clients answer no requests: a server's question comes as an InputRequiredResult, answered by retrying the request", protocol.Version20260728))
		return
	case m.IsNotification():
		if m.Method == "notifications/cancelled" {
			if id, ok := jsonrpc.Member(m.Params, "requestId"); ok {
				s.calls.cancel(scope, principal, id)
			}
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if protocol.Removed(m.Method) {
		// Answered so whatever its _meta: the go-sdk client sends ping
		// without one.
		writeAnswer(w, http.StatusNotFound, jsonrpc.NewError(m.ID, protocol.RemovedError(m.Method)))
		return
	}
	if err := s.checkStateless(r, scope, m); err != nil {
		var re *protocol.RequestError
		var e *jsonrpc.Error
		switch {
		case errors.As(err, &re):
			e = re.RPCError()
		case errors.As(err, &e): // the revision is not one mcpgate serves without a session
		default: // the listed tool's inputSchema is at fault
			e = jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v", err)
		}
		writeAnswer(w, http.StatusBadRequest, jsonrpc.NewError(m.ID, e))
		return
	}
	in := dispatch.Inbound{Header: r.Header, RequestID: s.requestID(r)}
	if m.Method == "subscriptions/listen" {
		s.listen(w, r, scope, m, in)
		return
	}
	ctx, done := s.calls.begin(r.Context(), scope, principal, m.ID)
	defer done()
	out := &lazyAnswer{w: w, timeout: s.writeTimeout}
	if acceptsEventStream(r) {
		in.Notify = out.notify
	}
	resp := s.stateless.Serve(ctx, scope, m, in)
	if resp.Error != nil {
		out.status = protocol.ErrorStatus(resp.Error.Code)
	}
	out.finish([]jsonrpc.Message{resp}, false)
}

// checkStateless checks a 2026-07-28 request before it is served: its
// _meta (protocol.CheckRequestMeta), its headers against its body
// (protocol.CheckRequestHeaders, with the listed tool's inputSchema; the
// MCP-Protocol-Version header must equal _meta's), and its revision (the
// one mcpgate speaks without a session: 2026-07-28).
func (s *Streamable) checkStateless(r *http.Request, scope string, m jsonrpc.Message) error {
	if err := protocol.CheckRequestMeta(m); err != nil {
		return err
	}
	var schema json.RawMessage
	if m.Method == "tools/call" {
		if name, ok := jsonrpc.StringMember(m.Params, "name"); ok {
			schema, _ = s.stateless.ToolSchema(r.Context(), scope, name)
		}
	}
	if err := protocol.CheckRequestHeaders(r.Header, m, schema); err != nil {
		return err
	}
	raw, _ := protocol.Meta(m.Params, protocol.MetaProtocolVersion)
	var v string
	_ = json.Unmarshal(raw, &v)
	if v != protocol.Version20260728 {
		return protocol.UnsupportedVersion(v)
	}
	return nil
}

// listen serves subscriptions/listen as an event stream that lasts until
// the client closes it (or the server drains), carrying what the handler
// sends; its last event is the handler's result, when the server ends it.
func (s *Streamable) listen(w http.ResponseWriter, r *http.Request, scope string, m jsonrpc.Message, in dispatch.Inbound) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var (
		mu     sync.Mutex
		stream *sseWriter
	)
	start := func() *sseWriter {
		mu.Lock()
		defer mu.Unlock()
		if stream == nil {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			stream = newSSEWriter(w, s.writeTimeout)
		}
		return stream
	}
	send := func(n jsonrpc.Message) {
		if err := start().send(n); err != nil {
			cancel() // a client that stopped reading ends its stream
		}
	}
	resp := s.stateless.Listen(ctx, scope, m, in, send)
	mu.Lock()
	started := stream != nil
	mu.Unlock()
	if !started {
		status := http.StatusOK
		if resp.Error != nil {
			status = http.StatusBadRequest
		}
		writeAnswer(w, status, resp)
		return
	}
	if r.Context().Err() == nil {
		_ = stream.send(resp)
	}
	stream.close()
}

// writeAnswer writes one JSON-RPC answer with the HTTP status given.
func writeAnswer(w http.ResponseWriter, status int, m jsonrpc.Message) {
	body, err := jsonrpc.Encode(m)
	if err != nil {
		writeJSONRPCError(w, http.StatusInternalServerError, jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statelessCalls are the 2026-07-28 requests in flight on this instance,
// so that a client's notifications/cancelled reaches the one it names:
// by scope, principal and request id (a client's ids are its own, and no
// other client can cancel them).
type statelessCalls struct {
	mu    sync.Mutex
	calls map[statelessCall]*inflightCall
}

type inflightCall struct{ cancel context.CancelFunc }

type statelessCall struct{ scope, principal, id string }

// begin registers a request and returns its context; done forgets it.
// Of two in flight under one id, the later is the one cancelled.
func (c *statelessCalls) begin(ctx context.Context, scope, principal string, id json.RawMessage) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	key := statelessCall{scope, principal, string(id)}
	entry := &inflightCall{cancel: cancel}
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[statelessCall]*inflightCall{}
	}
	c.calls[key] = entry
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		if c.calls[key] == entry {
			delete(c.calls, key)
		}
		c.mu.Unlock()
		cancel()
	}
}

func (c *statelessCalls) cancel(scope, principal string, id json.RawMessage) {
	c.mu.Lock()
	entry := c.calls[statelessCall{scope, principal, string(id)}]
	c.mu.Unlock()
	if entry != nil {
		entry.cancel()
	}
}
