package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// subscriptions/listen (MCP 2026-07-28; SEP-2575) replaces a session's
// GET stream and resources/subscribe: a long-lived request whose answer
// is a stream of the notifications it asked for. mcpgate's own lists'
// list_changed come from the catalogue (ListChanged, as sessions get
// them); resources/updated comes from the upstreams, each subscribed on
// the client's pooled session with that upstream (Stateless) for as long
// as the stream lasts.

// MaxListensPerPrincipal bounds the subscriptions/listen streams one
// client holds open at once, on one instance.
const MaxListensPerPrincipal = 8

// listenRequest is what a subscriptions/listen asks for.
type listenRequest struct {
	ToolsListChanged      bool     `json:"toolsListChanged,omitempty"`
	PromptsListChanged    bool     `json:"promptsListChanged,omitempty"`
	ResourcesListChanged  bool     `json:"resourcesListChanged,omitempty"`
	ResourceSubscriptions []string `json:"resourceSubscriptions,omitempty"`
}

func (l listenRequest) any() bool {
	return l.ToolsListChanged || l.PromptsListChanged || l.ResourcesListChanged || len(l.ResourceSubscriptions) > 0
}

// listener is one open subscriptions/listen stream.
type listener struct {
	client context.Context // its values name the client (access rules)
	key    string          // its pooled session's (poolKey)
	relay  bool            // on the relay: list_changed are the upstream's
	id     json.RawMessage // the listen request's id: the subscriptionId
	wants  listenRequest   // what was granted
	uris   map[string]bool // ResourceSubscriptions, as the client knows them
	send   func(jsonrpc.Message)
}

// listeners are a Stateless's open streams.
type listeners struct {
	mu     sync.Mutex
	all    map[*listener]struct{}
	perWho map[string]int
}

func (ls *listeners) add(who string, l *listener) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.perWho[who] >= MaxListensPerPrincipal {
		return fmt.Errorf("too many subscriptions/listen streams open (%d): close one first", MaxListensPerPrincipal)
	}
	if ls.all == nil {
		ls.all, ls.perWho = map[*listener]struct{}{}, map[string]int{}
	}
	ls.all[l] = struct{}{}
	ls.perWho[who]++
	return nil
}

func (ls *listeners) remove(who string, l *listener) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.all, l)
	if ls.perWho[who]--; ls.perWho[who] <= 0 {
		delete(ls.perWho, who)
	}
}

func (ls *listeners) each(f func(*listener)) {
	ls.mu.Lock()
	all := make([]*listener, 0, len(ls.all))
	for l := range ls.all {
		all = append(all, l)
	}
	ls.mu.Unlock()
	for _, l := range all {
		f(l)
	}
}

// deliver sends n on l's stream, naming the stream it belongs to
// (_meta io.modelcontextprotocol/subscriptionId).
func (l *listener) deliver(n jsonrpc.Message) {
	if params, err := protocol.WithMeta(n.Params, protocol.MetaSubscriptionID, l.id); err == nil {
		n.Params = params
	}
	l.send(n)
}

