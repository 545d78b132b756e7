// Package dispatch is federation: it answers a client's JSON-RPC message
// from the federated catalogue, or routes it to the upstream that owns the
// tool, resource or prompt, with headers decided by the passthrough engine.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/access"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/metrics"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Directory gives the current federated catalogue. The registry is one.
type Directory interface {
	Index() *Index
}

// Config is what a Dispatcher needs.
type Config struct {
	Directory Directory
	Policy    *passthrough.Policy
	Resolver  *passthrough.AllowlistResolver
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	// Timeout bounds each upstream request (UPSTREAM_TIMEOUT).
	Timeout time.Duration
	// ServerName and ServerVersion answer initialize.
	ServerName, ServerVersion string
	// MaxUpstreamSessions bounds the federated client sessions open with
	// each upstream (MAX_UPSTREAM_SESSIONS_PER_UPSTREAM); 0 means
	// DefaultMaxUpstreamSessions.
	MaxUpstreamSessions int
	// Access gives what the client of a request's context may use; nil:
	// every upstream (see view).
	Access func(context.Context) access.Grant
	// Assertions signs the identity assertion of the upstreams that ask for
	// one (docs/identity-assertion.md), sent in AssertionHeader
	// (IDENTITY_ASSERTION_HEADER; "" means X-Mcpgate-Identity). Nil: such
	// an upstream's requests fail, saying why.
	Assertions      *auth.AssertionKeys
	AssertionHeader string
}

// Dispatcher answers client messages. It is safe for concurrent use.
type Dispatcher struct {
	cfg      Config
	results  sync.Pool // *passthrough.Result, reused between calls
	problems listProblems
	relays   relaySessions
	fed      federationCounts
	views    viewCache
}

// New returns a dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	d := &Dispatcher{cfg: cfg}
	d.results.New = func() any { return new(passthrough.Result) }
	return d
}

// Inbound is where a client message comes from.
type Inbound struct {
	// Header is what the passthrough engine reads as the client's request
	// headers: the HTTP request's, or a session's opening headers (spec §4).
	Header http.Header
	// Notify receives notifications an upstream sends while answering
	// (progress, logging); nil drops them.
	Notify func(jsonrpc.Message)
	// RequestID identifies the HTTP request in logs.
	RequestID string
	// session is the client's federated session, whose upstream sessions
	// carry what is routed to an upstream; nil: the shared ones.
	session *FederatedSession
	// client is who opened the relay session this message goes on, for
	// an identity assertion when the request's context has none.
	client *auth.Identity
	// ask, when set, takes an upstream's request to the client in the
	// middle of a call on a pooled session (Stateless, MRTR); nil refuses
	// it (PrincipalSessions.answer).
	ask func(pooledSession, jsonrpc.Message)
	// passInput has a relay session to a 2026-07-28 upstream pass its
	// InputRequiredResult to the client as it came, and the client's
	// retry to the upstream as it is (a 2026-07-28 client's, Stateless).
	passInput bool
}

// Handle answers one message. A notification gets no answer (ok false).
func (d *Dispatcher) Handle(ctx context.Context, msg jsonrpc.Message, in Inbound) (resp jsonrpc.Message, ok bool) {
	if msg.IsNotification() {
		return jsonrpc.Message{}, false // initialized, cancelled, roots/list_changed: nothing to route yet
	}
	resp, upstream := d.handle(ctx, msg, in)
	resp.JSONRPC, resp.ID = jsonrpc.Version, msg.ID
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.Request(msg.Method, upstream, resp.Error == nil)
	}
	return resp, true
}

