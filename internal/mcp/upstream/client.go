package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// Transport names the way an upstream is reached, spelled as ContextForge
// stores it.
type Transport string

// The transports an upstream can speak.
const (
	// StreamableHTTP is the Streamable HTTP transport (MCP 2025-03-26 and
	// later): one endpoint, a POST per message, answers as JSON or as an
	// event stream.
	StreamableHTTP Transport = "STREAMABLEHTTP"
	// SSE is the legacy HTTP+SSE transport (MCP 2024-11-05): a GET opens an
	// event stream whose first "endpoint" event names where to POST.
	SSE Transport = "SSE"
)

// MaxMessageSize bounds one message from an upstream (a JSON body or one
// event); a larger one is an error, not an allocation.
const MaxMessageSize = 16 << 20

const (
	// maxQueuedNotifications bounds the notifications waiting for a slow
	// caller of one call; beyond it they are dropped (and logged).
	maxQueuedNotifications = 1024
	// closeTimeout bounds what ending a session asks of the upstream:
	// cancellations and the DELETE.
	closeTimeout = 5 * time.Second
	// sideTimeout bounds requests mcpgate makes on the side of a call:
	// answers to server requests, cancellation notices, re-initialization
	// from the listening stream.
	sideTimeout = 10 * time.Second
)

// Options configure a Client.
type Options struct {
	// URL is the upstream's MCP endpoint (Streamable HTTP) or its event
	// stream (SSE).
	URL string
	// Transport is how the upstream is reached; empty means StreamableHTTP.
	Transport Transport
	// Headers returns the headers of the requests mcpgate makes for itself
	// (server/discover, initialize, notifications/initialized, the event
	// streams and subscriptions/listen, session re-initialization, answers
	// to the upstream's pings and the final DELETE): the upstream's own
	// credentials, typically, never a client's.
	// It is called for every such request, so a refreshed credential (an
	// OAuth access token) is always the one sent; an error fails that
	// request. Nil sends none. FixedHeaders makes one of a fixed set.
	Headers func(ctx context.Context) (http.Header, error)
	// HTTPClient sends every request; it may be shared between Clients. It
	// should have no Timeout, since event streams are long-lived (every
	// request is bounded by its context). Nil means one of the Client's own
	// from NewHTTPClient, whose idle connections Close releases, with an
	// egress policy that allows private addresses (link-local and metadata
	// addresses stay refused); mcpgate passes its own, with its policy.
	HTTPClient *http.Client
	// OnNotification receives the upstream's notifications that belong to
	// no call, such as notifications/tools/list_changed, and in Relay mode
	// its requests that belong to no call too. It is called from the
	// goroutine reading the stream that carried the message, so it must be
	// safe for concurrent use and must not block for long. Nil drops them
	// (and, on Streamable HTTP, no listening stream is opened at all).
	OnNotification func(jsonrpc.Message)
	// Relay makes the Client a 1:1 relay's upstream side: requests the
	// upstream sends (sampling, elicitation, roots, ping) are handed on,
	// with their ids unchanged, to the Call they arrived in or to
	// OnNotification, and answered by the caller with Respond; notifications
	// that arrive in a call's answer stay with that call, whatever they are
	// about. Without Relay the Client answers ping itself and refuses the
	// rest.
	Relay bool
	// Initialize, when set, is the params of the initialize request to send
	// instead of mcpgate's own: a relayed client's, so the upstream sees
	// that client's capabilities and clientInfo. Its protocolVersion is kept
	// when it is a session-era revision mcpgate speaks and replaced by
	// ProtocolVersion otherwise.
	Initialize json.RawMessage
	// Capabilities, without Initialize, are the client capabilities
	// mcpgate's own initialize declares (a JSON object; nil declares none).
	// A Client that is not a Relay answers roots/list with no roots and
	// refuses sampling and elicitation: there is no client to ask.
	Capabilities json.RawMessage
	// PassInputRequired makes a Call to a 2026-07-28 upstream return an
	// InputRequiredResult as the upstream sent it, for a caller that answers
	// it itself (a client of the same revision, which retries with
	// inputResponses). Without it the Client fulfils it: each input request
	// goes to the caller as the legacy request (sampling/createMessage,
	// elicitation/create, roots/list: see mrtr.go), and the Call is retried
	// with the answers until the upstream completes it.
	PassInputRequired bool
	// SessionOnly skips server/discover and speaks a session revision
	// (initialize) even to an upstream that offers 2026-07-28: for a caller
	// that measures or needs sessions (bench/load's session paths).
	SessionOnly bool
	// ClientName and ClientVersion are the clientInfo sent in initialize,
	// and the User-Agent ClientName/ClientVersion of every request that
	// brings none; empty means "mcpgate" and "dev".
	ClientName, ClientVersion string
	// Logger receives the client's diagnostics; nil discards them. Header
	// values and message bodies are never logged.
	Logger *slog.Logger
}

