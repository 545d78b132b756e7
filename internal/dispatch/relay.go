package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/passthrough"
)

// The 1:1 relay exposes one upstream as itself (/gateways/{id}/mcp and
// /gateways/{id}/sse): each client session gets an upstream session of its
// own, opened with the client's initialize, and every message goes on
// unchanged apart from per-hop headers — requests, notifications and answers
// from the client to the upstream, and responses, notifications and requests
// (sampling, elicitation, roots, ping) from the upstream to the client. Every
// request, notification and answer sent upstream on a client's behalf gets
// its headers from the passthrough engine (spec §5).

// ErrNoUpstream is returned by OpenRelay for an id that names no registered
// upstream.
var ErrNoUpstream = errors.New("no upstream is registered under this id")

// ErrNotRelayable is returned by OpenRelay for an upstream that cannot be
// relayed to now: it has no relay connector, its credentials are
// unreadable, or it moved to another endpoint while the session opened.
var ErrNotRelayable = errors.New("the upstream cannot be relayed to")

// ErrRelayEnded is what a relay session's Err wraps once mcpgate has ended
// it: its upstream was disabled or deleted, or moved to another endpoint.
var ErrRelayEnded = errors.New("the relay session has ended")

// RelaySession is one client session of the 1:1 relay. It is safe for
// concurrent use: a client may have many requests in flight.
//
// Only its upstream session is fixed when it opens: every message it sends
// takes the upstream's route — allowlist and credentials — from the index
// in force at that moment (spec §4), and the session ends, with the
// reason, once its upstream leaves the index or moves to another endpoint
// (see Dispatcher.UpstreamChanged).
type RelaySession struct {
	d         *Dispatcher
	id, name  string // the upstream's, as it opened
	endpoint  string // Route.Endpoint as it opened
	conn      RelayConn
	onMessage func(jsonrpc.Message)
	client    *auth.Identity // who opened it, nil when no one authenticated
	done      chan struct{}  // closed when mcpgate ends the session
	closing   sync.Once

	mu       sync.Mutex
	err      error                         // why it ended; nil while it goes on
	inflight map[string]context.CancelFunc // by the client's request id
}

// OpenRelay opens a relay session with the upstream registered as
// upstreamID, for the client's initialize request. The upstream is sent the
// client's initialize params (so it sees the client's capabilities) with the
// headers the engine computes from in.Header, the session's opening headers
// (spec §4). onMessage receives what the upstream sends outside any call. It
// returns the session and the answer to initialize: the upstream's own
// result, under the client's id.
func (d *Dispatcher) OpenRelay(ctx context.Context, upstreamID string, initialize jsonrpc.Message, in Inbound, onMessage func(jsonrpc.Message)) (*RelaySession, jsonrpc.Message, error) {
	r, ok := d.view(ctx).Route(upstreamID) // one the client may not use is unknown to it
	if !ok {
		return nil, jsonrpc.Message{}, fmt.Errorf("%w: %q", ErrNoUpstream, upstreamID)
	}
	if r.Dial == nil || r.Credentials == nil {
		reason := r.Unavailable
		if reason == "" {
			reason = "it has no relay connector"
		}
		return nil, jsonrpc.Message{}, d.failed(ctx, r.Name, "initialize", fmt.Errorf("%w: %w: %s", ErrNotRelayable, errUnavailable, reason), in)
	}
	initialize.Params = handshakeParams(initialize.Params)
	var conn RelayConn
	for attempt := 0; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		var err error
		conn, err = r.Dial(dctx, initialize.Params, d.ownHeaders(r, in.withClient(ctx)), onMessage)
		cancel()
		if status, ok := httpStatus(err); ok && status == http.StatusUnauthorized && r.Upstream.AuthType == passthrough.AuthOAuth && attempt == 0 {
			r.Credentials.Invalidate()
			continue
		}
		if err != nil {
			d.count("initialize", r, false)
			return nil, jsonrpc.Message{}, d.failed(ctx, r.Name, "initialize", err, in)
		}
		break
	}
	d.count("initialize", r, true)
	rs := &RelaySession{d: d, id: r.ID, name: r.Name, endpoint: r.Endpoint, conn: conn, onMessage: onMessage,
		done: make(chan struct{}), inflight: map[string]context.CancelFunc{}, client: in.withClient(ctx).client}
	d.relays.add(rs)
	// A change published while the upstream session was being opened did
	// not see this session: look again now that it is registered. An
	// upstream still registered whose credentials cannot be read, or that
	// moved, is unavailable for now (503), not unknown (404).
	if _, err := rs.route(); err != nil {
		_ = rs.Close()
		kind := ErrNotRelayable
		var ended *relayEnded
		if errors.As(err, &ended) && ended.gone {
			kind = ErrNoUpstream
		}
		return nil, jsonrpc.Message{}, fmt.Errorf("%w: %w", kind, err)
	}
	answer := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: initialize.ID, Result: conn.InitializeResult()}
	return rs, answer, nil
}

