package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// A federated session is one client session of federation (/mcp, /sse,
// /ws). It is answered from the catalogue like any federation call, but
// every message routed to an upstream goes on an upstream session of the
// client's own, opened lazily on its first message for that upstream, as
// the 1:1 relay opens one (OpenRelay): with the client's initialize params
// (its capabilities and clientInfo, so the upstream may ask it for
// sampling, elicitation and roots) and the passthrough headers of the
// request that needed it (spec §4, §5). The upstream's requests and
// notifications on that session reach this client only; its answers go
// back on the same session. Discovery keeps its own gateway-owned session
// (Route.Caller), with no client headers.
//
// What it keeps per client: the log level it set (sent to every upstream
// session it opens later too), the tasks its calls created (so tasks/* go
// to the upstream that owns the task, and no other client's task is ever
// reachable), and the resource URIs its tool results named (resource
// links), which resources/read then routes to the upstream that named them.

// DefaultMaxUpstreamSessions is the default of Config.MaxUpstreamSessions.
const DefaultMaxUpstreamSessions = 1000

// ErrTooManyUpstreamSessions is why a client's upstream session was not
// opened: its upstream holds Config.MaxUpstreamSessions already.
var ErrTooManyUpstreamSessions = errors.New("too many upstream sessions")

// FederatedSession is one client session of federation; it is safe for
// concurrent use. Close ends its upstream sessions.
type FederatedSession struct {
	d          *Dispatcher
	initialize json.RawMessage // the client's initialize params
	version    string          // agreed with the client
	onMessage  func(jsonrpc.Message)
	client     context.Context // its values name the client (view); never cancelled
	done       chan struct{}   // never closed: a federated session does not end on its own
	watchers   sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	upstreams map[string]*federatedUpstream // by upstream id
	logLevel  json.RawMessage               // params of the client's last logging/setLevel
	calls     map[string]*RelaySession      // the client's requests in flight, by id
	asked     map[string]peerRequest        // the upstreams' requests to the client, by the id it was given
	askedBack map[peerKey]string            // the same, by upstream session and its own id
	nextAsk   int64
	tasks     map[string]string // task id -> upstream id
	links     map[string]string // resource URI named by a tool result -> upstream id
}

// federatedUpstream is a client's session with one upstream, once open.
type federatedUpstream struct {
	ready chan struct{} // closed once rs or err is set
	rs    *RelaySession
	err   error
}

// peerRequest is a request an upstream sent the client, as the upstream
// numbered it.
type peerRequest struct {
	rs *RelaySession
	id json.RawMessage
}

type peerKey struct {
	rs *RelaySession
	id string
}

// OpenFederated starts a federated session for the client's initialize
// request; no upstream is contacted until the client needs one. push sends
// a message to the client outside any call. It returns the session and
// the answer to initialize.
func (d *Dispatcher) OpenFederated(ctx context.Context, initialize jsonrpc.Message, in Inbound, push func(jsonrpc.Message)) (*FederatedSession, jsonrpc.Message) {
	answer, _ := d.Handle(ctx, initialize, in)
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(answer.Result, &r)
	fs := &FederatedSession{d: d, initialize: initialize.Params, version: r.ProtocolVersion, onMessage: push, client: context.WithoutCancel(ctx),
		done: make(chan struct{}), upstreams: map[string]*federatedUpstream{}, calls: map[string]*RelaySession{},
		asked: map[string]peerRequest{}, askedBack: map[peerKey]string{}, tasks: map[string]string{}, links: map[string]string{}}
	return fs, answer
}

// ProtocolVersion is the version agreed with the client in initialize.
func (fs *FederatedSession) ProtocolVersion() string { return fs.version }

// Done is never closed: the session ends with its client. An upstream
// that leaves ends only the client's session with it (see watch).
func (fs *FederatedSession) Done() <-chan struct{} { return fs.done }

// Err is always nil (see Done).
func (fs *FederatedSession) Err() error { return nil }