// FixedHeaders returns an Options.Headers that always gives a copy of h: for
// credentials that never change.
func FixedHeaders(h http.Header) func(context.Context) (http.Header, error) {
	return func(context.Context) (http.Header, error) { return h.Clone(), nil }
}

// Client is a connection to one upstream MCP server: one upstream session,
// shared by every caller, replaced by a new one when the upstream loses it.
// It is the session layer: it rewrites ids per hop, tracks the calls in
// flight, routes the upstream's requests and attributes its notifications,
// whatever the transport; a connection (see connection.go) carries the
// messages. It is safe for concurrent use.
type Client struct {
	opts  Options
	where string     // the URL without credentials or query, for messages
	own   ownHeaders // Options.Headers
	dial  dialer
	hc    *http.Client
	owns  bool // hc is the Client's own
	log   *slog.Logger

	transport Transport

	life      context.Context // ends at Close, last: streams and side requests
	stop      context.CancelFunc
	calling   context.Context // ends at Close, first: the calls in flight and renewals
	stopCalls context.CancelFunc
	wg        sync.WaitGroup // every goroutine the Client starts
	nextID    atomic.Int64

	// renewing is a one-slot lock, held while a session is re-established;
	// Close takes it for good, so a renewal in flight has ended the session
	// it made (it sees closed) before Close returns.
	renewing chan struct{}

	mu     sync.Mutex
	sess   *session
	closed bool
	calls  map[string]*call // in flight, by the id the upstream sees
	tokens map[string]*call // in flight, by the progress token the upstream sees

	// The parts of a 2026-07-28 upstream's session (stateless.go).
	meta   statelessMeta
	tools  toolSchemas
	inputs inputWaits
	listen listening
}

// session is one upstream session. Its fields are fixed once established,
// except ended.
type session struct {
	conn       connection
	version    string // negotiated protocol version; "" until initialized
	initResult json.RawMessage
	// ended is set, under Client.mu, when the connection has said the
	// session is lost.
	ended bool
}

// call is one request in flight.
type call struct {
	method    string
	wireID    json.RawMessage // the id the upstream sees
	wireToken json.RawMessage // the progress token the upstream sees; nil without one
	origToken json.RawMessage // the caller's progress token
	headers   http.Header
	hop       http.Header // per-hop headers of a 2026-07-28 request, see perHop
	sent      atomic.Bool
	sess      *session // guarded by Client.mu

	mu      sync.Mutex
	queue   []jsonrpc.Message // notifications not yet handed to the caller
	resp    *jsonrpc.Message
	err     error
	dropped int
	wake    chan struct{} // one slot: something was queued or the call finished
}

// Connect opens a session with the upstream. On Streamable HTTP it first
// sends server/discover: an upstream that offers protocol.Version20260728
// is spoken to in that revision, with no session (stateless.go). Otherwise
// it sends initialize (asking for ProtocolVersion, with clientInfo and the
// capabilities of Options) and then notifications/initialized. Each goes
// with Options.Headers. ctx bounds the connection, not the Client's life.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("connect to upstream: URL %q is not an http(s) URL", redact(u, opts.URL))
	}
	transport := opts.Transport
	switch transport {
	case "":
		transport = StreamableHTTP
	case StreamableHTTP, SSE:
	default:
		return nil, fmt.Errorf("connect to upstream %s: unknown transport %q (want %q or %q)", redact(u, ""), transport, StreamableHTTP, SSE)
	}
	if opts.ClientName == "" {
		opts.ClientName = "mcpgate"
	}
	if opts.ClientVersion == "" {
		opts.ClientVersion = "dev"
	}
	c := &Client{
		opts:     opts,
		where:    redact(u, ""),
		hc:       opts.HTTPClient,
		renewing: make(chan struct{}, 1),
		calls:    make(map[string]*call),
		tokens:   make(map[string]*call),
	}
	if c.hc == nil {
		// Private addresses allowed: a Client without the gateway's own
		// HTTP client is a test's or a local tool's.
		c.hc, c.owns = NewHTTPClient(egress.LocalPolicy(), opts.Logger), true
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c.log = logger.With("upstream", c.where, "transport", string(transport))
	c.life, c.stop = context.WithCancel(context.Background())
	c.calling, c.stopCalls = context.WithCancel(c.life)
	c.own = opts.Headers
	c.meta = newStatelessMeta(opts)
	c.transport = transport
	hop := &httpHop{hc: c.hc, url: u, where: c.where, userAgent: opts.ClientName + "/" + opts.ClientVersion, own: c.own, log: c.log}
	switch transport {
	case SSE:
		c.dial = sseDialer(hop, c.life)
	default:
		c.dial = streamableDialer(hop, c.life, opts.OnNotification != nil)
	}

	s, err := c.establish(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to upstream %s: %w", c.where, err)
	}
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	s.conn.start()
	if protocol.Stateless(s.version) {
		c.log.Info("upstream speaks the stateless revision: no session", "protocol_version", s.version)
		c.startListening(ctx)
	} else {
		c.log.Info("upstream session established", "protocol_version", s.version)
	}
	return c, nil
}