// handshakeParams returns a client's initialize params with a revision
// that has initialize: one asking for MCP 2026-07-28, which has none, or
// for one mcpgate does not speak, asks the upstream for the revision
// mcpgate answers the client with (protocol.Negotiate), not for a pinned
// older one. Other params are returned as they are.
func handshakeParams(params json.RawMessage) json.RawMessage {
	requested, ok := jsonrpc.StringMember(params, "protocolVersion")
	if !ok || protocol.Negotiate(requested) == requested {
		return params
	}
	out, err := jsonrpc.WithStringMember(params, "protocolVersion", protocol.Negotiate(requested))
	if err != nil {
		return params
	}
	return out
}

// ownHeaders gives the headers of the requests a relay session's upstream
// session makes for itself — initialize, its listening stream,
// re-initialization, its end — from the session's opening headers (spec §4)
// with the upstream's allowlist and credentials in force when each is sent,
// so that an OAuth token refreshed since the session opened is the one
// used. opened is the route as the session opened, used while the index
// has none for it (the session is then about to end anyway).
func (d *Dispatcher) ownHeaders(opened *Route, in Inbound) func(context.Context) (http.Header, error) {
	return func(ctx context.Context) (http.Header, error) {
		r, ok := d.cfg.Directory.Index().Route(opened.ID)
		if !ok || r.Credentials == nil || r.Endpoint != opened.Endpoint {
			r = opened
		}
		headers, err := d.headers(ctx, r, d.allowlist(ctx, r, in), in, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCredentials, err)
		}
		return headers, nil
	}
}

// UpstreamChanged ends the relay sessions of upstream id that cannot go on
// under the index now published: all of them when the upstream left it
// (gone says why, e.g. "deleted" or "disabled"), and those whose upstream
// session lives at an endpoint the upstream no longer has. The others take
// its new allowlist and credentials with their next message. It does not
// block: the registry calls it as it publishes a change, on every instance.
func (d *Dispatcher) UpstreamChanged(id, gone string) {
	for _, rs := range d.relays.of(id) {
		if gone != "" {
			rs.end(fmt.Sprintf("upstream %q was %s", rs.name, gone), true)
			continue
		}
		_, _ = rs.route() // ends it when it can no longer go on
	}
}

// route is the session's upstream as the index has it now, or why the
// session has ended: once its upstream is gone, cannot be relayed to, or
// lives at another endpoint, the session ends for good.
func (rs *RelaySession) route() (*Route, error) {
	if err := rs.Err(); err != nil {
		return nil, err
	}
	r, ok := rs.d.cfg.Directory.Index().Route(rs.id)
	switch {
	case !ok:
		rs.end(fmt.Sprintf("upstream %q is no longer registered or enabled", rs.name), true)
	case r.Dial == nil || r.Credentials == nil:
		rs.end(fmt.Sprintf("upstream %q can no longer be relayed to (its credentials cannot be read)", rs.name), false)
	case r.Endpoint != rs.endpoint:
		rs.end(fmt.Sprintf("upstream %q moved to another address or transport", rs.name), false)
	default:
		return r, nil
	}
	return nil, rs.Err()
}

// end ends the session for reason, once: its requests in flight are
// cancelled, and Done and Err tell its front door, which closes it. gone
// says the upstream left the index (deleted or disabled).
func (rs *RelaySession) end(reason string, gone bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.err != nil {
		return
	}
	rs.err = &relayEnded{reason: reason, gone: gone}
	close(rs.done)
	for _, cancel := range rs.inflight {
		cancel()
	}
}

// relayEnded is why mcpgate ended a relay session, in words for its client;
// gone when its upstream left the index.
type relayEnded struct {
	reason string
	gone   bool
}

func (e *relayEnded) Error() string        { return e.reason + "; initialize a new session" }
func (e *relayEnded) Is(target error) bool { return target == ErrRelayEnded }

// Done is closed when mcpgate ends the session on its own (see Err).
func (rs *RelaySession) Done() <-chan struct{} { return rs.done }

// Err says why mcpgate ended the session, wrapping ErrRelayEnded; nil while
// it goes on.
func (rs *RelaySession) Err() error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.err
}

// ProtocolVersion is the version the upstream agreed to in initialize; the
// client is answered with the same, so both hops speak it.
func (rs *RelaySession) ProtocolVersion() string {
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(rs.conn.InitializeResult(), &r)
	return r.ProtocolVersion
}