// Listen serves subscriptions/listen: it acknowledges what it will send
// (notifications/subscriptions/acknowledged, first), subscribes the
// resources asked for on the client's pooled upstream sessions, sends
// until ctx ends, and unsubscribes them. On the relay (scope: the
// upstream's id) a 2026-07-28 upstream gets the listen request itself,
// and its stream goes to the client as it comes (RelaySession.Listen);
// for an older upstream the stream is bridged from the client's pooled
// relay session, held open while it lasts: the upstream's own
// list_changed of the kinds asked for, as its GET stream brings them,
// and resources/updated for the URIs asked, subscribed on that session.
func (s *Stateless) Listen(ctx context.Context, scope string, msg jsonrpc.Message, in Inbound, send func(jsonrpc.Message)) jsonrpc.Message {
	raw, ok := jsonrpc.Member(msg.Params, "notifications")
	var want listenRequest
	if !ok || json.Unmarshal(raw, &want) != nil {
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "subscriptions/listen: params.notifications is required, an object")))
	}
	if scope != "" {
		if _, ok := s.d.view(ctx).Route(scope); !ok { // one the client may not use is unknown to it
			return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%v: %q", ErrNoUpstream, scope)))
		}
	}
	who := s.sessions.principal(ctx)
	l := &listener{client: context.WithoutCancel(ctx), key: poolKey(scope, who, msg), relay: scope != "", id: msg.ID, uris: map[string]bool{}, send: send}
	l.wants = listenRequest{ToolsListChanged: want.ToolsListChanged, PromptsListChanged: want.PromptsListChanged, ResourcesListChanged: want.ResourcesListChanged}
	if err := s.listening.add(who, l); err != nil {
		return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err)))
	}
	defer s.listening.remove(who, l)
	if len(want.ResourceSubscriptions) > 0 || l.relay {
		ps := s.sessions.take(ctx, l.key, s.opener(scope, msg, in))
		if ps == nil {
			return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "no upstream session can be opened now; try again later")))
		}
		defer s.sessions.callDone(ps)
		if lr, ok := ps.fs.(*lazyRelay); ok {
			// Its upstream session must be open for the upstream's
			// list_changed to reach it.
			rs, err := lr.session(ctx, in)
			if err != nil {
				return answerTo(msg, failure(jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "subscriptions/listen: %v", err)))
			}
			if rs.speaksStateless() {
				// 1:1: the upstream's own stream, which says itself
				// what it grants; nothing is bridged to this one.
				s.listening.mu.Lock()
				l.wants = listenRequest{}
				s.listening.mu.Unlock()
				return answerTo(msg, rs.Listen(ctx, msg, in, l.deliver))
			}
		}
		for _, uri := range want.ResourceSubscriptions {
			if s.subscribe(ctx, ps, "resources/subscribe", uri, in) {
				l.wants.ResourceSubscriptions = append(l.wants.ResourceSubscriptions, uri)
			}
		}
		defer func() {
			// The stream is over: the upstreams are told, on the client's
			// time no longer.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.d.cfg.Timeout)
			defer cancel()
			for _, uri := range l.wants.ResourceSubscriptions {
				s.subscribe(uctx, ps, "resources/unsubscribe", uri, in)
			}
		}()
	}
	ls := s.listening
	ls.mu.Lock()
	for _, uri := range l.wants.ResourceSubscriptions {
		l.uris[uri] = true
	}
	ls.mu.Unlock()
	ack, _ := jsonrpc.NewNotification("notifications/subscriptions/acknowledged", map[string]any{"notifications": l.wants})
	l.deliver(ack)
	if l.wants.any() {
		<-ctx.Done()
	}
	meta := mustJSON(map[string]json.RawMessage{protocol.MetaSubscriptionID: msg.ID})
	return answerTo(msg, result(protocol.CompleteResult(mustJSON(map[string]json.RawMessage{"_meta": meta}), s.serverInfo())))
}

// subscribe sends resources/subscribe or unsubscribe for uri on a pooled
// session; false when it was refused.
func (s *Stateless) subscribe(ctx context.Context, ps *principalSession, method, uri string, in Inbound) bool {
	req, err := jsonrpc.NewRequest(json.RawMessage(`"listen"`), method, map[string]string{"uri": uri})
	if err != nil {
		return false
	}
	resp := ps.fs.Request(ctx, s.sessions.renumber(req), in)
	if resp.Error != nil {
		s.d.cfg.Logger.DebugContext(ctx, "an upstream refused a subscription of subscriptions/listen", "method", method, "error", resp.Error.Message, "request_id", in.RequestID)
	}
	return resp.Error == nil
}

// upstreamNotification takes what a pooled session's upstreams sent
// outside any call: a resources/updated goes to the streams of that
// session's client that listen for its URI, and on the relay a
// list_changed to those that asked for it (on /mcp the lists are
// mcpgate's: ListChanged).
func (s *Stateless) upstreamNotification(key string, m jsonrpc.Message) {
	uri, _ := jsonrpc.StringMember(m.Params, "uri")
	kind := listKind(m.Method)
	if m.Method != "notifications/resources/updated" && kind == "" {
		return
	}
	s.listening.each(func(l *listener) {
		s.listening.mu.Lock()
		wanted := l.key == key && (l.uris[uri] && m.Method == "notifications/resources/updated" || l.relay && l.wants.listChanged(kind))
		s.listening.mu.Unlock()
		if wanted {
			l.deliver(m)
		}
	})
}

// listKind is "tools", "prompts" or "resources" for their list_changed
// notifications, "" for any other method.
func listKind(method string) string {
	switch method {
	case "notifications/tools/list_changed":
		return "tools"
	case "notifications/prompts/list_changed":
		return "prompts"
	case "notifications/resources/list_changed":
		return "resources"
	}
	return ""
}

// listChanged reports whether l asks for the list_changed of kind
// (listKind).
func (l listenRequest) listChanged(kind string) bool {
	return kind == "tools" && l.ToolsListChanged || kind == "prompts" && l.PromptsListChanged ||
		kind == "resources" && l.ResourcesListChanged
}

// ListChanged sends a list_changed of mcpgate's lists (notifications/
// tools/list_changed and the like) to every stream that asked for it and
// whose client may use upstream id (named name), the one whose change it
// is: a client is never told of an upstream it may not use.
func (s *Stateless) ListChanged(n jsonrpc.Message, id, name string) {
	kind := listKind(n.Method)
	s.listening.each(func(l *listener) {
		if !l.relay && l.wants.listChanged(kind) && (s.d.cfg.Access == nil || s.d.cfg.Access(l.client).Allows(id, name)) {
			l.deliver(n)
		}
	})
}