// Call sends one request and returns the upstream's response, raw.
//
// headers are exactly the headers of this one HTTP request, as the
// passthrough engine computed them; the transport's own headers are then set
// over them (see the package documentation). The request's id is replaced on
// the wire and put back in the response, and so is its progress token.
//
// onNotification (which may be nil) receives, on the calling goroutine, in
// order and before Call returns, the notifications the upstream sends about
// this request. Requests the upstream sends meanwhile are answered by the
// Client: ping with an empty result, anything else with -32601.
//
// A JSON-RPC error response is a response, not a Go error. Errors are: ctx's
// error when it ends first (the upstream is then sent
// notifications/cancelled), ErrClosed, ErrUnreachable when no HTTP answer
// came, a *StatusError for an HTTP status of 400 or more, a *RedirectError
// for a redirect, or a description of what the upstream did wrong. A request
// that meets an expired session (HTTP 404) is retried once on a new one.
func (c *Client) Call(ctx context.Context, req jsonrpc.Message, headers http.Header, onNotification func(jsonrpc.Message)) (jsonrpc.Message, error) {
	if !req.IsRequest() {
		return jsonrpc.Message{}, fmt.Errorf("call upstream %s: the message is not a request (it needs a method and an id)", c.where)
	}
	ctx, release := c.bind(ctx)
	defer release()
	if c.stateless() {
		return c.statelessCall(ctx, req, headers, onNotification)
	}
	cl, body, err := c.newCall(req, headers)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("call %s on upstream %s: %w", req.Method, c.where, err)
	}
	resp, err := c.exchange(ctx, cl, body, onNotification)
	if err != nil {
		if ctx.Err() != nil && cl.sent.Load() && !errors.Is(context.Cause(ctx), ErrClosed) {
			c.sendCancelled(cl, ctx.Err()) // Close cancels its own
		}
		return jsonrpc.Message{}, c.failure(ctx, "call "+req.Method, err)
	}
	resp.ID = req.ID
	return resp, nil
}

// Notify sends one notification, such as notifications/roots/list_changed,
// with exactly the given headers plus the transport's own.
//
// It refuses notifications/cancelled: the upstream knows a call by the id
// the Client gave it, which the caller never sees, and callers' own ids
// collide. Cancel the context of the Call instead; the Client then tells the
// upstream itself.
func (c *Client) Notify(ctx context.Context, msg jsonrpc.Message, headers http.Header) error {
	if !msg.IsNotification() {
		return fmt.Errorf("notify upstream %s: the message is not a notification (it needs a method and no id)", c.where)
	}
	if msg.Method == "notifications/cancelled" {
		return fmt.Errorf("notify upstream %s: notifications/cancelled is not forwarded: cancel the Call's context and the client cancels the request by the id the upstream knows", c.where)
	}
	return c.post(ctx, "notify "+msg.Method, msg, headers, true)
}

// Respond sends the caller's answer to a request the upstream made (Relay
// mode), with exactly the given headers plus the transport's own. The
// answer keeps the id of the request, which the Client handed on unchanged.
func (c *Client) Respond(ctx context.Context, resp jsonrpc.Message, headers http.Header) error {
	if !resp.IsResponse() {
		return fmt.Errorf("respond to upstream %s: the message is not a response (it needs an id and a result or an error)", c.where)
	}
	if c.inputs.answer(resp) {
		return nil // an input request of a 2026-07-28 upstream's, answered here (mrtr.go)
	}
	// Not again on a new session: the request it answers was the old one's.
	return c.post(ctx, "respond", resp, headers, false)
}