// Request answers a client request: from the catalogue, or on the client's
// own session with the upstream that owns what it names.
func (fs *FederatedSession) Request(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	in.session = fs
	switch msg.Method {
	case "initialize":
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"the session is already initialized: initialize is sent once per session; open a new session to initialize again")))
	case "logging/setLevel":
		return answerTo(msg, fs.setLevel(ctx, msg, in))
	case "tasks/get", "tasks/result", "tasks/cancel":
		return answerTo(msg, fs.task(ctx, msg, in))
	case "tasks/list":
		return answerTo(msg, fs.listTasks(ctx, msg, in))
	}
	resp, upstream := fs.d.handle(ctx, msg, in)
	if upstream == "" && fs.d.cfg.Metrics != nil { // a forwarded call was counted as it went
		fs.d.cfg.Metrics.Request(msg.Method, upstream, resp.Error == nil)
	}
	return answerTo(msg, resp)
}

// forward sends msg on the client's own session with r's upstream, opening
// it first if need be, and notes what the answer makes reachable: a task
// it created, resources it links to.
func (fs *FederatedSession) forward(ctx context.Context, r *Route, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if r.Caller == nil {
		// The registry found the upstream unreachable and retries it: the
		// call is answered as on the shared session, naming why.
		return fs.d.Forward(ctx, r, msg, in)
	}
	rs, err := fs.upstream(ctx, r, in)
	if err != nil {
		return failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "%v", err))
	}
	resp := fs.call(ctx, rs, msg, in)
	if msg.Method == "tools/call" && resp.Error == nil {
		fs.note(r.ID, resp.Result)
	}
	return resp
}

// call sends a request on rs for the client, keeping it reachable by the
// client's notifications/cancelled while it is in flight, and delivering
// what the upstream sends about it on the way to in.Notify (or, without
// one, outside any call) with the upstream's requests renumbered.
func (fs *FederatedSession) call(ctx context.Context, rs *RelaySession, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	key := string(msg.ID)
	fs.mu.Lock()
	if _, dup := fs.calls[key]; dup {
		fs.mu.Unlock()
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"request id %s already in use: a request with this id is still in flight in this session (MCP request ids must be unique within a session)", key))
	}
	fs.calls[key] = rs
	fs.mu.Unlock()
	defer func() {
		fs.mu.Lock()
		delete(fs.calls, key)
		fs.mu.Unlock()
	}()
	deliver := in.Notify
	if deliver == nil {
		deliver = fs.onMessage
	}
	in.Notify = func(m jsonrpc.Message) { fs.toClient(rs, m, deliver) }
	in.session = nil
	return rs.Request(ctx, msg, in)
}

// toClient hands the client what rs's upstream sent it. A request gets an
// id of the client session's own, since the client's upstream sessions
// number their requests independently; the upstream's cancellation of one
// names that id too. list_changed is left to the catalogue, which tells
// every client once it has the new list (registry OnChange).
func (fs *FederatedSession) toClient(rs *RelaySession, m jsonrpc.Message, deliver func(jsonrpc.Message)) {
	if !fs.mayUse(rs) {
		return
	}
	switch {
	case m.IsRequest():
		fs.mu.Lock()
		fs.nextAsk++
		id := strconv.AppendQuote(nil, "mcpgate-"+strconv.FormatInt(fs.nextAsk, 10))
		fs.asked[string(id)] = peerRequest{rs: rs, id: m.ID}
		fs.askedBack[peerKey{rs, string(m.ID)}] = string(id)
		fs.mu.Unlock()
		m.ID = id
	case m.Method == "notifications/cancelled":
		reqID, ok := jsonrpc.Member(m.Params, "requestId")
		if !ok {
			return
		}
		fs.mu.Lock()
		id, known := fs.askedBack[peerKey{rs, string(reqID)}]
		fs.forgetAskedLocked(id)
		fs.mu.Unlock()
		if !known {
			return
		}
		params, err := jsonrpc.WithMember(m.Params, "requestId", json.RawMessage(id))
		if err != nil {
			return
		}
		m.Params = params
	case m.IsNotification() && strings.HasSuffix(m.Method, "/list_changed"):
		return
	case m.Method == "notifications/resources/updated":
		// A resource two upstreams list is subscribed to under the URI the
		// client knows it by (mcpgate://<slug>/… for all but the first):
		// the update names that one, not the other upstream's.
		uri, ok := jsonrpc.StringMember(m.Params, "uri")
		if !ok || rs == nil {
			break
		}
		ix := fs.d.view(fs.client) // the URIs as this client's lists name them
		if r, ok := ix.Route(rs.id); ok {
			if listed := ix.clientURI(r, uri); listed != uri {
				if params, err := jsonrpc.WithStringMember(m.Params, "uri", listed); err == nil {
					m.Params = params
				}
			}
		}
	}
	deliver(m)
}

