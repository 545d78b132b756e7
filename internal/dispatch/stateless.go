package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// Stateless answers the requests of MCP 2026-07-28 clients, which open no
// session: each request carries its revision, capabilities and client in
// params._meta (MCP 2026-07-28 basic/index). The front door has checked
// those and the request's headers; Stateless answers.
//
// On /mcp (scope "") a request is answered from the catalogue as a
// session's is — server/discover, the lists (with their caching hints),
// and every routed call — and what must reach an upstream goes on a
// federated session held per (principal, client capabilities): what an
// upstream keeps per session stays one client's, and the upstream sees
// the capabilities of the client that called (it may offer tools only to
// clients that can sample). Those sessions are pooled as /rpc's are
// (PrincipalSessions): at most max at a time, the least recently used
// without a call in flight ended to make room, and one unused for idle
// ended. A client whose capabilities change from request to request uses
// one session per set; the bound holds all the same.
//
// On the relay (scope: the upstream's id) a request is forwarded as it
// is, with no session, when the upstream speaks 2026-07-28 itself (any
// instance serves it); else it goes on an upstream session of the relay's
// own, pooled likewise per (upstream, principal, capabilities).
//
// An upstream's request in the middle of a call (sampling, elicitation,
// roots) on a session of mcpgate's — /mcp's, or the relay's pooled one to
// an upstream of an earlier revision — becomes an InputRequiredResult of
// mcpgate's to the client (mrtr.go); outside any call it is refused. A
// 2026-07-28 upstream's own InputRequiredResult passes through the relay
// as it came, and the client's retry back as it is.
type Stateless struct {
	d         *Dispatcher
	sessions  *PrincipalSessions
	listening *listeners // subscriptions/listen streams open (listen.go)
	mrtr      *mrtrCalls // calls waiting for their client's input (mrtr.go)
}

// NewStateless returns the handler of 2026-07-28 requests and starts the
// sweeper of its pooled sessions: principal names the client of a
// request's context; idle (0: an hour) ends a session unused for that
// long; max (0: 1000) bounds the sessions held. Close ends them.
func (d *Dispatcher) NewStateless(principal func(context.Context) string, idle time.Duration, max int) *Stateless {
	p := d.NewPrincipalSessions(principal, idle, max)
	p.refusal = "the client speaks MCP 2026-07-28, which has no requests from server to client outside an InputRequiredResult"
	s := &Stateless{d: d, sessions: p, listening: &listeners{}, mrtr: newMRTRCalls()}
	p.notify = s.upstreamNotification
	return s
}

// Close ends every pooled session, waiting for their upstream sessions to
// close.
func (s *Stateless) Close() { s.sessions.Close() }

// Sessions returns the number of pooled sessions held now.
func (s *Stateless) Sessions() int { return s.sessions.Sessions() }

// ToolSchema returns the inputSchema of tool name as the client of ctx
// sees it listed, raw: on /mcp (scope "") name is the federated name, on
// the relay (scope: the upstream's id) the upstream's own. ok is false for
// a tool not listed; its Mcp-Param-* headers are then not checked.
func (s *Stateless) ToolSchema(ctx context.Context, scope, name string) (json.RawMessage, bool) {
	ix := s.d.view(ctx)
	var r *Route
	own := name
	if scope == "" {
		e, ok := ix.tools[name]
		if !ok {
			return nil, false
		}
		r, own = e.route, e.name
	} else if r, _ = ix.Route(scope); r == nil {
		return nil, false
	}
	for _, t := range r.Catalogue.Tools {
		if n, _ := jsonrpc.StringMember(t, "name"); n == own {
			schema, _ := jsonrpc.Member(t, "inputSchema")
			return schema, true
		}
	}
	return nil, false
}

// Serve answers one request; its result is a 2026-07-28 one (resultType,
// serverInfo in _meta: protocol.CompleteResult).
func (s *Stateless) Serve(ctx context.Context, scope string, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	resp := answerTo(msg, s.serve(ctx, scope, msg, in))
	if resp.Error == nil {
		resp.Result = protocol.CompleteResult(resp.Result, s.serverInfo())
	}
	return resp
}

