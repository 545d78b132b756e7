// Package gateway assembles mcpgate from its configuration and serves it:
// the client transports, the admin API, health checks and metrics, over one
// store, one registry of upstreams and one passthrough policy.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/admin"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/frontdoor"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/metrics"
	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Gateway is a running mcpgate. Close releases everything it holds.
type Gateway struct {
	cfg        config.Config
	logger     *slog.Logger
	store      *store.Store
	registry   *registry.Registry
	resolver   *passthrough.AllowlistResolver
	streamable *frontdoor.Streamable
	relay      *frontdoor.Streamable // the 1:1 relay, /gateways/{id}/mcp
	relaySSE   *frontdoor.SSE        // the 1:1 relay, /gateways/{id}/sse
	legacySSE  *frontdoor.SSE
	websocket  *frontdoor.WebSocket
	dispatcher *dispatch.Dispatcher
	rpc        *dispatch.PrincipalSessions // /rpc's sessions, one per client
	stateless  *dispatch.Stateless         // MCP 2026-07-28 clients of /mcp and the relay
	verifier   *auth.Verifier              // nil when AUTH_REQUIRED=false
	jwks       *auth.JWKS                  // the identity provider's keys, if any
	// revoked is the verifier's list of revoked tokens, which revocations
	// keeps equal to the store's.
	revoked     auth.RevocationList
	revocations *revocations
	proxy       *auth.TrustedProxy // trusted-proxy authentication; nil when off
	access      *accessRules
	routes      []route // the route table (authorize.go)
	httpClient  *http.Client
	// resource is mcpgate as an OAuth 2.1 protected resource (resource.go).
	resource *protectedResource
	// unlockSQLite releases the one-instance lock of a SQLite database.
	unlockSQLite func()
	// cluster is what this instance shares with the others.
	cluster *cluster
	handler http.Handler
	ready   atomic.Bool
	// stopAssertionKeys ends the signing keys' maintenance.
	stopAssertionKeys func()
}

// StartupError is a configuration problem that stops mcpgate before it
// serves; it names the setting.
type StartupError struct {
	Setting string
	Message string
}

func (e *StartupError) Error() string { return e.Setting + ": " + e.Message }