// post sends one message that gets no answer (a notification, or a response
// to the upstream's request) on the current session. With renew, a session
// the upstream has lost is replaced and the message sent once more.
func (c *Client) post(ctx context.Context, what string, msg jsonrpc.Message, headers http.Header, renew bool) error {
	ctx, release := c.bind(ctx)
	defer release()
	msg.JSONRPC = jsonrpc.Version
	body, err := jsonrpc.Encode(msg)
	if err != nil {
		return fmt.Errorf("%s on upstream %s: encode: %w", what, c.where, err)
	}
	s, err := c.current(ctx)
	if err == nil {
		err = s.conn.send(ctx, body, headers)
		if renew && errors.Is(err, errSessionLost) {
			if s, err = c.renew(ctx, s); err == nil {
				err = s.conn.send(ctx, body, headers)
			}
		}
	}
	if err != nil {
		return c.failure(ctx, what, err)
	}
	return nil
}

// InitializeResult returns the upstream's initialize result, raw, from the
// current session. For a 2026-07-28 upstream, which has no initialize, it is
// built from its server/discover result in the same shape (capabilities,
// serverInfo, instructions), with the session-era protocolVersion its
// callers speak (Options.Initialize's when mcpgate speaks it, else
// ProtocolVersion), so that they need not tell the eras apart.
func (c *Client) InitializeResult() json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil
	}
	return c.sess.initResult
}

// ProtocolVersion returns the protocol version negotiated with the upstream:
// protocol.Version20260728 for a stateless upstream, whose InitializeResult
// is then made from its server/discover result (stateless.go).
func (c *Client) ProtocolVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.version
}

// Close ends the Client: calls in flight fail at once with ErrClosed, the
// upstream is sent notifications/cancelled for each, the session is ended (on
// Streamable HTTP with DELETE; a 405 answer is fine), and Close returns once
// every goroutine of the Client has stopped. A session a renewal in flight
// opens meanwhile is ended too, before Close returns. It is idempotent; the
// error, if any, is the DELETE's. The upstream is given at most 5s.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var abandoned []*call
	for _, cl := range c.calls {
		if cl.method != "initialize" && cl.sent.Load() {
			abandoned = append(abandoned, cl)
		}
	}
	c.mu.Unlock()

	c.stopCalls() // the calls, and any renewal in flight with them
	ctx, cancel := context.WithTimeout(c.life, closeTimeout)
	defer cancel()
	// Wait for a renewal in flight: seeing closed, it ends the session it
	// made rather than install it. Taken for good, the slot also keeps any
	// later renewal from starting.
	select {
	case c.renewing <- struct{}{}:
	case <-ctx.Done():
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	for _, cl := range abandoned {
		c.postCancelled(ctx, cl, ErrClosed)
	}
	var err error
	if s != nil {
		err = s.conn.close(ctx)
	}
	c.stop() // event streams, side requests
	c.wg.Wait()
	if c.owns {
		c.hc.CloseIdleConnections()
	}
	return err
}

// bind ties ctx to the Client's life, so that Close ends the call.
func (c *Client) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.calling, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

// failure words the error of an operation, preferring the context's reason.
func (c *Client) failure(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(context.Cause(ctx), ErrClosed) || errors.Is(err, ErrClosed):
		err = ErrClosed
	case ctx.Err() != nil:
		err = ctx.Err()
	}
	return fmt.Errorf("%s on upstream %s: %w", what, c.where, err)
}

// goTracked runs f on a goroutine that Close waits for; after Close it does
// nothing and reports false.
func (c *Client) goTracked(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// newCall prepares req for the wire: a fresh id, a fresh progress token.
func (c *Client) newCall(req jsonrpc.Message, headers http.Header) (*call, []byte, error) {
	wireID := json.RawMessage(strconv.AppendInt(nil, c.nextID.Add(1), 10))
	cl := &call{
		method:  req.Method,
		wireID:  wireID,
		headers: headers.Clone(),
		wake:    make(chan struct{}, 1),
	}
	params := req.Params
	if p, old, ok := protocol.SwapProgressToken(params, wireID); ok {
		params, cl.origToken, cl.wireToken = p, old, wireID
	}
	body, err := jsonrpc.Encode(jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: wireID, Method: req.Method, Params: params})
	if err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	return cl, body, nil
}

