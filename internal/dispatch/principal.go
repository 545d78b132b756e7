package dispatch

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// PrincipalSessions answers stateless federation calls (/rpc) on a
// federated session per principal (a token's subject), so that what an
// upstream keeps per session — log level, subscriptions, tasks, resources
// a tool made — is one client's, never shared between clients, while each
// call still carries its own request's passthrough headers (spec §4).
// Such a session declares no client capabilities: a stateless client
// cannot be asked anything, so upstreams do not ask. At most Max
// principals have one at a time; one unused for Idle ends, with its
// upstream sessions. Create it with NewPrincipalSessions; Close ends them
// all.
type PrincipalSessions struct {
	d         *Dispatcher
	principal func(context.Context) string
	idle      time.Duration
	max       int

	mu       sync.Mutex
	sessions map[string]*principalSession
	closed   bool
	closing  sync.WaitGroup // sessions being closed
	ids      atomic.Uint64  // the last request id given a call
	// refusal is what an upstream's request other than ping is told: a
	// stateless client cannot be asked anything.
	refusal string
	// notify, when set, takes the notifications a pooled session's
	// upstreams send outside any call (resources/updated), by the key
	// of the session.
	notify func(key string, m jsonrpc.Message)

	stop chan struct{}
	done chan struct{}
}

type principalSession struct {
	fs       pooledSession
	lastUsed time.Time
	calls    int // in flight: neither swept nor evicted
}

// NewPrincipalSessions returns the pool and starts its sweeper. principal
// names the client of a request's context; idle (0: an hour) ends a
// session unused for that long; max (0: 1000) bounds the sessions held.
func (d *Dispatcher) NewPrincipalSessions(principal func(context.Context) string, idle time.Duration, max int) *PrincipalSessions {
	if idle <= 0 {
		idle = time.Hour
	}
	if max <= 0 {
		max = 1000
	}
	p := &PrincipalSessions{d: d, principal: principal, idle: idle, max: max, sessions: map[string]*principalSession{},
		refusal: "a stateless /rpc client cannot be asked anything",
		stop:    make(chan struct{}), done: make(chan struct{})}
	go p.sweep()
	return p
}

// statelessInitialize is the initialize of a principal's session: the
// newest revision, and no capabilities.
func statelessInitialize() jsonrpc.Message {
	params, _ := json.Marshal(map[string]any{
		"protocolVersion": protocol.Negotiate(""),
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpgate-rpc", "version": "1"},
	})
	return jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: json.RawMessage("0"), Method: "initialize", Params: params}
}

// Handle answers one message, as Dispatcher.Handle does, on the session of
// the request's principal. Messages that reach no upstream are answered
// without one; with every place taken by sessions with calls in flight,
// the call goes on the upstreams' shared sessions.
func (p *PrincipalSessions) Handle(ctx context.Context, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, bool) {
	switch msg.Method {
	case "initialize", "ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list":
		return p.d.Handle(ctx, msg, in)
	}
	if msg.IsNotification() {
		return jsonrpc.Message{}, false // a stateless client has nothing in flight to cancel
	}
	open := func(ctx context.Context, push func(jsonrpc.Message)) pooledSession {
		fs, _ := p.d.OpenFederated(ctx, statelessInitialize(), in, push)
		return fs
	}
	return p.handleOn(ctx, p.principal(ctx), open, msg, in)
}

// pooledSession is what PrincipalSessions holds for a key: a federated
// session, or (Stateless, for the relay) one upstream's session.
type pooledSession interface {
	Request(ctx context.Context, msg jsonrpc.Message, in Inbound) jsonrpc.Message
	Respond(ctx context.Context, msg jsonrpc.Message, in Inbound) error
	Close() error
}