// New opens the store (applying migrations), seeds the global passthrough
// list, connects to every registered upstream and builds the HTTP handler.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger, version string) (*Gateway, error) {
	g := &Gateway{cfg: cfg, logger: logger, resource: &protectedResource{cfg: cfg.Gateway.Resource}}
	gc := cfg.Gateway
	if cfg.AuthRequired {
		v, jwks, err := clientVerifier(ctx, gc, &g.revoked, logger)
		if err != nil {
			return nil, err
		}
		g.verifier, g.jwks = v, jwks
	}
	if ac := gc.Access; ac.ProxyAuth {
		g.proxy = &auth.TrustedProxy{Header: cfg.Passthrough.ProxyUserHeader, Networks: ac.TrustedProxies, Admins: ac.ProxyAdminUsers}
	}
	var sealer *auth.Sealer
	if gc.AuthEncryptionSecret != "" {
		var old []string // the secret being rotated away from, opened and re-sealed at Start
		if gc.OldAuthEncryptionSecret != "" {
			old = append(old, gc.OldAuthEncryptionSecret)
		}
		s, err := auth.NewSealer(gc.AuthEncryptionSecret, old...)
		if err != nil {
			g.Close()
			return nil, &StartupError{config.EnvAuthEncryptionSecret, err.Error()}
		}
		sealer = s
	} else {
		logger.Warn("AUTH_ENCRYPTION_SECRET is not set: upstreams with credentials cannot be registered or used")
	}

	if path, ok := strings.CutPrefix(gc.DatabaseURL, "sqlite:///"); ok {
		release, err := lockSQLite(path)
		if err != nil {
			g.Close() // the identity provider's key set, if any
			return nil, &StartupError{config.EnvDatabaseURL, err.Error()}
		}
		g.unlockSQLite = release
	}
	st, err := store.Open(ctx, gc.DatabaseURL)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("open the database (%s): %w", config.EnvDatabaseURL, err)
	}
	g.store = st

	if g.cluster, err = joinCluster(ctx, gc, logger); err != nil {
		g.Close()
		return nil, err
	}
	if g.revocations, err = startRevocations(ctx, st, g.cluster.bus, &g.revoked, cfg.Passthrough.GlobalConfigCacheTTL, logger); err != nil {
		g.Close()
		return nil, err
	}
	if g.access, err = newAccessRules(ctx, st, g.cluster.bus, gc.Access.DenyByDefault, logger); err != nil {
		g.Close()
		return nil, err
	}
	assertions := gc.IdentityAssertion.OrDefaults()
	keys, stopKeys, err := startAssertionKeys(ctx, st, sealer, g.cluster, assertions, logger)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.stopAssertionKeys = stopKeys
	policy := passthrough.NewPolicy(cfg.Passthrough)
	g.resolver = passthrough.NewAllowlistResolver(policy, st.GlobalPassthrough, nil)
	m := metrics.New()
	httpClient := upstreamHTTPClient(gc.Egress, logger)
	g.httpClient = httpClient
	// The front door exists only later; the registry tells it of changes
	// through this indirection.
	var onChange atomic.Pointer[func(registry.IndexChange)]
	g.registry = registry.New(registry.Config{
		OnChange: func(c registry.IndexChange) {
			if f := onChange.Load(); f != nil {
				(*f)(c)
			}
		},
		Store: st, Sealer: sealer, Policy: policy, Resolver: g.resolver, HTTPClient: httpClient, Egress: gc.Egress,
		ToolNameSeparator: gc.ToolNameSeparator, ConnectTimeout: min(gc.UpstreamTimeout, 30*time.Second),
		DrainTimeout:    gc.UpstreamTimeout,
		RefreshInterval: gc.CatalogueRefreshInterval, Logger: logger, ClientVersion: version,
		Publish: g.cluster.publish(logger), OnSessionOpened: m.UpstreamSessionOpened,
		AssertOwn: assertOwn(keys, assertions.Header),
	})
	g.cluster.applyTo(g.registry, logger)
	if err := g.registry.Seed(ctx); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.registry.Start(ctx); err != nil {
		g.Close()
		return nil, err
	}

	d := dispatch.New(dispatch.Config{
		Directory: g.registry, Policy: policy, Resolver: g.resolver, Metrics: m, Logger: logger,
		Timeout: gc.UpstreamTimeout, ServerName: "mcpgate", ServerVersion: version,
		MaxUpstreamSessions: gc.MaxUpstreamSessionsPerUpstream, Access: g.access.grant(cfg.AuthRequired),
		Assertions: keys, AssertionHeader: assertions.Header,
	})
	g.dispatcher = d
	// Every session is bound to the client that opened it: a session id is
	// never a credential (MCP security best practices, "Session Hijacking").
	principal := func(r *http.Request) string { return auth.Principal(r.Context()) }
	// One client's sessions are bounded across every front door, so that
	// one client cannot lock the others out of new sessions.
	perClient := frontdoor.NewClientLimit(gc.MaxSessionsPerClient)
	// Relay sessions are scoped to the upstream their path names.
	upstreamOfPath := func(r *http.Request) string { return r.PathValue("id") }
	// Each federation session gets upstream sessions of its own, lazily;
	// opening one contacts nothing, so another instance can open it again.
	// MCP 2026-07-28 clients open no session: their requests go on
	// upstream sessions pooled per client and capabilities (dispatch.Stateless).
	g.stateless = d.NewStateless(auth.Principal, gc.SessionIdleTimeout, gc.MaxUpstreamSessionsPerUpstream)
	streamable := frontdoor.StreamableConfig{Logger: logger, RequestID: requestIDOf, IdleTimeout: gc.SessionIdleTimeout,
		Principal: principal, Limit: perClient, Open: federatedOpener(d), Resumable: true, Stateless: g.stateless}
	if g.cluster.sessions != nil {
		streamable.Shared = g.cluster.sessions
	}
	g.streamable = frontdoor.NewStreamable(streamable)
	// Sessions on one connection keep their opening headers (spec §4).
	streams := frontdoor.StreamConfig{Handler: d, Logger: logger, RequestID: requestIDOf, Policy: policy, IdleTimeout: gc.SessionIdleTimeout,
		Principal: principal, Limit: perClient, Open: federatedOpener(d)}
	if g.cluster.router != nil {
		streams.Router = g.cluster.router
	}
	g.legacySSE = frontdoor.NewSSE(streams)
	wsStreams := streams
	wsStreams.Still = g.still
	g.websocket = frontdoor.NewWebSocket(frontdoor.WebSocketConfig{StreamConfig: wsStreams})
	indexChanged := func(c registry.IndexChange) {
		// Open relay sessions follow their upstream: a disabled, deleted
		// or moved one ends them (spec §4: calls use what is in force now).
		d.UpstreamChanged(c.Upstream, c.Removed)
		// One list_changed per list whose content changed, none for a
		// refresh that changed nothing.
		name := g.access.nameOf(c.Upstream, false, g.registry.Index())
		for _, l := range []struct {
			changed bool
			method  string
		}{
			{c.Lists.Tools, "notifications/tools/list_changed"},
			{c.Lists.Resources, "notifications/resources/list_changed"},
			{c.Lists.Prompts, "notifications/prompts/list_changed"},
		} {
			if !l.changed {
				continue
			}
			n, _ := jsonrpc.NewNotification(l.method, nil)
			concerned := g.access.concerned(c.Upstream, c.Removed != "", g.registry.Index(), g.verifier == nil)
			g.streamable.BroadcastIf(n, concerned)
			g.legacySSE.BroadcastIf(n, concerned)
			g.websocket.BroadcastIf(n, concerned)
			g.stateless.ListChanged(n, c.Upstream, name)
		}
	}
	onChange.Store(&indexChanged)

	mux := http.NewServeMux()
	// Stateless calls too get upstream sessions of their client's own.
	g.rpc = d.NewPrincipalSessions(auth.Principal, gc.SessionIdleTimeout, gc.MaxUpstreamSessionsPerUpstream)
	g.relay = frontdoor.NewStreamable(frontdoor.StreamableConfig{
		Logger: logger, RequestID: requestIDOf, IdleTimeout: gc.SessionIdleTimeout,
		Scope:              upstreamOfPath,
		Principal:          principal,
		Limit:              perClient,
		Open:               relayOpener(d),
		EventStreamAnswers: true,
		Stateless:          g.stateless,
	})
	relayStreams := streams
	relayStreams.Handler, relayStreams.Open = nil, relayOpener(d)
	relayStreams.Scope = upstreamOfPath
	relayStreams.MessagePath = func(r *http.Request) string {
		return "/gateways/" + url.PathEscape(r.PathValue("id")) + "/message"
	}
	g.relaySSE = frontdoor.NewSSE(relayStreams)
	// The route table: every route and the role it needs (authorize.go).
	routes := []route{
		{pattern: "GET /health", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, `{"status":"healthy"}`)
		})},
		{pattern: "GET /ready", handler: http.HandlerFunc(g.readyHandler)},
		{pattern: "GET /metrics", handler: m.Handler()},
		{pattern: "GET /.well-known/jwks.json", handler: jwksHandler(keys, assertions.KeyLead)},
		// Protected-resource metadata (RFC 9728), without a token.
		{pattern: metadataPath, handler: http.HandlerFunc(g.resource.serveMetadata)},
		{pattern: metadataPath + "/", handler: http.HandlerFunc(g.resource.serveMetadata)},
		{pattern: "/rpc", role: auth.RoleClient, handler: &frontdoor.RPC{Handler: g.rpc, Logger: logger, RequestID: requestIDOf}},
		{pattern: "/mcp", role: auth.RoleClient, handler: g.streamable},
		{pattern: "/mcp/", role: auth.RoleClient, handler: g.streamable},
		{pattern: "/gateways/{id}/mcp", role: auth.RoleClient, handler: g.relay},
		{pattern: "/gateways/{id}/sse", role: auth.RoleClient, handler: http.HandlerFunc(g.relaySSE.ServeStream)},
		{pattern: "/gateways/{id}/message", role: auth.RoleClient, handler: http.HandlerFunc(g.relaySSE.ServeMessage)},
		{pattern: "/sse", role: auth.RoleClient, handler: http.HandlerFunc(g.legacySSE.ServeStream)},
		{pattern: frontdoor.MessagePath, role: auth.RoleClient, handler: http.HandlerFunc(g.legacySSE.ServeMessage)},
		{pattern: "/ws", role: auth.RoleClient, handler: g.websocket,
			token: webSocketToken(cfg.Passthrough.AuthHeaderName), howTo: webSocketHowTo(cfg.Passthrough.AuthHeaderName)},
		// Anything else is unknown, to authenticated clients only.
		{pattern: "/", role: auth.RoleClient, handler: http.NotFoundHandler()},
	}
	adminRoutes := (&admin.API{Registry: g.registry, Resolver: g.resolver, Access: g.access, Logger: logger}).Routes()
	adminRoutes = append(adminRoutes, (&admin.RevocationAPI{Revocations: g.revocations, Logger: logger}).Routes()...)
	adminRoutes = append(adminRoutes, (&admin.SigningKeys{Keys: rotator(keys), Logger: logger}).Routes()...)
	for _, a := range adminRoutes {
		routes = append(routes, route{pattern: a.Pattern, role: auth.RoleAdmin, handler: a.Handler})
	}
	g.register(mux, routes)
	bodyTimeout := gc.RequestBodyTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = config.DefaultRequestBodyTimeout
	}
	g.handler = withBodyDeadline(g.withRequestID(mux), bodyTimeout)
	if g.cluster.sessions != nil {
		if err := g.cluster.sessions.Listen(ctx, g.streamable.Forget); err != nil {
			g.Close()
			return nil, &StartupError{config.EnvRedisURL, err.Error()}
		}
	}
	if g.cluster.router != nil {
		deliver := func(m []byte) bool {
			return g.legacySSE.DeliverRouted(m) || g.relaySSE.DeliverRouted(m)
		}
		if err := g.cluster.router.Listen(ctx, deliver); err != nil {
			g.Close()
			return nil, &StartupError{config.EnvRedisURL, err.Error()}
		}
	}
	g.ready.Store(true)
	return g, nil
}