func (fs *FederatedSession) forgetAskedLocked(id string) {
	if p, ok := fs.asked[id]; ok {
		delete(fs.asked, id)
		delete(fs.askedBack, peerKey{p.rs, string(p.id)})
	}
}

// Respond takes the client's answer to an upstream's request and sends it
// to that upstream, under the id the upstream gave it.
func (fs *FederatedSession) Respond(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	fs.mu.Lock()
	p, ok := fs.asked[string(msg.ID)]
	fs.forgetAskedLocked(string(msg.ID))
	fs.mu.Unlock()
	if !ok || p.rs == nil || !fs.mayUse(p.rs) { // nil: asked while its session was still opening
		return fmt.Errorf("answer with id %s: no request of an upstream's is waiting for it in this session", msg.ID)
	}
	msg.ID = p.id
	return p.rs.Respond(ctx, msg, in)
}

// Notify takes a client notification: notifications/cancelled ends the
// named call at once (its upstream session then tells the upstream, by the
// id the upstream knows it by), notifications/roots/list_changed goes to
// every upstream session of the client's, and the client's answer-less
// others (initialized, progress) concern no upstream session in
// particular and stop here.
func (fs *FederatedSession) Notify(ctx context.Context, msg jsonrpc.Message, in Inbound) error {
	switch msg.Method {
	case "notifications/cancelled":
		reqID, ok := jsonrpc.Member(msg.Params, "requestId")
		if !ok {
			return fmt.Errorf("notifications/cancelled without a requestId")
		}
		fs.mu.Lock()
		rs := fs.calls[string(reqID)]
		fs.mu.Unlock()
		if rs == nil {
			return nil // MCP: a cancellation of an unknown or finished request is ignored
		}
		return rs.Notify(ctx, msg, in)
	case "notifications/roots/list_changed":
		var errs []error
		for _, rs := range fs.open() {
			errs = append(errs, rs.Notify(ctx, msg, in))
		}
		return errors.Join(errs...)
	}
	return nil
}

// setLevel forwards logging/setLevel to every upstream session of the
// client's, and keeps it for those it opens later: an upstream sends its
// log messages to the session that asked for them only.
func (fs *FederatedSession) setLevel(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if _, perr := stringParam(msg, "level"); perr != nil {
		return failure(perr)
	}
	fs.mu.Lock()
	fs.logLevel = msg.Params
	fs.mu.Unlock()
	for _, rs := range fs.open() {
		if resp := fs.call(ctx, rs, msg, in); resp.Error != nil {
			fs.d.cfg.Logger.WarnContext(ctx, "an upstream refused logging/setLevel", "upstream", rs.Upstream(),
				"error", resp.Error.Message, "request_id", in.RequestID)
		}
	}
	return result(json.RawMessage("{}"))
}

// task routes tasks/get, tasks/result and tasks/cancel to the upstream
// session whose call created the task; a task id this client was not
// given is unknown, whoever else it may belong to.
func (fs *FederatedSession) task(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	id, perr := stringParam(msg, "taskId")
	if perr != nil {
		return failure(perr)
	}
	fs.mu.Lock()
	upstream, ok := fs.tasks[id]
	u := fs.upstreams[upstream]
	fs.mu.Unlock()
	if !ok || u == nil || u.rs == nil || !fs.mayUse(u.rs) {
		return failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown task %q in this session", id))
	}
	return fs.call(ctx, u.rs, msg, in)
}

// listTasks answers tasks/list with the tasks of every upstream session of
// the client's that created one; the upstreams' cursors are not merged, so
// each is asked for its first page.
func (fs *FederatedSession) listTasks(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	fs.mu.Lock()
	owners := map[*RelaySession]bool{}
	for _, upstream := range fs.tasks {
		if u := fs.upstreams[upstream]; u != nil && u.rs != nil {
			owners[u.rs] = true
		}
	}
	fs.mu.Unlock()
	maps.DeleteFunc(owners, func(rs *RelaySession, _ bool) bool { return !fs.mayUse(rs) })
	tasks := []json.RawMessage{}
	msg.Params = nil
	for rs := range owners {
		resp := fs.call(ctx, rs, msg, in)
		var page struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if resp.Error != nil || json.Unmarshal(resp.Result, &page) != nil {
			continue
		}
		tasks = append(tasks, page.Tasks...)
	}
	return result(mustJSON(map[string]any{"tasks": tasks}))
}