func (d *Dispatcher) handle(ctx context.Context, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, string) {
	ix := d.view(ctx)
	switch msg.Method {
	case "initialize":
		return d.initialize(ix, msg), ""
	case "ping", "logging/setLevel":
		return result(json.RawMessage("{}")), ""
	case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
		return result(ix.lists[msg.Method]), ""
	case "tools/call", "prompts/get":
		return d.byName(ctx, ix, msg, in)
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return d.byURI(ctx, ix, msg, in)
	case "completion/complete":
		return d.completion(ctx, ix, msg, in)
	}
	return failure(jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q is not supported by mcpgate", msg.Method)), ""
}

func result(r json.RawMessage) jsonrpc.Message { return jsonrpc.Message{Result: r} }

func failure(e *jsonrpc.Error) jsonrpc.Message { return jsonrpc.Message{Error: e} }

// byName routes tools/call and prompts/get by their prefixed name.
func (d *Dispatcher) byName(ctx context.Context, ix *Index, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, string) {
	kind, table := "tool", ix.tools
	if msg.Method == "prompts/get" {
		kind, table = "prompt", ix.prompts
	}
	name, perr := stringParam(msg, "name")
	if perr != nil {
		return failure(perr), ""
	}
	e, ok := ix.named(table, name)
	if !ok { // no upstream's prefix: the go-sdk server's code and words (MCP server/tools, error handling)
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown %s %q", kind, name)), ""
	}
	params, err := jsonrpc.WithStringMember(msg.Params, "name", e.name)
	if err != nil {
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: %v", msg.Method, err)), e.route.Slug
	}
	msg.Params = params
	return d.send(ctx, e.route, msg, in), e.route.Slug
}

// byURI routes resources/read and (un)subscribe by the resource's URI.
func (d *Dispatcher) byURI(ctx context.Context, ix *Index, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, string) {
	uri, perr := stringParam(msg, "uri")
	if perr != nil {
		return failure(perr), ""
	}
	r, own, ok := ix.resourceRoute(uri)
	if !ok {
		r, ok = in.session.linkRoute(ix, uri) // a resource one of its tool results linked to
		own = uri
	}
	if !ok {
		return failure(&jsonrpc.Error{Code: jsonrpc.CodeResourceNotFound, Message: fmt.Sprintf("unknown resource %q", uri),
			Data: mustJSON(map[string]string{"uri": uri})}), ""
	}
	if own != uri {
		return d.forwardScoped(ctx, r, msg, in, uri, own), r.Slug
	}
	return d.send(ctx, r, msg, in), r.Slug
}

// completion routes completion/complete by its reference: a prompt's
// prefixed name or a resource's URI.
func (d *Dispatcher) completion(ctx context.Context, ix *Index, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, string) {
	ref, ok := jsonrpc.Member(msg.Params, "ref")
	if !ok {
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "completion/complete: params.ref is missing")), ""
	}
	typ, _ := jsonrpc.StringMember(ref, "type")
	switch typ {
	case "ref/prompt":
		name, _ := jsonrpc.StringMember(ref, "name")
		e, ok := ix.named(ix.prompts, name)
		if !ok {
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown prompt %q", name)), ""
		}
		newRef, err := jsonrpc.WithStringMember(ref, "name", e.name)
		if err == nil {
			msg.Params, err = jsonrpc.WithMember(msg.Params, "ref", newRef)
		}
		if err != nil {
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "completion/complete: %v", err)), ""
		}
		return d.send(ctx, e.route, msg, in), e.route.Slug
	case "ref/resource":
		uri, _ := jsonrpc.StringMember(ref, "uri")
		r, own, ok := ix.resourceRoute(uri)
		if !ok {
			return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown resource %q", uri)), ""
		}
		if own != uri {
			newRef, err := jsonrpc.WithStringMember(ref, "uri", own)
			if err == nil {
				msg.Params, err = jsonrpc.WithMember(msg.Params, "ref", newRef)
			}
			if err != nil {
				return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "completion/complete: %v", err)), ""
			}
		}
		return d.send(ctx, r, msg, in), r.Slug
	}
	return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "completion/complete: unknown ref type %q", typ)), ""
}

