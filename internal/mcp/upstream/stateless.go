package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// MCP 2026-07-28, the stateless revision, towards an upstream: server/discover
// in place of initialize, every request describing its client in
// params._meta, the per-hop headers computed for each request, and no
// session (no Mcp-Session-Id, no GET stream, no ping, no DELETE). Requests
// for input come back as results (mrtr.go); notifications come on a
// subscriptions/listen request (listen.go).

// discoverTimeout bounds server/discover: an upstream of an older revision
// that neither answers it nor refuses it costs a connection this much
// before initialize is tried.
const discoverTimeout = 5 * time.Second

// discover sends server/discover on s and reports whether the upstream
// offers protocol.Version20260728; s is then its session, with the
// discover result as its InitializeResult (bridgedInitialize). Any refusal
// (a JSON-RPC error such as -32601, HTTP 400, 404 or 405, an answer that
// is not JSON-RPC) is "no", at debug level: initialize follows. Only the
// end of ctx, an upstream that is not reachable at all and a failure of
// the upstream's own headers are errors.
func (c *Client) discover(ctx context.Context, s *session) (bool, error) {
	own, err := c.own.get(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err)
	}
	params, err := c.meta.apply(nil)
	if err != nil {
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err)
	}
	msg := jsonrpc.Message{Method: protocol.MethodDiscover, ID: json.RawMessage("0"), Params: params}
	hop, err := protocol.RequestHeaders(msg, nil)
	if err != nil {
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err)
	}
	cl, body, err := c.newCall(msg, own)
	if err != nil {
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err)
	}
	cl.hop = hop
	dctx, cancel := context.WithTimeout(ctx, discoverTimeout)
	defer cancel()
	resp, err := c.attempt(dctx, s, cl, body, nil)
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, ErrUnreachable):
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err) // initialize would not get through either
	case err != nil:
		c.log.Debug("the upstream does not answer server/discover; initializing", "error", err)
		return false, nil
	case resp.Error != nil:
		c.log.Debug("the upstream refuses server/discover; initializing", "code", resp.Error.Code)
		return false, nil
	}
	var r struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(resp.Result, &r); err != nil || !slices.Contains(r.SupportedVersions, protocol.Version20260728) {
		c.log.Debug("the upstream does not offer the stateless revision; initializing", "offered", r.SupportedVersions)
		return false, nil
	}
	init, err := c.bridgedInitialize(resp.Result)
	if err != nil {
		return false, fmt.Errorf("%s: %w", protocol.MethodDiscover, err)
	}
	s.version, s.initResult = protocol.Version20260728, init
	s.conn.negotiated(s.version)
	return true, nil
}

// bridgedInitialize makes an initialize result of a discover result: its
// capabilities and instructions, its serverInfo (from the result's _meta,
// MCP 2026-07-28 basic/index), and the session-era revision the caller
// speaks (see InitializeResult).
func (c *Client) bridgedInitialize(discovered json.RawMessage) (json.RawMessage, error) {
	var d struct {
		Capabilities json.RawMessage `json:"capabilities"`
		Instructions string          `json:"instructions,omitempty"`
		ServerInfo   json.RawMessage `json:"serverInfo"` // not in the schema; kept if a server sends it
	}
	if err := json.Unmarshal(discovered, &d); err != nil {
		return nil, fmt.Errorf("the result is not a discover result: %w", err)
	}
	info, ok := protocol.Meta(discovered, protocol.MetaServerInfo)
	if !ok {
		info = d.ServerInfo
	}
	if len(info) == 0 || info[0] != '{' {
		info = json.RawMessage(`{"name":"","version":""}`)
	}
	if len(d.Capabilities) == 0 || d.Capabilities[0] != '{' {
		d.Capabilities = json.RawMessage("{}")
	}
	version := ProtocolVersion
	if c.opts.Initialize != nil {
		if v, ok := jsonrpc.StringMember(c.opts.Initialize, "protocolVersion"); ok && supportedVersion(v) {
			version = v
		}
	}
	return json.Marshal(struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      json.RawMessage `json:"serverInfo"`
		Instructions    string          `json:"instructions,omitempty"`
	}{version, d.Capabilities, info, d.Instructions})
}

// stateless reports whether the current session is a 2026-07-28 one.
func (c *Client) stateless() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil && protocol.Stateless(c.sess.version)
}