// note remembers what a tools/call result of upstream makes reachable: the
// task it created (a task-augmented call), and the URIs of the resources it
// links to or embeds, which this client may then read from that upstream.
func (fs *FederatedSession) note(upstream string, res json.RawMessage) {
	var r struct {
		Task *struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
		Content []struct {
			Type     string `json:"type"`
			URI      string `json:"uri"`
			Resource *struct {
				URI string `json:"uri"`
			} `json:"resource"`
		} `json:"content"`
	}
	if json.Unmarshal(res, &r) != nil {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if r.Task != nil && r.Task.TaskID != "" {
		fs.tasks[r.Task.TaskID] = upstream
	}
	for _, c := range r.Content {
		switch {
		case c.Type == "resource_link" && c.URI != "":
			fs.links[c.URI] = upstream
		case c.Type == "resource" && c.Resource != nil && c.Resource.URI != "":
			fs.links[c.Resource.URI] = upstream
		}
	}
}

// linkRoute is the upstream that named uri in one of this client's tool
// results, for a URI the catalogue does not list. A nil session has none.
func (fs *FederatedSession) linkRoute(ix *Index, uri string) (*Route, bool) {
	if fs == nil {
		return nil, false
	}
	fs.mu.Lock()
	upstream, ok := fs.links[uri]
	fs.mu.Unlock()
	if !ok {
		return nil, false
	}
	return ix.Route(upstream)
}

// open returns the client's upstream sessions open now.
func (fs *FederatedSession) open() []*RelaySession {
	fs.mu.Lock()
	out := make([]*RelaySession, 0, len(fs.upstreams))
	for _, u := range fs.upstreams {
		if u.rs != nil {
			out = append(out, u.rs)
		}
	}
	fs.mu.Unlock()
	return slices.DeleteFunc(out, func(rs *RelaySession) bool { return !fs.mayUse(rs) })
}

// mayUse reports whether the client may still use rs's upstream under the
// access rules in force: an upstream session opened before a rule took its
// upstream away neither hears from the client nor reaches it again.
func (fs *FederatedSession) mayUse(rs *RelaySession) bool {
	return rs == nil || fs.d.allowed(fs.client, rs.id)
}

// upstream returns the client's session with r's upstream, opening it on
// first use; requests arriving meanwhile wait for the one open. A failed
// open is not kept: the next request tries again.
func (fs *FederatedSession) upstream(ctx context.Context, r *Route, in Inbound) (*RelaySession, error) {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return nil, errors.New("the session has ended")
	}
	u, ok := fs.upstreams[r.ID]
	if !ok {
		u = &federatedUpstream{ready: make(chan struct{})}
		fs.upstreams[r.ID] = u
	}
	fs.mu.Unlock()
	if ok {
		select {
		case <-u.ready:
			return u.rs, u.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rs, err := fs.dial(ctx, r, in)
	fs.mu.Lock()
	u.rs, u.err = rs, err
	closed := fs.closed
	if err != nil || closed {
		delete(fs.upstreams, r.ID)
	} else {
		// Under fs.mu, so before Close's Wait.
		fs.watchers.Go(func() { fs.watch(r.ID, u) })
	}
	close(u.ready)
	fs.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if closed { // Close did not see it
		fs.release(rs)
		return nil, errors.New("the session has ended")
	}
	return rs, nil
}

// dial opens the client's session with r's upstream, within the cap on
// upstream sessions per upstream, and sets the client's log level on it.
func (fs *FederatedSession) dial(ctx context.Context, r *Route, in Inbound) (*RelaySession, error) {
	if !fs.d.fed.reserve(r.ID, fs.d.maxUpstreamSessions()) {
		return nil, fmt.Errorf("%w: upstream %q has %d sessions open, the most allowed (MAX_UPSTREAM_SESSIONS_PER_UPSTREAM); try again later",
			ErrTooManyUpstreamSessions, r.Name, fs.d.maxUpstreamSessions())
	}
	initialize := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage(`"mcpgate-initialize"`), Method: "initialize", Params: fs.initialize}
	// The upstream may speak before OpenRelay returns (on its listening
	// stream): its messages wait for nothing, and name the session once
	// it is known.
	var opened atomic.Pointer[RelaySession]
	rs, _, err := fs.d.OpenRelay(ctx, r.ID, initialize, Inbound{Header: in.Header, RequestID: in.RequestID},
		func(m jsonrpc.Message) { fs.toClient(opened.Load(), m, fs.onMessage) })
	if err != nil {
		fs.d.fed.release(r.ID)
		return nil, err
	}
	opened.Store(rs)
	fs.mu.Lock()
	level := fs.logLevel
	fs.mu.Unlock()
	if level != nil {
		set := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage(`"mcpgate-set-level"`), Method: "logging/setLevel", Params: level}
		if resp := rs.Request(ctx, set, in); resp.Error != nil {
			fs.d.cfg.Logger.WarnContext(ctx, "an upstream refused logging/setLevel", "upstream", r.Name, "error", resp.Error.Message, "request_id", in.RequestID)
		}
	}
	return rs, nil
}