// UpstreamSessions returns the upstream sessions federation clients hold
// now, over every upstream.
func (g *Gateway) UpstreamSessions() int { return g.dispatcher.UpstreamSessions() }

// Handler is the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight calls finish within SHUTDOWN_TIMEOUT, and
// returns. Close must still be called.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	fresh := &newConnections{}
	// A browser page can reach any mcpgate the browser can, so the Origin
	// check guards every listener; the Host check only a loopback one.
	//
	// A page that DNS rebinding pointed at mcpgate can only do harm when
	// mcpgate asks for no token (the page has none to send), so only then
	// must mcpgate's own origin be named by a host it cannot forge;
	// otherwise a non-browser WebSocket client that sends its own address
	// as Origin (Python's websocket-client does) is let in under any name.
	ownHosts := []string{"*"}
	if g.verifier == nil {
		ownHosts = g.cfg.Gateway.AllowedHosts
	}
	handler := guardOrigin(g.handler, g.cfg.Gateway.AllowedOrigins, ownHosts)
	if isLoopback(ln.Addr()) && !slices.Contains(g.cfg.Gateway.AllowedHosts, "*") {
		handler = guardAgainstRebinding(handler, g.cfg.Gateway.AllowedHosts)
	}
	srv := &http.Server{
		ConnState:         fresh.track,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.ready.Store(false)
	g.logger.Info("shutting down: finishing in-flight calls", "timeout", g.cfg.Gateway.ShutdownTimeout.String())
	g.streamable.Drain() // ends open GET streams so Shutdown is not held by them
	g.relay.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.Gateway.ShutdownTimeout)
	defer cancel()
	// Calls on the session transports were accepted with 202 (SSE) or on a
	// hijacked connection (WebSocket), so Shutdown does not wait for them:
	// their handlers let them finish, then end the sessions, which also
	// ends the SSE streams Shutdown is waiting for.
	var drains sync.WaitGroup
	for _, drain := range []func(context.Context){g.legacySSE.Drain, g.relaySSE.Drain, g.websocket.Drain} {
		drains.Go(func() { drain(sctx) })
	}
	defer drains.Wait()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	// A connection that has sent nothing yet carries no call; Shutdown
	// would wait 5 s before counting it idle, so it is closed now, as
	// Shutdown closes idle keep-alive connections.
	fresh.closeAll()
	if err := <-shut; err != nil {
		_ = srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// isLoopback reports whether addr is a loopback address.
func isLoopback(addr net.Addr) bool {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guardAgainstRebinding refuses, with 403, a request whose Host names a
// host other than a loopback name or one of allowed: on a loopback
// listener, only a page that DNS rebinding pointed at this machine sends
// those (MCP basic/transports, "Security Warning": servers should bind to
// localhost). Its Origin is guardOrigin's.
func guardAgainstRebinding(next http.Handler, allowed []string) http.Handler {
	ok := func(host string) bool {
		host = strings.ToLower(strings.Trim(host, "[]"))
		if host == "localhost" || slices.Contains(allowed, host) {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	refuse := func(w http.ResponseWriter, what, value string) {
		body, _ := json.Marshal(map[string]string{"detail": fmt.Sprintf(
			"%s %q is not allowed: mcpgate listens on a loopback address and accepts only localhost, 127.0.0.1 and [::1] there (DNS-rebinding protection); add names with ALLOWED_HOSTS", what, value)})
		writeJSON(w, http.StatusForbidden, string(body))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !ok(host) {
			refuse(w, "Host", r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newConnections tracks the connections that have not sent a request yet
// (http.StateNew).
type newConnections struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (n *newConnections) track(c net.Conn, state http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if state == http.StateNew {
		if n.conns == nil {
			n.conns = map[net.Conn]struct{}{}
		}
		n.conns[c] = struct{}{}
		return
	}
	delete(n.conns, c)
}

func (n *newConnections) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		_ = c.Close()
	}
}

// Close stops the registry's connections and closes the store.
func (g *Gateway) Close() {
	if g.streamable != nil {
		g.streamable.Close()
	}
	if g.relay != nil {
		g.relay.Close()
	}
	if g.legacySSE != nil {
		g.legacySSE.Close()
	}
	if g.relaySSE != nil {
		g.relaySSE.Close()
	}
	if g.websocket != nil {
		g.websocket.Close()
	}
	if g.rpc != nil {
		g.rpc.Close()
	}
	if g.stateless != nil {
		g.stateless.Close()
	}
	if g.stopAssertionKeys != nil {
		g.stopAssertionKeys()
		g.stopAssertionKeys = nil
	}
	if g.registry != nil {
		_ = g.registry.Close()
	}
	if g.revocations != nil {
		g.revocations.close()
		g.revocations = nil
	}
	g.cluster.close()
	g.cluster = nil
	if g.jwks != nil {
		g.jwks.Close()
		g.jwks = nil
	}
	if g.store != nil {
		_ = g.store.Close()
	}
	if g.unlockSQLite != nil {
		g.unlockSQLite()
		g.unlockSQLite = nil
	}
	if g.httpClient != nil {
		g.httpClient.CloseIdleConnections()
	}
}

func (g *Gateway) readyHandler(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !g.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, `{"status":"not ready","reason":"starting or shutting down"}`)
		return
	}
	if err := g.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, `{"status":"not ready","reason":"database unreachable"}`)
		return
	}
	// Ready without the bus too: the instance serves, and the others catch
	// up by the cache TTL (docs/deploy.md).
	if g.cluster != nil && !g.cluster.bus.Connected() {
		writeJSON(w, http.StatusOK, `{"status":"ready","bus":"disconnected"}`)
		return
	}
	writeJSON(w, http.StatusOK, `{"status":"ready"}`)
}

// still says whether the client that authenticated r still may: its token
// not revoked or expired since (Verifier.Still). A WebSocket asks before
// each message, its upgrade having been its one authentication.
func (g *Gateway) still(r *http.Request) error {
	id, ok := auth.IdentityOf(r.Context())
	if !ok || g.verifier == nil {
		return nil
	}
	if err := g.verifier.Still(id, time.Now()); err != nil {
		return fmt.Errorf("the session's token no longer holds: %w", err)
	}
	return nil
}

// authenticate checks the client's token (AUTH_HEADER_NAME) when
// AUTH_REQUIRED is on.
func (g *Gateway) authenticate(next http.Handler) http.Handler {
	header := g.cfg.Passthrough.AuthHeaderName
	return g.authenticateWith(next, func(r *http.Request) (string, bool) { return auth.BearerToken(r.Header, header) },
		fmt.Sprintf("send %s: Bearer <token>", header))
}

// authenticateWith checks the client token tokenOf finds in a request when
// AUTH_REQUIRED is on; howTo tells a client without one how to send it.
func (g *Gateway) authenticateWith(next http.Handler, tokenOf func(*http.Request) (string, bool), howTo string) http.Handler {
	if g.verifier == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := tokenOf(r)
		if !ok {
			g.unauthorized(w, r, "", "authentication required: "+howTo+" (mint one with `mcpgate token`)")
			return
		}
		id, err := g.verifier.Verify(r.Context(), token, time.Now())
		if err != nil {
			g.unauthorized(w, r, "invalid_token", "invalid token: "+err.Error())
			return
		}
		// Sessions are bound to the client that opened them (MCP security
		// best practices: session ids are not credentials).
		next.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
	})
}