// stringParam returns the string member key of msg's params, which a
// request is routed on, or the error that answers it: missing, not a
// string, or given twice (a decoded message never has a key twice, see
// jsonrpc.CheckKeys; this holds for one built any other way).
func stringParam(msg jsonrpc.Message, key string) (string, *jsonrpc.Error) {
	start, end, err := jsonrpc.MemberSpan(msg.Params, key)
	switch {
	case errors.Is(err, jsonrpc.ErrDuplicateKey):
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: %v in params", err)
	case err != nil && len(msg.Params) > 0:
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: params must be an object", msg.Method)
	case err != nil || start < 0:
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: params.%s is missing", msg.Method, key)
	}
	var s string
	if json.Unmarshal(msg.Params[start:end], &s) != nil {
		return "", jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: params.%s must be a string", msg.Method, key)
	}
	return s, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// Forward sends msg to the upstream of r with the headers the passthrough
// engine decides for it (spec §2, §5), and returns the upstream's answer as
// it came, or a JSON-RPC error naming the upstream (see failed). An OAuth
// upstream that answers 401 gets one retry with a fresh token.
func (d *Dispatcher) Forward(ctx context.Context, r *Route, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if r.Caller == nil {
		return d.failedRPC(ctx, r.Name, msg.Method, fmt.Errorf("%w: %s", errUnavailable, r.Unavailable), in)
	}
	return d.exchange(ctx, r, msg, in, func(ctx context.Context, headers http.Header) (jsonrpc.Message, error) {
		return r.Caller.Call(ctx, msg, headers, in.Notify)
	})
}

// exchange sends msg to r's upstream with send: with the headers the engine
// decides for it under the allowlist in force now, bounded by the upstream
// timeout, and once more with a fresh token when an OAuth upstream answers
// 401. It returns the upstream's answer, or a JSON-RPC error naming the
// upstream.
func (d *Dispatcher) exchange(ctx context.Context, r *Route, msg jsonrpc.Message, in Inbound, send func(context.Context, http.Header) (jsonrpc.Message, error)) jsonrpc.Message {
	allow := d.allowlist(ctx, r, in)
	for attempt := 0; ; attempt++ {
		headers, err := d.headers(ctx, r, allow, in, &msg)
		if err != nil {
			return d.failedRPC(ctx, r.Name, msg.Method, fmt.Errorf("%w: %w", errCredentials, err), in)
		}
		callCtx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		start := time.Now()
		resp, err := send(callCtx, headers)
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.UpstreamLatency(r.Slug, msg.Method, time.Since(start))
		}
		deadline := callCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if err == nil {
			return resp
		}
		status, isHTTP := httpStatus(err)
		if isHTTP && status == http.StatusUnauthorized && r.Upstream.AuthType == passthrough.AuthOAuth && attempt == 0 {
			r.Credentials.Invalidate()
			continue
		}
		switch {
		case deadline:
			err = fmt.Errorf("%w: %w", errTimedOut, err)
		case ctx.Err() != nil:
			err = fmt.Errorf("%w: %w", errCancelled, err)
		}
		return d.failedRPC(ctx, r.Name, msg.Method, err, in)
	}
}

// headers computes the headers of one upstream request on behalf of a
// client: r's base headers and what the passthrough engine forwards of the
// client's (spec §2), with the decisions counted and logged, and the
// identity assertion of msg when r asks for one (nil msg: a request the
// upstream session makes for itself).
func (d *Dispatcher) headers(ctx context.Context, r *Route, allow *passthrough.Allowlist, in Inbound, msg *jsonrpc.Message) (http.Header, error) {
	base, err := r.Credentials.BaseHeaders(ctx)
	if err != nil {
		return nil, err
	}
	res := d.results.Get().(*passthrough.Result)
	d.cfg.Policy.ComputeInto(res, passthrough.Call{Request: in.Header, Base: base, Allowlist: allow, Upstream: r.Upstream})
	d.record(ctx, r, res, d.problemsOf(ctx, r, allow), in)
	headers := res.HTTPHeader()
	err = d.assert(ctx, r, res, headers, in, msg)
	d.results.Put(res)
	if err != nil {
		return nil, err
	}
	return headers, nil
}

// record counts and logs one computation's decisions at the level each
// deserves (spec §2.3), except that the allowlist's own problems, which
// problemsOf logs once per change of the list, are logged at debug. Header
// values are logged only at debug, and only for forwarded headers.
func (d *Dispatcher) record(ctx context.Context, r *Route, res *passthrough.Result, problems map[passthrough.Decision]bool, in Inbound) {
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.Decisions(r.Slug, res.Decisions)
	}
	for _, dec := range res.Decisions {
		level := dec.Reason.Level()
		if level > slog.LevelDebug && problems[dec] {
			level = slog.LevelDebug
		}
		if !d.cfg.Logger.Enabled(ctx, level) {
			continue
		}
		attrs := []any{"upstream", r.Name, "header", dec.Header, "action", dec.Action.String(),
			"reason", dec.Reason.String(), "request_id", in.RequestID}
		// Only an allowlisted header's value, never a credential's.
		if dec.Reason == passthrough.ReasonAllowlisted || dec.Reason == passthrough.ReasonOverwroteBase {
			if v, ok := res.Get(dec.Header); ok {
				attrs = append(attrs, "value", v)
			}
		}
		d.cfg.Logger.Log(ctx, level, res.Message(dec), attrs...)
	}
}

// statusError is what an upstream client's HTTP failure looks like.
type statusError interface{ HTTPStatus() int }

func httpStatus(err error) (int, bool) {
	var se statusError
	if errors.As(err, &se) {
		return se.HTTPStatus(), true
	}
	return 0, false
}