// initializeParams are mcpgate's own initialize params, or the relayed
// client's (Options.Initialize) with a protocol version mcpgate speaks.
func (c *Client) initializeParams() (json.RawMessage, error) {
	if c.opts.Initialize == nil {
		var caps any = struct{}{}
		if c.opts.Capabilities != nil {
			caps = c.opts.Capabilities
		}
		return json.Marshal(map[string]any{
			"protocolVersion": ProtocolVersion,
			"capabilities":    caps,
			"clientInfo":      map[string]string{"name": c.opts.ClientName, "version": c.opts.ClientVersion},
		})
	}
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(c.opts.Initialize, &p); err != nil {
		return nil, fmt.Errorf("the initialize params are not an object: %w", err)
	}
	if sessionVersion(p.ProtocolVersion) {
		return c.opts.Initialize, nil
	}
	version, _ := json.Marshal(ProtocolVersion)
	return setTopLevel(c.opts.Initialize, "protocolVersion", version), nil
}

// accept checks the initialize response and records it in s.
func (c *Client) accept(s *session, resp jsonrpc.Message) error {
	if resp.Error != nil {
		return fmt.Errorf("initialize: the upstream refused: %w", resp.Error)
	}
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(resp.Result, &r); err != nil {
		return fmt.Errorf("initialize: the result is not an initialize result: %w", err)
	}
	if !sessionVersion(r.ProtocolVersion) {
		return fmt.Errorf("initialize: the upstream speaks MCP protocol version %q; mcpgate asked for %s and accepts %s", r.ProtocolVersion, ProtocolVersion, protocol.SupportedList())
	}
	s.version, s.initResult = r.ProtocolVersion, resp.Result
	return nil
}

// establish opens a new session: a connection, then initialize and
// notifications/initialized on it. A connection that fails half-way is
// closed (bounded by closeTimeout even when ctx has ended: a session the
// upstream opened is ended, not leaked). The session is not started: its
// owner starts it once it is in place.
func (c *Client) establish(ctx context.Context) (*session, error) {
	s := &session{}
	conn, err := c.dial(ctx, &link{c: c, s: s})
	if err != nil {
		return nil, err
	}
	s.conn = conn
	if c.transport == StreamableHTTP && !c.opts.SessionOnly {
		// server/discover first (MCP 2026-07-28 server/discover, and
		// versioning: a client of both eras probes with it): a 2026-07-28
		// upstream needs no handshake.
		stateless, err := c.discover(ctx, s)
		if err != nil {
			c.end(ctx, s)
			return nil, err
		}
		if stateless {
			return s, nil
		}
	}
	if err := c.handshake(ctx, s); err != nil {
		c.end(ctx, s)
		return nil, err
	}
	return s, nil
}

// handshake initializes the session s (MCP basic/lifecycle).
func (c *Client) handshake(ctx context.Context, s *session) error {
	params, err := c.initializeParams()
	if err != nil {
		return fmt.Errorf("encode initialize: %w", err)
	}
	own, err := c.own.get(ctx)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	cl, body, err := c.newCall(jsonrpc.Message{Method: "initialize", ID: json.RawMessage("0"), Params: params}, own)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	resp, err := c.attempt(ctx, s, cl, body, nil)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if err := c.accept(s, resp); err != nil {
		return err
	}
	s.conn.negotiated(s.version)
	// The listening stream first: a server may speak on it as soon as it
	// has notifications/initialized.
	s.conn.openListening(ctx)
	body, err = jsonrpc.Encode(jsonrpc.Message{JSONRPC: jsonrpc.Version, Method: "notifications/initialized"})
	if err != nil {
		return fmt.Errorf("encode notifications/initialized: %w", err)
	}
	if own, err = c.own.get(ctx); err == nil {
		err = s.conn.send(ctx, body, own)
	}
	if err != nil {
		return fmt.Errorf("notifications/initialized: %w", err)
	}
	return nil
}

// end ends a session that is not, or no longer, current. It is bounded by
// closeTimeout and not by ctx, which may have ended already: the upstream is
// told even then.
func (c *Client) end(ctx context.Context, s *session) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := s.conn.close(ctx); err != nil {
		c.log.Debug("could not end an upstream session", "error", err)
	}
}

// current returns the session to send on, replacing one that is lost.
func (c *Client) current(ctx context.Context) (*session, error) {
	c.mu.Lock()
	s, closed := c.sess, c.closed
	ended := s != nil && s.ended
	c.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case ended:
		return c.renew(ctx, s)
	}
	return s, nil
}