// capabilities returns the server capabilities of the current session.
func (c *Client) capabilities() json.RawMessage {
	caps, _ := jsonrpc.Member(c.InitializeResult(), "capabilities")
	return caps
}

// statelessMeta is what every request to a 2026-07-28 upstream carries in
// params._meta in place of a handshake (MCP 2026-07-28 basic/index,
// "Per-request protocol fields"): the revision, the capabilities the
// session was opened with, and mcpgate's clientInfo.
type statelessMeta struct {
	capabilities json.RawMessage
	clientInfo   json.RawMessage
}

func newStatelessMeta(opts Options) statelessMeta {
	caps := opts.Capabilities
	if opts.Initialize != nil {
		caps, _ = jsonrpc.Member(opts.Initialize, "capabilities") // a relayed client's
	}
	if len(caps) == 0 || caps[0] != '{' {
		caps = json.RawMessage("{}")
	}
	info, _ := json.Marshal(map[string]string{"name": opts.ClientName, "version": opts.ClientVersion})
	return statelessMeta{capabilities: caps, clientInfo: info}
}

// apply sets the three members in params._meta, over whatever the
// caller's message had under those keys: they describe this hop's client,
// which is mcpgate.
func (m statelessMeta) apply(params json.RawMessage) (json.RawMessage, error) {
	version, _ := json.Marshal(protocol.Version20260728)
	var err error
	for _, kv := range []struct {
		key   string
		value json.RawMessage
	}{
		{protocol.MetaProtocolVersion, version},
		{protocol.MetaClientCapabilities, m.capabilities},
		{protocol.MetaClientInfo, m.clientInfo},
	} {
		if params, err = protocol.WithMeta(params, kv.key, kv.value); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// statelessCall is Call on a 2026-07-28 upstream: resources/subscribe and
// unsubscribe change the listen request (listen.go), ping is answered by
// the Client; an InputRequiredResult
// is fulfilled and the request sent again (mrtr.go), unless
// Options.PassInputRequired.
func (c *Client) statelessCall(ctx context.Context, req jsonrpc.Message, headers http.Header, onNote func(jsonrpc.Message)) (jsonrpc.Message, error) {
	switch req.Method {
	case "resources/subscribe", "resources/unsubscribe":
		return c.subscribe(ctx, req)
	case "ping":
		// The revision has no ping (the upstream would not know it); a
		// session-era caller's is answered here, as its session's peer.
		return jsonrpc.NewResult(req.ID, struct{}{})
	}
	if c.opts.PassInputRequired || !protocol.MayRequireInput(req.Method) {
		return c.statelessOnce(ctx, req, headers, onNote)
	}
	return c.fulfilRounds(ctx, req, headers, onNote)
}

// statelessOnce sends one request to a 2026-07-28 upstream: its _meta set
// (statelessMeta), its per-hop headers computed for this hop (hopHeaders).
// The caller's id is put back in the response.
func (c *Client) statelessOnce(ctx context.Context, req jsonrpc.Message, headers http.Header, onNote func(jsonrpc.Message)) (jsonrpc.Message, error) {
	params, err := c.meta.apply(req.Params)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("call %s on upstream %s: %w", req.Method, c.where, err)
	}
	msg := jsonrpc.Message{ID: req.ID, Method: req.Method, Params: params}
	hop, err := c.hopHeaders(ctx, msg, headers)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("call %s on upstream %s: %w", req.Method, c.where, err)
	}
	cl, body, err := c.newCall(msg, headers)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("call %s on upstream %s: %w", req.Method, c.where, err)
	}
	cl.hop = hop
	resp, err := c.exchange(ctx, cl, body, onNote)
	if err != nil {
		var ok bool
		if resp, ok = errorAnswer(err, cl.wireID); !ok {
			return jsonrpc.Message{}, c.failure(ctx, "call "+req.Method, err)
		}
	}
	if req.Method == "tools/list" && resp.Error == nil {
		c.tools.learn(req.Params, resp.Result)
	}
	resp.ID = req.ID
	return resp, nil
}