func (s *Stateless) serve(ctx context.Context, scope string, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if msg.Method == "server/discover" {
		return s.discover(ctx, scope)
	}
	if protocol.Removed(msg.Method) {
		return failure(protocol.RemovedError(msg.Method))
	}
	if scope != "" {
		return s.relay(ctx, scope, msg, in)
	}
	ix := s.d.view(ctx)
	if list, ok := ix.lists[msg.Method]; ok {
		return result(withCache(list, s.d.listCache(ix, msg.Method)))
	}
	key, open := poolKey("", s.sessions.principal(ctx), msg), s.opener("", msg, in)
	// The session's initialize carries the client now (initializeOf).
	msg.Params = protocol.WithoutRequestMeta(msg.Params)
	if mrtrMethod(msg.Method) {
		return s.callWithInput(ctx, key, open, msg, in)
	}
	resp, _ := s.sessions.handleOn(ctx, key, open, msg, in)
	return resp
}

// relay answers a request of the relay to upstream id on the pooled relay
// session of (upstream, principal, capabilities); to an upstream that
// speaks 2026-07-28 that session passes the upstream's InputRequiredResult
// and the client's retry 1:1.
func (s *Stateless) relay(ctx context.Context, id string, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if _, ok := s.d.view(ctx).Route(id); !ok { // one the client may not use is unknown to it
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v: %q", ErrNoUpstream, id))
	}
	key, open := poolKey(id, s.sessions.principal(ctx), msg), s.opener(id, msg, in)
	msg.Params = protocol.WithoutRequestMeta(msg.Params)
	if mrtrMethod(msg.Method) {
		if !s.relaysStateless(ctx, key, open, in) {
			// An upstream of an earlier revision asks on its session
			// mid-call: the client is asked by mcpgate's own MRTR.
			return s.callWithInput(ctx, key, open, msg, in)
		}
		// The relay is 1:1: the upstream's InputRequiredResult goes to
		// the client as it came, and the client's retry (inputResponses,
		// and the upstream's own requestState) to the upstream as it is;
		// any instance serves the retry, as the state is the upstream's.
		in.passInput = true
	}
	resp, _ := s.sessions.handleOn(ctx, key, open, msg, in)
	return resp
}

// opener opens the pooled session of msg's client in scope: on /mcp
// (scope "") a federated session, on the relay (scope: the upstream's id)
// a relay session opened on its first request. Both are initialized with
// the client of msg (initializeOf).
func (s *Stateless) opener(scope string, msg jsonrpc.Message, in Inbound) func(context.Context, func(jsonrpc.Message)) pooledSession {
	if scope != "" {
		return func(_ context.Context, push func(jsonrpc.Message)) pooledSession {
			return &lazyRelay{d: s.d, id: scope, initialize: initializeOf(msg), push: push}
		}
	}
	return func(ctx context.Context, push func(jsonrpc.Message)) pooledSession {
		fs, _ := s.d.OpenFederated(ctx, initializeOf(msg), in, push)
		return fs
	}
}

// relaysStateless reports whether the pooled relay session of key reaches
// an upstream that speaks 2026-07-28, opening it if need be.
func (s *Stateless) relaysStateless(ctx context.Context, key string, open func(context.Context, func(jsonrpc.Message)) pooledSession, in Inbound) bool {
	ps := s.sessions.take(ctx, key, open)
	if ps == nil {
		return false
	}
	defer s.sessions.callDone(ps)
	l, ok := ps.fs.(*lazyRelay)
	if !ok {
		return false
	}
	rs, err := l.session(ctx, in)
	return err == nil && rs.speaksStateless()
}