// inputPasser is a RelayConn that can pass a 2026-07-28 upstream's
// InputRequiredResult on as it came (*upstream.Client).
type inputPasser interface {
	CallPassingInput(ctx context.Context, req jsonrpc.Message, headers http.Header, onNotification func(jsonrpc.Message)) (jsonrpc.Message, error)
}

// speaksStateless reports whether the session's upstream speaks MCP
// 2026-07-28 (its connection has no session with it, and asks for input
// by InputRequiredResult).
func (rs *RelaySession) speaksStateless() bool {
	v, ok := rs.conn.(interface{ ProtocolVersion() string })
	return ok && v.ProtocolVersion() == protocol.Version20260728
}

// Upstream names the session's upstream.
func (rs *RelaySession) Upstream() string { return rs.name }

// Request relays a client request and returns the upstream's response as it
// came, under the client's id, or a JSON-RPC error naming the upstream.
// What the upstream sends about the request on the way — notifications and
// requests for the client — goes to in.Notify, or to the session's
// onMessage when in.Notify is nil.
func (rs *RelaySession) Request(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	d := rs.d
	if !d.allowed(ctx, rs.id) { // the access rules changed: as if the upstream left
		rs.end(fmt.Sprintf("upstream %q is no longer registered or enabled", rs.name), true)
	}
	r, err := rs.route()
	if err != nil {
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err)))
	}
	deliver := in.Notify
	if deliver == nil {
		deliver = rs.onMessage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := string(msg.ID)
	rs.mu.Lock()
	if rs.err != nil { // ended since route was read
		rs.mu.Unlock()
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", rs.Err())))
	}
	if _, dup := rs.inflight[key]; dup {
		// MCP: a request id MUST NOT have been used before by the same
		// party in the session. Refused rather than relayed: the upstream
		// would answer two calls under one id, and the second would take
		// the first's place here (its cancellation, and its end with the
		// session).
		rs.mu.Unlock()
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"request id %s already in use: a request with this id is still in flight in this session (MCP request ids must be unique within a session)", key)))
	}
	rs.inflight[key] = cancel
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		delete(rs.inflight, key)
		rs.mu.Unlock()
	}()

	call := rs.conn.Call
	if p, ok := rs.conn.(inputPasser); ok && in.passInput {
		call = p.CallPassingInput
	}
	resp := d.exchange(ctx, r, msg, in, func(ctx context.Context, headers http.Header) (jsonrpc.Message, error) {
		return call(ctx, msg, headers, deliver)
	})
	// Cancelled as the session ended: a failure that came back answers a
	// call the upstream was told to drop (an SDK tool answers its cancelled
	// context as an isError result), so the client is told why instead. A
	// result that is not an error stands: the call ran, and a client told
	// otherwise might run it again.
	if err := rs.Err(); err != nil && (resp.Error != nil || toolError(resp.Result)) {
		resp = failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err))
	}
	d.count(msg.Method, r, resp.Error == nil)
	return answerTo(msg, resp)
}

// Listen forwards a 2026-07-28 client's subscriptions/listen to the
// session's 2026-07-28 upstream: what the upstream sends on its stream
// goes to send as it comes, until ctx ends (the client went: the
// upstream's stream is closed) or the upstream ends it, whose answer is
// returned with the client's id as its subscriptionId. Per-hop headers
// are the upstream hop's.
func (rs *RelaySession) Listen(ctx context.Context, msg jsonrpc.Message, in Inbound, send func(jsonrpc.Message)) jsonrpc.Message {
	headers, err := rs.headers(ctx, in, &msg)
	if err != nil {
		return failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err))
	}
	resp, err := rs.conn.Call(ctx, msg, headers, func(m jsonrpc.Message) {
		if m.IsNotification() {
			send(m)
		}
	})
	switch {
	case err != nil && ctx.Err() != nil:
		// The client ended its stream: no failure of the upstream's.
		resp = result(mustJSON(map[string]any{"resultType": protocol.ResultTypeComplete}))
	case err != nil:
		return rs.d.failedRPC(ctx, rs.name, msg.Method, err, in)
	}
	if resp.Error == nil {
		if result, err := protocol.WithMeta(resp.Result, protocol.MetaSubscriptionID, msg.ID); err == nil {
			resp.Result = result
		}
	}
	return resp
}