// errorAnswer reads the JSON-RPC error that a 2026-07-28 upstream answered
// a request with along with an HTTP error status (MCP 2026-07-28
// basic/transports: a refused request is answered with HTTP 400 or the
// like and a JSON-RPC error, HeaderMismatch or an unknown tool for one):
// the request's answer, not a failure of the transport.
func errorAnswer(err error, wireID json.RawMessage) (jsonrpc.Message, bool) {
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode < 400 || se.StatusCode >= 500 {
		return jsonrpc.Message{}, false
	}
	m, derr := jsonrpc.DecodeMessage([]byte(se.Body))
	if derr != nil || m.Error == nil || (idKey(m.ID) != idKey(wireID) && idKey(m.ID) != "null") {
		return jsonrpc.Message{}, false
	}
	return m, true
}

// hopHeaders computes the per-hop headers of msg, as sent to the upstream
// (protocol.RequestHeaders): MCP-Protocol-Version, Mcp-Method, Mcp-Name with
// the upstream's own name, and for tools/call the Mcp-Param-* headers of
// the upstream tool's x-mcp-header annotations. Never a caller's: the
// transport drops those (ownedHeader). A tool whose schema the Client has
// not seen is looked up with one tools/list first (with the call's
// headers: on the caller's behalf); one still unknown goes without
// Mcp-Param-* headers.
func (c *Client) hopHeaders(ctx context.Context, msg jsonrpc.Message, headers http.Header) (http.Header, error) {
	var schema json.RawMessage
	if msg.Method == "tools/call" {
		if name, ok := jsonrpc.StringMember(msg.Params, "name"); ok {
			schema = c.toolSchema(ctx, name, headers)
		}
	}
	return protocol.RequestHeaders(msg, schema)
}

// maxListPages bounds the tools/list pages read to learn a tool's schema.
const maxListPages = 16

// toolSchema returns the inputSchema of the upstream's tool name, listing
// the tools once when it is not known (and was not missing from the last
// listing already).
func (c *Client) toolSchema(ctx context.Context, name string, headers http.Header) json.RawMessage {
	schema, known, listed := c.tools.lookup(name)
	if known || listed {
		return schema
	}
	var cursor *string
	for page := 0; page < maxListPages; page++ {
		params := json.RawMessage("{}")
		if cursor != nil {
			params, _ = json.Marshal(map[string]string{"cursor": *cursor})
		}
		resp, err := c.statelessOnce(ctx, jsonrpc.Message{ID: json.RawMessage(`"mcpgate-tools"`), Method: "tools/list", Params: params}, headers, nil)
		if err != nil || resp.Error != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				c.log.Debug("could not list the upstream's tools for a tool's headers", "error", err)
			}
			break
		}
		next, ok := jsonrpc.StringMember(resp.Result, "nextCursor")
		if !ok || next == "" {
			break
		}
		cursor = &next
	}
	schema, _, _ = c.tools.lookup(name)
	c.tools.miss(name)
	return schema
}

// maxToolSchemas bounds the schemas a Client keeps.
const maxToolSchemas = 4096

// toolSchemas are the inputSchemas of a 2026-07-28 upstream's tools, by
// name, learnt from the tools/list results that pass through the Client: a
// first page (a listing without a cursor) replaces them, later pages add
// to them. missing are the names a listing since did not have.
type toolSchemas struct {
	mu      sync.Mutex
	byName  map[string]json.RawMessage
	missing map[string]bool
}

// learn takes the tools of one tools/list result, asked for with params.
func (t *toolSchemas) learn(params, result json.RawMessage) {
	var r struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, paged := jsonrpc.StringMember(params, "cursor"); !paged || t.byName == nil {
		t.byName = make(map[string]json.RawMessage, len(r.Tools))
	}
	t.missing = nil
	for _, tool := range r.Tools {
		if len(t.byName) >= maxToolSchemas {
			break
		}
		t.byName[tool.Name] = tool.InputSchema
	}
}

// lookup returns the schema of tool name; known says it has one, listed
// that a listing since the last change did not have it.
func (t *toolSchemas) lookup(name string) (schema json.RawMessage, known, listed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	schema, known = t.byName[name]
	return schema, known, t.missing[name]
}

// miss records that a listing did not have tool name, so that calls of it
// do not list again until the tools change.
func (t *toolSchemas) miss(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byName[name]; ok {
		return
	}
	if t.missing == nil {
		t.missing = map[string]bool{}
	}
	if len(t.missing) < maxToolSchemas {
		t.missing[name] = true
	}
}

// forget drops what is known: the upstream's tools changed.
func (t *toolSchemas) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byName, t.missing = nil, nil
}