// handleOn answers a request on the session held for key, opened with
// open if there is none (open must contact nothing: it runs under p.mu;
// push is where the session's upstream sends what comes outside a call).
// With every place taken by sessions with calls in flight, the call goes
// on the upstreams' shared sessions.
func (p *PrincipalSessions) handleOn(ctx context.Context, key string, open func(context.Context, func(jsonrpc.Message)) pooledSession, msg jsonrpc.Message, in Inbound) (jsonrpc.Message, bool) {
	ps := p.take(ctx, key, open)
	if ps == nil {
		return p.d.Handle(ctx, msg, in)
	}
	defer p.callDone(ps)
	if notify := in.Notify; notify != nil {
		// What an upstream sends about the call reaches the client, but
		// not a request: the client has no session to answer it on, and
		// the upstream would wait for the answer in vain. It is refused,
		// or taken by in.ask (an InputRequiredResult, mrtr.go).
		ask := in.ask
		in.Notify = func(m jsonrpc.Message) {
			switch {
			case m.IsRequest() && ask != nil:
				ask(ps.fs, m)
			case m.IsRequest():
				p.answer(ps.fs, m)
			default:
				notify(m)
			}
		}
	}
	id := msg.ID
	resp := ps.fs.Request(ctx, p.renumber(msg), in)
	resp.ID = id
	return resp, true
}

// renumber gives a request an id of the pooled sessions' own: ids are
// unique within a session, but each stateless request numbers its own.
func (p *PrincipalSessions) renumber(msg jsonrpc.Message) jsonrpc.Message {
	msg.ID = strconv.AppendQuote(nil, "rpc-"+strconv.FormatUint(p.ids.Add(1), 10))
	return msg
}

// take returns the session held for who, opened if need be, with a call
// begun on it; nil when none can be had.
func (p *PrincipalSessions) take(ctx context.Context, who string, open func(context.Context, func(jsonrpc.Message)) pooledSession) *principalSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	ps, ok := p.sessions[who]
	if !ok {
		if len(p.sessions) >= p.max && !p.evictLocked() {
			return nil
		}
		// open contacts nothing: it is safe under p.mu. fs is set
		// before any upstream session opens, so before push is called.
		var fs pooledSession
		push := func(m jsonrpc.Message) {
			switch {
			case m.IsRequest():
				p.answer(fs, m)
			case m.IsNotification() && p.notify != nil:
				p.notify(who, m)
			}
		}
		fs = open(ctx, push)
		ps = &principalSession{fs: fs}
		p.sessions[who] = ps
	}
	ps.calls++
	ps.lastUsed = time.Now()
	return ps
}

// answer answers, for a stateless client, a request its upstream session
// sent it: ping, and a method-not-found error for anything else (the
// session declared no capabilities, so an upstream should ask nothing
// else). Not on the caller's goroutine, which reads the upstream's stream.
func (p *PrincipalSessions) answer(fs pooledSession, req jsonrpc.Message) {
	resp := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: req.ID, Result: json.RawMessage("{}")}
	if req.Method != "ping" {
		resp = jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "%s: %s", req.Method, p.refusal))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closing.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.d.cfg.Timeout)
		defer cancel()
		if err := fs.Respond(ctx, resp, Inbound{}); err != nil {
			p.d.cfg.Logger.Debug("could not answer an upstream's request for a stateless client", "method", req.Method, "err", err)
		}
	})
}

func (p *PrincipalSessions) callDone(ps *principalSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps.calls--
	ps.lastUsed = time.Now()
}

// evictLocked ends the least recently used session without a call in
// flight, to make room; false when every one has one. The caller holds p.mu.
func (p *PrincipalSessions) evictLocked() bool {
	var oldest string
	var found *principalSession
	for who, ps := range p.sessions {
		if ps.calls == 0 && (found == nil || ps.lastUsed.Before(found.lastUsed)) {
			oldest, found = who, ps
		}
	}
	if found == nil {
		return false
	}
	p.endLocked(oldest, found)
	return true
}

// endLocked forgets a session and closes it on a goroutine Close waits
// for: closing waits on the network. The caller holds p.mu.
func (p *PrincipalSessions) endLocked(who string, ps *principalSession) {
	delete(p.sessions, who)
	p.closing.Go(func() { _ = ps.fs.Close() })
}

func (p *PrincipalSessions) sweep() {
	defer close(p.done)
	t := time.NewTicker(min(p.idle/2, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			for who, ps := range p.sessions {
				if ps.calls == 0 && now.Sub(ps.lastUsed) > p.idle {
					p.endLocked(who, ps)
				}
			}
			p.mu.Unlock()
		}
	}
}

// Sessions returns the number of principals with a session now.
func (p *PrincipalSessions) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// Close stops the sweeper and ends every session, waiting for their
// upstream sessions to close. Later calls go on the shared sessions.
func (p *PrincipalSessions) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for who, ps := range p.sessions {
		p.endLocked(who, ps)
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.closing.Wait()
}