// renew replaces the session stale with a new one, unless another caller
// already has. Callers queue for it; each attempt is bounded by its caller's
// ctx. A session made as the Client closes is ended here, never installed.
func (c *Client) renew(ctx context.Context, stale *session) (*session, error) {
	select {
	case c.renewing <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.renewing }()

	c.mu.Lock()
	cur, closed := c.sess, c.closed
	fresh := cur != stale && !cur.ended
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if fresh {
		return cur, nil
	}
	c.log.Info("upstream session lost; initializing a new one")
	s, err := c.establish(ctx)
	if err != nil {
		return nil, fmt.Errorf("re-initialize: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.end(ctx, s) // Close waits for this (it takes the renewing slot)
		return nil, ErrClosed
	}
	c.sess = s
	c.mu.Unlock()
	s.conn.start()
	c.end(ctx, stale)
	c.log.Info("upstream session re-established", "protocol_version", s.version)
	return s, nil
}

// exchange sends a prepared request and waits for its response, retrying
// once on a new session when the session turns out to be lost.
func (c *Client) exchange(ctx context.Context, cl *call, body []byte, onNote func(jsonrpc.Message)) (jsonrpc.Message, error) {
	s, err := c.current(ctx)
	if err != nil {
		return jsonrpc.Message{}, err
	}
	resp, err := c.attempt(ctx, s, cl, body, onNote)
	if errors.Is(err, errSessionLost) && ctx.Err() == nil {
		if s, err = c.renew(ctx, s); err != nil {
			return jsonrpc.Message{}, err
		}
		resp, err = c.attempt(ctx, s, cl, body, onNote)
	}
	return resp, err
}

// attempt sends a prepared request once, on s.
func (c *Client) attempt(ctx context.Context, s *session, cl *call, body []byte, onNote func(jsonrpc.Message)) (jsonrpc.Message, error) {
	if err := c.track(s, cl); err != nil {
		return jsonrpc.Message{}, err
	}
	defer c.untrack(cl)
	cl.sent.Store(true)
	return s.conn.roundTrip(ctx, cl, body, func(m jsonrpc.Message) { c.deliver(cl, m, onNote) })
}

// track registers cl as in flight on s.
func (c *Client) track(s *session, cl *call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if s.ended {
		return fmt.Errorf("%w: its connection has ended", errSessionLost)
	}
	cl.sess = s
	cl.mu.Lock()
	cl.queue, cl.resp, cl.err = nil, nil, nil
	cl.mu.Unlock()
	c.calls[idKey(cl.wireID)] = cl
	if cl.wireToken != nil {
		c.tokens[idKey(cl.wireToken)] = cl
	}
	return nil
}

func (c *Client) untrack(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.calls, idKey(cl.wireID))
	if cl.wireToken != nil {
		delete(c.tokens, idKey(cl.wireToken))
	}
	cl.mu.Lock()
	dropped := cl.dropped
	cl.mu.Unlock()
	if dropped > 0 {
		c.log.Warn("dropped notifications for a slow caller", "method", cl.method, "dropped", dropped)
	}
}

// sendCancelled tells the upstream, in the background, that the caller gave
// up on cl.
func (c *Client) sendCancelled(cl *call, reason error) {
	c.goTracked(func() {
		ctx, cancel := context.WithTimeout(c.life, sideTimeout)
		defer cancel()
		c.postCancelled(ctx, cl, reason)
	})
}

// postCancelled sends notifications/cancelled for cl (MCP
// basic/utilities/cancellation), by the id the upstream knows, on the session
// cl was sent on and with the caller's headers: it is sent on the caller's
// behalf, as the request was (spec §5).
func (c *Client) postCancelled(ctx context.Context, cl *call, reason error) {
	c.mu.Lock()
	s := cl.sess
	c.mu.Unlock()
	if cl.method == "initialize" || s == nil { // initialize may not be cancelled
		return
	}
	if protocol.Stateless(s.version) {
		// MCP 2026-07-28 over HTTP: closing the request's stream is the
		// cancellation, which ending its context has done; no notice.
		return
	}
	msg, err := jsonrpc.NewNotification("notifications/cancelled", map[string]any{
		"requestId": cl.wireID,
		"reason":    reason.Error(),
	})
	if err != nil {
		return
	}
	body, err := jsonrpc.Encode(msg)
	if err != nil {
		return
	}
	if err := s.conn.send(ctx, body, cl.headers); err != nil {
		c.log.Debug("could not send notifications/cancelled", "method", cl.method, "error", err)
	}
}