// unauthorized answers 401 with msg, and a WWW-Authenticate challenge that
// points at the endpoint's protected-resource metadata (resource.go);
// errCode is RFC 6750's ("invalid_token"), "" when the request had no token.
func (g *Gateway) unauthorized(w http.ResponseWriter, r *http.Request, errCode, msg string) {
	w.Header().Set("WWW-Authenticate", g.resource.challenge(r, errCode, msg))
	body, _ := jsonString(msg)
	writeJSON(w, http.StatusUnauthorized, `{"detail":`+body+`}`)
}

type requestIDKey struct{}

// withRequestID gives every request an id, kept from a sane X-Request-Id
// or made up, echoed in the response and used in logs.
func (g *Gateway) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		g.logger.Debug("http request", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration_ms", time.Since(start).Milliseconds())
	})
}

func requestIDOf(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == ""
}

// statusRecorder remembers the status written, and keeps Flush working for
// SSE answers.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// relayOpener opens a 1:1 relay session with the upstream that the path of
// /gateways/{id}/mcp names.
func relayOpener(d *dispatch.Dispatcher) frontdoor.Opener {
	return func(ctx context.Context, r *http.Request, initialize jsonrpc.Message, in dispatch.Inbound, push func(jsonrpc.Message)) (frontdoor.Backend, jsonrpc.Message, error) {
		rs, answer, err := d.OpenRelay(ctx, r.PathValue("id"), initialize, in, push)
		if err != nil {
			status := http.StatusBadGateway
			switch {
			case errors.Is(err, dispatch.ErrNoUpstream):
				status = http.StatusNotFound
			case errors.Is(err, dispatch.ErrNotRelayable):
				status = http.StatusServiceUnavailable
			}
			return nil, jsonrpc.Message{}, &frontdoor.OpenError{Status: status, Err: err}
		}
		return rs, answer, nil
	}
}

// federatedOpener opens a federation session (/mcp, /sse, /ws), whose
// upstream sessions open as the client first needs each.
func federatedOpener(d *dispatch.Dispatcher) frontdoor.Opener {
	return func(ctx context.Context, _ *http.Request, initialize jsonrpc.Message, in dispatch.Inbound, push func(jsonrpc.Message)) (frontdoor.Backend, jsonrpc.Message, error) {
		fs, answer := d.OpenFederated(ctx, initialize, in, push)
		return fs, answer, nil
	}
}

// upstreamHTTPClient is the one HTTP client every upstream connection and
// token fetch shares: upstream.NewHTTPClient, which never follows a redirect
// (a redirect would carry the upstream's credential and the client's
// passthrough headers to a host nobody registered) and connects only where
// the egress policy allows, with a pool sized for many callers. It has no
// overall timeout: SSE streams are long-lived; each call has its own
// deadline.
func upstreamHTTPClient(policy egress.Policy, logger *slog.Logger) *http.Client {
	hc := upstream.NewHTTPClient(policy, logger)
	if t := upstream.Pool(hc); t != nil {
		t.MaxIdleConns = 512
		t.MaxIdleConnsPerHost = 128
	}
	return hc
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
