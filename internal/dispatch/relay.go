package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
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
// relayed to: disabled, or its credentials unreadable.
var ErrNotRelayable = errors.New("the upstream cannot be relayed to")

// RelaySession is one client session of the 1:1 relay. It is safe for
// concurrent use: a client may have many requests in flight.
type RelaySession struct {
	d         *Dispatcher
	route     *Route
	conn      RelayConn
	onMessage func(jsonrpc.Message)

	mu       sync.Mutex
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
	r, ok := d.cfg.Directory.Index().Route(upstreamID)
	if !ok {
		return nil, jsonrpc.Message{}, fmt.Errorf("%w: %q", ErrNoUpstream, upstreamID)
	}
	if r.Dial == nil || r.Credentials == nil {
		reason := r.Unavailable
		if reason == "" {
			reason = "it has no relay connector"
		}
		return nil, jsonrpc.Message{}, fmt.Errorf("upstream %q: %w: %s", r.Name, ErrNotRelayable, reason)
	}
	allow := d.allowlist(ctx, r, in)
	var conn RelayConn
	for attempt := 0; ; attempt++ {
		headers, err := d.headers(ctx, r, allow, in)
		if err != nil {
			return nil, jsonrpc.Message{}, fmt.Errorf("upstream %q: cannot get its credentials: %w", r.Name, err)
		}
		dctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		conn, err = r.Dial(dctx, initialize.Params, headers, onMessage)
		cancel()
		if status, ok := httpStatus(err); ok && status == http.StatusUnauthorized && r.Upstream.AuthType == passthrough.AuthOAuth && attempt == 0 {
			r.Credentials.Invalidate()
			continue
		}
		if err != nil {
			d.count("initialize", r, false)
			return nil, jsonrpc.Message{}, fmt.Errorf("upstream %q: %w", r.Name, err)
		}
		break
	}
	d.count("initialize", r, true)
	rs := &RelaySession{d: d, route: r, conn: conn, onMessage: onMessage, inflight: map[string]context.CancelFunc{}}
	answer := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: initialize.ID, Result: conn.InitializeResult()}
	return rs, answer, nil
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

// Upstream names the session's upstream.
func (rs *RelaySession) Upstream() string { return rs.route.Name }

// Request relays a client request and returns the upstream's response as it
// came, under the client's id, or a JSON-RPC error naming the upstream.
// What the upstream sends about the request on the way — notifications and
// requests for the client — goes to in.Notify, or to the session's
// onMessage when in.Notify is nil.
func (rs *RelaySession) Request(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	d, r := rs.d, rs.route
	deliver := in.Notify
	if deliver == nil {
		deliver = rs.onMessage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := string(msg.ID)
	rs.mu.Lock()
	rs.inflight[key] = cancel
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		delete(rs.inflight, key)
		rs.mu.Unlock()
	}()

	resp := d.exchange(ctx, r, msg, in, func(ctx context.Context, headers http.Header) (jsonrpc.Message, error) {
		return rs.conn.Call(ctx, msg, headers, deliver)
	})
	d.count(msg.Method, r, resp.Error == nil)
	return answerTo(msg, resp)
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
	headers, err := rs.headers(ctx, in)
	if err != nil {
		return err
	}
	return rs.conn.Notify(ctx, msg, headers)
}

// Respond relays the client's answer to a request of the upstream's.
func (rs *RelaySession) Respond(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	headers, err := rs.headers(ctx, in)
	if err != nil {
		return err
	}
	return rs.conn.Respond(ctx, msg, headers)
}

// headers computes the headers of one message the session sends upstream
// for its client, under the allowlist in force now (spec §5).
func (rs *RelaySession) headers(ctx context.Context, in Inbound) (http.Header, error) {
	headers, err := rs.d.headers(ctx, rs.route, rs.d.allowlist(ctx, rs.route, in), in)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: cannot get its credentials: %w", rs.route.Name, err)
	}
	return headers, nil
}

// Close ends the upstream session: requests in flight fail, and the
// upstream is told the session is over.
func (rs *RelaySession) Close() error { return rs.conn.Close() }

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