// watch drops the client's session with upstream id when mcpgate ends it
// (its upstream was deleted, disabled or moved: see UpstreamChanged); the
// client's next message for that upstream opens a new one, if it can.
func (fs *FederatedSession) watch(id string, u *federatedUpstream) {
	<-u.rs.Done()
	fs.mu.Lock()
	mine := fs.upstreams[id] == u
	if mine {
		delete(fs.upstreams, id)
	}
	fs.mu.Unlock()
	if mine {
		fs.release(u.rs)
	}
}

// release closes an upstream session of the client's and gives back its
// place under the cap.
func (fs *FederatedSession) release(rs *RelaySession) {
	if err := rs.Close(); err != nil {
		fs.d.cfg.Logger.Debug("an upstream session closed with an error", "upstream", rs.Upstream(), "err", err)
	}
	fs.d.fed.release(rs.id)
}

// Close ends every upstream session of the client's; it waits on the
// network. Later calls do nothing.
func (fs *FederatedSession) Close() error {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return nil
	}
	fs.closed = true
	var open []*federatedUpstream
	for id, u := range fs.upstreams {
		delete(fs.upstreams, id)
		if u.rs != nil {
			open = append(open, u)
		}
	}
	fs.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range open {
		// Ended first: its calls in flight are cancelled, and its watch
		// returns (it is no longer in fs.upstreams, so it releases nothing).
		u.rs.end("the client session ended", false)
		wg.Go(func() { fs.release(u.rs) })
	}
	wg.Wait()
	fs.watchers.Wait()
	return nil
}

// federationCounts counts the federated upstream sessions open per
// upstream, against Config.MaxUpstreamSessions.
type federationCounts struct {
	mu   sync.Mutex
	byID map[string]int
}

func (c *federationCounts) reserve(id string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[string]int{}
	}
	if c.byID[id] >= max {
		return false
	}
	c.byID[id]++
	return true
}

func (c *federationCounts) release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID[id]--; c.byID[id] <= 0 {
		delete(c.byID, id)
	}
}

// UpstreamSessions returns the federated upstream sessions open now, over
// every upstream.
func (d *Dispatcher) UpstreamSessions() int {
	d.fed.mu.Lock()
	defer d.fed.mu.Unlock()
	n := 0
	for _, c := range d.fed.byID {
		n += c
	}
	return n
}

func (d *Dispatcher) maxUpstreamSessions() int {
	if d.cfg.MaxUpstreamSessions > 0 {
		return d.cfg.MaxUpstreamSessions
	}
	return DefaultMaxUpstreamSessions
}

// send is where a federation call routed to upstream r goes: on the
// client's own upstream session when it has a federated session, else
// (stateless /rpc, or a stream client that never initialized) on the
// upstream's shared session.
func (d *Dispatcher) send(ctx context.Context, r *Route, msg jsonrpc.Message, in Inbound) jsonrpc.Message {
	if in.session != nil {
		return in.session.forward(ctx, r, msg, in)
	}
	return d.Forward(ctx, r, msg, in)
}
