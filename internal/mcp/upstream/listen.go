package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// subscriptions/listen (MCP 2026-07-28 basic/patterns, "subscribe and
// notify") replaces, towards a 2026-07-28 upstream, both the GET stream and
// resources/subscribe: one long-lived request names the notifications the
// client wants — list_changed of tools, prompts and resources (those the
// upstream's capabilities announce), and resources/updated for a list of
// URIs — and its response stream carries them, after a first
// notifications/subscriptions/acknowledged. The Client keeps one open while
// someone listens (Options.OnNotification) and hands what it carries to
// Options.OnNotification, as it does a GET stream's. A caller's
// resources/subscribe and resources/unsubscribe change the URI list: a new
// listen request replaces the old one once the upstream has acknowledged it.

// listening is the state of a Client's listen request.
type listening struct {
	change sync.Mutex // held while the listen request is replaced

	mu     sync.Mutex
	uris   []string           // subscribed, sorted
	cancel context.CancelFunc // of the current listen request; nil when none
}

// listenAckTimeout bounds how long Connect waits for the upstream to
// acknowledge the first listen request (which goes on trying after it).
const listenAckTimeout = 5 * time.Second

// startListening opens the listen request of a new stateless session, when
// someone listens. A failure is logged: the session works without it.
func (c *Client) startListening(ctx context.Context) {
	if c.opts.OnNotification == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, listenAckTimeout)
	defer cancel()
	if err := c.relisten(ctx); err != nil {
		c.log.Warn("could not open subscriptions/listen on the upstream; its change notifications are missed", "error", err)
	}
}

// subscribe answers a caller's resources/subscribe or resources/unsubscribe
// by changing the URI list of the listen request, and answers it with an
// empty result once the upstream has acknowledged the new list.
func (c *Client) subscribe(ctx context.Context, req jsonrpc.Message) (jsonrpc.Message, error) {
	uri, ok := jsonrpc.StringMember(req.Params, "uri")
	if !ok {
		return jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s needs params.uri, a string", req.Method)), nil
	}
	c.listen.mu.Lock()
	i, found := slices.BinarySearch(c.listen.uris, uri)
	switch {
	case req.Method == "resources/subscribe" && !found:
		c.listen.uris = slices.Insert(c.listen.uris, i, uri)
	case req.Method == "resources/unsubscribe" && found:
		c.listen.uris = slices.Delete(c.listen.uris, i, i+1)
	}
	c.listen.mu.Unlock()
	if c.opts.OnNotification != nil {
		if err := c.relisten(ctx); err != nil {
			return jsonrpc.Message{}, c.failure(ctx, req.Method, err)
		}
	}
	return jsonrpc.NewResult(req.ID, struct{}{})
}

// listenFilter is the notifications params of the listen request: the
// list_changed kinds the upstream announces, and the subscribed URIs; nil
// when there is nothing to listen for.
func (c *Client) listenFilter() json.RawMessage {
	var caps map[string]struct {
		ListChanged bool `json:"listChanged"`
	}
	_ = json.Unmarshal(c.capabilities(), &caps) // malformed: no list_changed
	c.listen.mu.Lock()
	uris := slices.Clone(c.listen.uris)
	c.listen.mu.Unlock()
	f := struct {
		Tools     bool     `json:"toolsListChanged,omitempty"`
		Prompts   bool     `json:"promptsListChanged,omitempty"`
		Resources bool     `json:"resourcesListChanged,omitempty"`
		URIs      []string `json:"resourceSubscriptions,omitempty"`
	}{caps["tools"].ListChanged, caps["prompts"].ListChanged, caps["resources"].ListChanged, uris}
	if !f.Tools && !f.Prompts && !f.Resources && len(f.URIs) == 0 {
		return nil
	}
	raw, _ := json.Marshal(f)
	return raw
}

// relisten opens a listen request with the current filter and, once the
// upstream has acknowledged it (or ctx ends), closes the one it replaces.
func (c *Client) relisten(ctx context.Context) error {
	c.listen.change.Lock()
	defer c.listen.change.Unlock()
	filter := c.listenFilter()
	c.listen.mu.Lock()
	prev := c.listen.cancel
	c.listen.cancel = nil
	c.listen.mu.Unlock()
	if filter == nil {
		if prev != nil {
			prev()
		}
		return nil
	}
	lctx, cancel := context.WithCancel(c.calling) // Close ends it
	acked := make(chan error, 1)
	if !c.goTracked(func() { c.listenLoop(lctx, filter, acked) }) {
		cancel()
		return ErrClosed
	}
	c.listen.mu.Lock()
	c.listen.cancel = cancel
	c.listen.mu.Unlock()
	var err error
	select {
	case err = <-acked:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if prev != nil {
		prev() // the new one listens, or has failed: the old one is replaced either way
	}
	return err
}

// listenLoop keeps one listen request open until ctx ends, opening it
// again (with a growing delay) when the upstream ends it. The first
// outcome — acknowledged, or failed — goes to acked.
func (c *Client) listenLoop(ctx context.Context, filter json.RawMessage, acked chan<- error) {
	var once sync.Once
	report := func(err error) { once.Do(func() { acked <- err }) }
	keepOpen(ctx, func() (opened, again bool) {
		opened, again, err := c.listenOnce(ctx, filter, func() { report(nil) })
		report(err)
		return opened, again
	})
}

// listenOnce sends the listen request and hands what it carries on until
// it ends. opened says the upstream acknowledged it; again whether opening
// it once more makes sense (not after a refusal).
func (c *Client) listenOnce(ctx context.Context, filter json.RawMessage, onAck func()) (opened, again bool, err error) {
	own, err := c.own.get(ctx)
	if err != nil {
		return false, true, err
	}
	params, _ := json.Marshal(map[string]json.RawMessage{"notifications": filter})
	deliver := func(m jsonrpc.Message) {
		switch m.Method {
		case protocol.NotificationAcknowledged:
			opened = true
			onAck()
			return
		}
		c.notifyGlobal(m)
	}
	resp, err := c.statelessOnce(ctx, jsonrpc.Message{ID: json.RawMessage(`"mcpgate-listen"`), Method: protocol.MethodListen, Params: params}, own, deliver)
	var se *StatusError
	switch {
	case ctx.Err() != nil:
		return opened, false, ctx.Err()
	case errors.As(err, &se) && se.StatusCode < 500 && se.StatusCode != 408 && se.StatusCode != 429:
		return false, false, err
	case err != nil:
		c.log.Debug("subscriptions/listen ended", "error", err)
		return opened, true, err
	case resp.Error != nil:
		return false, false, fmt.Errorf("the upstream refused %s: %w", protocol.MethodListen, resp.Error)
	}
	return opened, true, nil // the upstream ended it (SubscriptionsListenResult)
}