// discover answers server/discover (MCP 2026-07-28 server/discover): the
// revisions mcpgate speaks, and on /mcp the capabilities and instructions
// initialize answers with (the upstreams' together), on the relay the
// upstream's own.
func (s *Stateless) discover(ctx context.Context, scope string) jsonrpc.Message {
	ix := s.d.view(ctx)
	var caps any = maps.Clone(ix.capabilities)
	instructions := ix.instructions
	if scope != "" {
		r, ok := ix.Route(scope)
		if !ok {
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v: %q", ErrNoUpstream, scope))
		}
		caps, instructions = announcedCapabilities(r.Catalogue), r.Catalogue.Instructions
	}
	h := s.d.listCache(ix, "server/discover")
	body := map[string]any{
		"supportedVersions": protocol.Versions(),
		"capabilities":      caps,
		"serverInfo":        s.serverInfo(),
		"ttlMs":             h.TTLMs,
		"cacheScope":        h.Scope,
	}
	if instructions != "" {
		body["instructions"] = instructions
	}
	return result(mustJSON(body))
}

func (s *Stateless) serverInfo() json.RawMessage {
	return mustJSON(map[string]string{"name": s.d.cfg.ServerName, "version": s.d.cfg.ServerVersion})
}

// initializeOf is the initialize of the upstream session a 2026-07-28
// request goes on: the newest handshake revision, and the request's
// client capabilities and clientInfo (_meta).
func initializeOf(msg jsonrpc.Message) jsonrpc.Message {
	caps, ok := protocol.Meta(msg.Params, protocol.MetaClientCapabilities)
	if !ok {
		caps = json.RawMessage("{}")
	}
	info, ok := protocol.Meta(msg.Params, protocol.MetaClientInfo)
	if !ok {
		info = json.RawMessage(`{"name":"mcpgate-stateless","version":"1"}`)
	}
	params := mustJSON(map[string]any{"protocolVersion": protocol.LatestHandshake(), "capabilities": caps, "clientInfo": info})
	return jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("0"), Method: "initialize", Params: params}
}

// poolKey names the pooled session of a request: its scope (the relay's
// upstream, or "" for /mcp), its principal, and a digest of its client
// capabilities as sent. A client sends the same bytes on every request;
// one that reorders them uses more sessions, within the pool's bound, and
// is not worth decoding every request for.
func poolKey(scope, principal string, msg jsonrpc.Message) string {
	caps, _ := protocol.Meta(msg.Params, protocol.MetaClientCapabilities)
	sum := sha256.Sum256(caps)
	return fmt.Sprintf("%q %q %s", scope, principal, hex.EncodeToString(sum[:12]))
}

// lazyRelay is a pooled relay session that opens its upstream session on
// its first request (PrincipalSessions opens it under its lock, where
// nothing may wait on the network), and again after it ended.
type lazyRelay struct {
	d          *Dispatcher
	id         string
	initialize jsonrpc.Message
	push       func(jsonrpc.Message)

	// mu is held while the upstream session opens: only the requests of
	// the same pooled session wait for it, and they need it.
	mu sync.Mutex
	rs *RelaySession
}

func (l *lazyRelay) session(ctx context.Context, in Inbound) (*RelaySession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rs != nil && l.rs.Err() == nil {
		return l.rs, nil
	}
	if l.rs != nil {
		_ = l.rs.Close()
		l.rs = nil
	}
	rs, _, err := l.d.OpenRelay(ctx, l.id, l.initialize, in, l.push)
	if err != nil {
		return nil, err
	}
	l.rs = rs
	return rs, nil
}

func (l *lazyRelay) Request(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	rs, err := l.session(ctx, in)
	if err != nil {
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err)))
	}
	return rs.Request(ctx, msg, in)
}

func (l *lazyRelay) Respond(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	l.mu.Lock()
	rs := l.rs
	l.mu.Unlock()
	if rs == nil {
		return fmt.Errorf("answer with id %s: the upstream session is not open", msg.ID)
	}
	return rs.Respond(ctx, msg, in)
}

func (l *lazyRelay) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rs == nil {
		return nil
	}
	return l.rs.Close()
}