// deliver hands a notification about cl to the caller, with the caller's own
// progress token back in place.
func (c *Client) deliver(cl *call, m jsonrpc.Message, onNote func(jsonrpc.Message)) {
	if onNote == nil {
		return
	}
	if m.Method == "notifications/progress" && cl.wireToken != nil {
		if tok, ok := jsonrpc.Member(m.Params, "progressToken"); ok && idKey(tok) == idKey(cl.wireToken) {
			m.Params = setTopLevel(m.Params, "progressToken", cl.origToken)
		}
	}
	onNote(m)
}

// notifyGlobal hands a notification that belongs to no call to
// Options.OnNotification.
func (c *Client) notifyGlobal(m jsonrpc.Message) {
	if m.Method == "notifications/tools/list_changed" {
		c.tools.forget() // the schemas of a 2026-07-28 upstream's tools, stateless.go
	}
	if c.opts.OnNotification != nil {
		c.opts.OnNotification(m)
	}
}

// sessionScoped reports whether a notification concerns the whole session,
// wherever the upstream sent it.
func sessionScoped(method string) bool {
	return strings.HasSuffix(method, "/list_changed") || method == "notifications/resources/updated"
}

// link is the session layer's side of one connection: the inbox of
// session s.
type link struct {
	c *Client
	s *session
}

func (l *link) goTracked(f func()) bool { return l.c.goTracked(f) }

// shared handles a message from a stream shared by every call: the legacy
// event stream, or the Streamable HTTP listening stream.
func (l *link) shared(m jsonrpc.Message, only bool) {
	c := l.c
	switch {
	case m.IsRequest() && c.opts.Relay:
		c.notifyGlobal(m)
	case m.IsRequest():
		c.goTracked(func() {
			ctx, cancel := context.WithTimeout(c.life, sideTimeout)
			defer cancel()
			own, err := c.own.get(ctx)
			if err != nil {
				c.log.Debug("could not answer a request from the upstream", "method", m.Method, "error", err)
				return
			}
			c.answer(ctx, l.s, m, own)
		})
	case m.IsNotification():
		if cl := c.attribute(l.s, m, only); cl != nil && cl.push(m) {
			return
		}
		c.notifyGlobal(m)
	default: // a response
		c.mu.Lock()
		cl := c.calls[idKey(m.ID)]
		c.mu.Unlock()
		if cl == nil {
			c.log.Debug("dropped a response to no call in flight")
			return
		}
		cl.finish(&m, nil)
	}
}

// inCall handles a message that came in the answer to cl's request; it
// returns cl's response when m is it.
func (l *link) inCall(ctx context.Context, cl *call, m jsonrpc.Message, deliver func(jsonrpc.Message)) *jsonrpc.Message {
	c := l.c
	switch {
	case m.IsRequest() && c.opts.Relay:
		// The relayed client answers it, through Respond.
		cl.drain(deliver)
		deliver(m)
	case m.IsRequest():
		// On behalf of the caller, so with the caller's headers (the
		// upstream may well require its credentials).
		c.answer(ctx, l.s, m, cl.headers)
	case m.IsNotification():
		if sessionScoped(m.Method) && !c.opts.Relay {
			c.notifyGlobal(m)
			return nil
		}
		cl.drain(deliver)
		deliver(m)
	default: // a response
		if idKey(m.ID) == idKey(cl.wireID) || (idKey(m.ID) == "null" && m.Error != nil) {
			return &m
		}
		l.shared(m, false) // another call's, strangely: give it to its owner
	}
	return nil
}

// lost marks the session lost: no new call goes on it, and the next one
// opens a new session.
func (l *link) lost(err error) {
	c := l.c
	c.mu.Lock()
	l.s.ended = true
	current := c.sess == l.s && !c.closed
	c.mu.Unlock()
	if current { // not when Close or a newer session ended it
		c.log.Warn("upstream session lost; the next call opens a new one", "error", err)
	}
}

// replace re-establishes the lost session for a connection that listens,
// bounded by sideTimeout and ended by Close.
func (l *link) replace() bool {
	c := l.c
	ctx, cancel := context.WithTimeout(c.calling, sideTimeout)
	defer cancel()
	s, err := c.renew(ctx, l.s)
	if err != nil {
		c.log.Debug("listening stream: could not re-initialize", "error", err)
		return false
	}
	return s != l.s
}