// Notify relays a client notification. notifications/initialized is not
// sent again (the session sent its own when it opened), and
// notifications/cancelled ends the named request in flight, whose upstream
// client then cancels it upstream by the id the upstream knows it by.
func (rs *RelaySession) Notify(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	switch msg.Method {
	case "notifications/initialized":
		return nil
	case "notifications/cancelled":
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		if err := json.Unmarshal(msg.Params, &p); err != nil || len(p.RequestID) == 0 {
			return fmt.Errorf("notifications/cancelled without a requestId")
		}
		rs.mu.Lock()
		cancel := rs.inflight[string(p.RequestID)]
		rs.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return nil
	}
	return rs.hand(ctx, msg.Method, in, &msg, func(ctx context.Context, headers http.Header) error {
		return rs.conn.Notify(ctx, msg, headers)
	})
}

// Respond relays the client's answer to a request of the upstream's.
func (rs *RelaySession) Respond(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	return rs.hand(ctx, "response", in, &msg, func(ctx context.Context, headers http.Header) error {
		return rs.conn.Respond(ctx, msg, headers)
	})
}

// hand hands the upstream a message that gets no answer with send, within
// the upstream timeout: the front door holds the client's later requests
// until it is handed on (or has failed), so one the upstream does not
// accept must not hold them longer.
func (rs *RelaySession) hand(ctx context.Context, what string, in Inbound, msg *jsonrpc.Message, send func(context.Context, http.Header) error) error {
	headers, err := rs.headers(ctx, in, msg)
	if err != nil {
		return err
	}
	sendCtx, cancel := context.WithTimeout(ctx, rs.d.cfg.Timeout)
	defer cancel()
	if err := send(sendCtx, headers); err != nil {
		switch {
		case sendCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
			err = fmt.Errorf("%w: %w", errTimedOut, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("%w: %w", errCancelled, err)
		}
		return rs.d.failed(ctx, rs.name, what, err, in)
	}
	return nil
}

// headers computes the headers of one message the session sends upstream
// for its client, with the upstream's credentials and allowlist in force
// now (spec §4, §5).
func (rs *RelaySession) headers(ctx context.Context, in Inbound, msg *jsonrpc.Message) (http.Header, error) {
	r, err := rs.route()
	if err != nil {
		return nil, err
	}
	if in.client == nil {
		in.client = rs.client
	}
	headers, err := rs.d.headers(ctx, r, rs.d.allowlist(ctx, r, in), in, msg)
	if err != nil {
		return nil, rs.d.failed(ctx, r.Name, "", fmt.Errorf("%w: %w", errCredentials, err), in)
	}
	return headers, nil
}

// Close ends the upstream session: requests in flight fail, and the
// upstream is told the session is over. Later calls do nothing.
func (rs *RelaySession) Close() error {
	var err error
	rs.closing.Do(func() {
		rs.d.relays.remove(rs)
		err = rs.conn.Close()
	})
	return err
}

// relaySessions are a dispatcher's open relay sessions, by upstream id, so
// that a change to an upstream reaches them.
type relaySessions struct {
	mu   sync.Mutex
	byID map[string]map[*RelaySession]struct{}
}

func (s *relaySessions) add(rs *RelaySession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]map[*RelaySession]struct{}{}
	}
	if s.byID[rs.id] == nil {
		s.byID[rs.id] = map[*RelaySession]struct{}{}
	}
	s.byID[rs.id][rs] = struct{}{}
}

func (s *relaySessions) remove(rs *RelaySession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID[rs.id], rs)
	if len(s.byID[rs.id]) == 0 {
		delete(s.byID, rs.id)
	}
}

// of returns the open sessions of upstream id.
func (s *relaySessions) of(id string) []*RelaySession {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*RelaySession, 0, len(s.byID[id]))
	for rs := range s.byID[id] {
		out = append(out, rs)
	}
	return out
}

// allowlist is r's effective allowlist now (spec §3, §4): read for every
// message, so a change applies to the very next one.
func (d *Dispatcher) allowlist(ctx context.Context, r *Route, in Inbound) *passthrough.Allowlist {
	allow, err := d.cfg.Resolver.Effective(ctx, r.Allowlist)
	if err != nil {
		// spec §4: no allowlist could be read; forward X-Upstream-Authorization only.
		d.cfg.Logger.WarnContext(ctx, "passthrough allowlist unavailable; forwarding X-Upstream-Authorization only",
			"upstream", r.Name, "err", err, "request_id", in.RequestID)
	}
	return allow
}

func (d *Dispatcher) count(method string, r *Route, ok bool) {
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.Request(method, r.Slug, ok)
	}
}

func answerTo(req, resp jsonrpc.Message) jsonrpc.Message {
	resp.JSONRPC, resp.ID = jsonrpc.Version, req.ID
	return resp
}

// toolError reports whether result is a tools/call result marked isError.
func toolError(result json.RawMessage) bool {
	var r struct {
		IsError bool `json:"isError"`
	}
	return len(result) > 0 && json.Unmarshal(result, &r) == nil && r.IsError
}