// attribute finds the call a notification on a shared stream is about.
// only says the stream is the session's only one.
func (c *Client) attribute(s *session, m jsonrpc.Message, only bool) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.Method {
	case "notifications/progress":
		if tok, ok := jsonrpc.Member(m.Params, "progressToken"); ok {
			return c.tokens[idKey(tok)]
		}
	case "notifications/message":
		// The legacy transport does not say which request a log message is
		// about. When one call is in flight it can only be about that one
		// (or about none, which is no harm to tell its caller). Where calls
		// have answer streams of their own, a log message outside them is
		// about none.
		if !only {
			return nil
		}
		var sole *call
		for _, cl := range c.calls {
			if cl.sess == s {
				if sole != nil {
					return nil
				}
				sole = cl
			}
		}
		return sole
	}
	return nil
}

// answer replies to a request from the upstream: ping is answered, the rest
// refused (mcpgate does not relay sampling, elicitation or roots yet).
func (c *Client) answer(ctx context.Context, s *session, req jsonrpc.Message, headers http.Header) {
	body, err := jsonrpc.Encode(ownAnswer(req))
	if err == nil {
		err = s.conn.send(ctx, body, headers)
	}
	if err != nil {
		c.log.Debug("could not answer a request from the upstream", "method", req.Method, "error", err)
	}
}

// ownAnswer is the answer of a connection with no client behind it to a
// request of the upstream's: ping is answered, roots/list with no roots, the
// rest refused.
func ownAnswer(req jsonrpc.Message) jsonrpc.Message {
	var resp jsonrpc.Message
	switch req.Method {
	case "ping":
		resp, _ = jsonrpc.NewResult(req.ID, nil)
	case "roots/list":
		// Declared (Options.Capabilities) so that the upstream lists what
		// needs roots; a connection of mcpgate's own has none to give.
		resp, _ = jsonrpc.NewResult(req.ID, map[string]any{"roots": []any{}})
	default:
		resp = jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound,
			"%s: this connection is mcpgate's own, with no client to ask (clients reach the upstream on sessions of their own)", req.Method))
	}
	return resp
}

// push queues a notification for the caller; false when the call is over or
// its queue is full.
func (cl *call) push(m jsonrpc.Message) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.resp != nil || cl.err != nil {
		return false
	}
	if len(cl.queue) >= maxQueuedNotifications {
		cl.dropped++
		return true
	}
	cl.queue = append(cl.queue, m)
	cl.signal()
	return true
}

// finish records the outcome of the call; the first one counts.
func (cl *call) finish(resp *jsonrpc.Message, err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.resp != nil || cl.err != nil {
		return
	}
	cl.resp, cl.err = resp, err
	cl.signal()
}

func (cl *call) signal() {
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// take returns the queued notifications and, if the call is over, its
// outcome. Every notification queued before the outcome comes with it or
// before it.
func (cl *call) take() ([]jsonrpc.Message, *jsonrpc.Message, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	q := cl.queue
	cl.queue = nil
	return q, cl.resp, cl.err
}

// drain hands the queued notifications to deliver.
func (cl *call) drain(deliver func(jsonrpc.Message)) {
	cl.mu.Lock()
	q := cl.queue
	cl.queue = nil
	cl.mu.Unlock()
	for _, m := range q {
		deliver(m)
	}
}

// wait delivers cl's notifications until it has an outcome, ctx ends, or
// the stream its answer would come on ends (closed): then errStreamEnded,
// unless the answer came first.
func (cl *call) wait(ctx context.Context, closed <-chan struct{}, deliver func(jsonrpc.Message)) (jsonrpc.Message, error) {
	for ended := false; ; {
		q, resp, err := cl.take()
		for _, m := range q {
			deliver(m)
		}
		switch {
		case err != nil:
			return jsonrpc.Message{}, err
		case resp != nil:
			return *resp, nil
		case ended:
			return jsonrpc.Message{}, errStreamEnded
		}
		select {
		case <-cl.wake:
		case <-closed:
			ended = true // once more round: what came before the end counts
		case <-ctx.Done():
			return jsonrpc.Message{}, ctx.Err()
		}
	}
}

// redact returns u without credentials, query or fragment: safe to log and to
// put in errors. raw is shown when u could not be parsed.
func redact(u *url.URL, raw string) string {
	if u == nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i]
		}
		if i := strings.Index(raw, "@"); i >= 0 {
			raw = raw[i+1:]
		}
		return raw
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
