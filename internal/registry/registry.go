// Package registry keeps the registered upstreams and the global
// passthrough list: it validates them, seals credentials before they are
// stored, connects to each upstream and reads its catalogue, and publishes
// the federated index the dispatcher routes by.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Config is what a Registry needs.
type Config struct {
	Store  *store.Store
	Sealer *auth.Sealer
	Policy *passthrough.Policy
	// Resolver is invalidated whenever the global list changes.
	Resolver *passthrough.AllowlistResolver
	// HTTPClient is shared by every upstream connection and token fetch; it
	// enforces Egress when it connects (upstream.NewHTTPClient).
	HTTPClient *http.Client
	// Egress is the egress policy upstream URLs and OAuth token URLs are
	// checked against at registration, for an early, clear answer.
	Egress egress.Policy
	// ToolNameSeparator joins an upstream's slug and its own names
	// (GATEWAY_TOOL_NAME_SEPARATOR).
	ToolNameSeparator string
	// ConnectTimeout bounds connecting to an upstream and reading its
	// catalogue.
	ConnectTimeout time.Duration
	// RefreshInterval re-reads every catalogue periodically; 0 never.
	RefreshInterval time.Duration
	Logger          *slog.Logger
	ClientVersion   string
	// OnChange is called after every new index is published, on local and
	// remote changes alike, with what changed (the front door tells its
	// clients that the lists changed; open relay sessions follow their
	// upstream); it must not block.
	OnChange func(IndexChange)
	// Publish, when set, tells the other instances of a change this one
	// made (issue 5), after it is stored: they apply it with ApplyGlobal,
	// ApplyUpstream or ApplyCatalogue. id is the upstream's, for
	// ChangeUpstream and ChangeCatalogue.
	Publish func(ctx context.Context, change Change, id string)
}

// Change names what changed, for Config.Publish.
type Change string

// The changes one instance tells the others of.
const (
	ChangeGlobal    Change = "global"    // the global passthrough list
	ChangeUpstream  Change = "upstream"  // an upstream was created, changed or deleted
	ChangeCatalogue Change = "catalogue" // an upstream's catalogue was read again
)

// IndexChange is what a newly published index changed, for Config.OnChange.
type IndexChange struct {
	// Upstream is the id of the upstream whose entry changed.
	Upstream string
	// Removed says why the upstream left the index, RemovedDeleted or
	// RemovedDisabled; "" when it is in it (changed in place, reconnected,
	// or with a new catalogue).
	Removed string
}

// Why an upstream left the index (IndexChange.Removed), in words a client
// is told.
const (
	RemovedDeleted  = "deleted"
	RemovedDisabled = "disabled"
)

// Registry is safe for concurrent use. Close stops its goroutines and
// closes every upstream connection.
type Registry struct {
	cfg   Config
	index atomic.Pointer[dispatch.Index]

	mu   sync.Mutex // guards live and serialises changes to the index
	live map[string]*liveUpstream

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// liveUpstream is a registered upstream and its connection.
type liveUpstream struct {
	record store.Upstream
	route  *dispatch.Route
	client *upstream.Client
	creds  *auth.UpstreamAuth
}

// View is an upstream as the admin API shows it: never its credentials.
type View struct {
	ID                 string               `json:"id"`
	Name               string               `json:"name"`
	Slug               string               `json:"slug"`
	URL                string               `json:"url"`
	Transport          upstream.Transport   `json:"transport"`
	AuthType           passthrough.AuthType `json:"auth_type"`
	PassthroughHeaders *[]string            `json:"passthrough_headers"`
	Enabled            bool                 `json:"enabled"`
	Status             string               `json:"status"`
	StatusReason       string               `json:"status_reason,omitempty"`
	Tools              int                  `json:"tool_count"`
	Resources          int                  `json:"resource_count"`
	Prompts            int                  `json:"prompt_count"`
	CreatedAt          time.Time            `json:"created_at"`
	UpdatedAt          time.Time            `json:"updated_at"`
	Version            int64                `json:"version"`
}

// Statuses of an upstream.
const (
	StatusAvailable   = "available"
	StatusUnavailable = "unavailable"
	StatusDisabled    = "disabled"
)

// New returns a registry; Start loads and connects the stored upstreams.
func New(cfg Config) *Registry {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.ToolNameSeparator == "" {
		cfg.ToolNameSeparator = "-"
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{cfg: cfg, live: map[string]*liveUpstream{}, ctx: ctx, cancel: cancel}
	r.index.Store(dispatch.NewIndex(nil, cfg.ToolNameSeparator))
	return r
}

// Index returns the current federated index.
func (r *Registry) Index() *dispatch.Index { return r.index.Load() }

// Start loads every stored upstream, connects to each (concurrently; an
// unreachable one is marked unavailable and does not stop the others) and
// starts the periodic refresh.
func (r *Registry) Start(ctx context.Context) error {
	records, err := r.cfg.Store.ListUpstreams(ctx)
	if err != nil {
		return fmt.Errorf("load upstreams: %w", err)
	}
	var wg sync.WaitGroup
	for _, rec := range records {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.connect(ctx, rec, true)
		}()
	}
	wg.Wait()
	if r.cfg.RefreshInterval > 0 {
		r.goOwned(r.refreshLoop)
	}
	return nil
}

// Close stops the refresh and closes every upstream connection.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.cancel() // under mu: goOwned starts nothing after this
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, l := range r.live {
		if l.client != nil {
			_ = l.client.Close()
		}
		delete(r.live, id)
	}
	return nil
}

func (r *Registry) refreshLoop() {
	t := time.NewTicker(r.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			ids := make([]string, 0, len(r.live))
			for id := range r.live {
				ids = append(ids, id)
			}
			r.mu.Unlock()
			for _, id := range ids {
				if _, err := r.refresh(r.ctx, id); err != nil && r.ctx.Err() == nil {
					r.cfg.Logger.Warn("periodic catalogue refresh failed", "upstream_id", id, "err", err)
				}
			}
		}
	}
}

// Create registers an upstream, connects to it and reads its catalogue. An
// unreachable upstream is registered all the same, marked unavailable with
// the reason.
func (r *Registry) Create(ctx context.Context, s Spec) (View, error) {
	if err := s.validate(r.cfg.Egress, nil); err != nil {
		return View{}, err
	}
	secret, err := r.seal(s.Credentials)
	if err != nil {
		return View{}, err
	}
	rec, err := r.cfg.Store.CreateUpstream(ctx, store.Upstream{
		Name: s.Name, Slug: slug(s.Name), URL: s.URL, Transport: string(s.Transport),
		AuthType: string(s.AuthType), AuthSecret: secret, PassthroughHeaders: s.PassthroughHeaders,
		Enabled: s.Enabled, Status: StatusUnavailable, StatusReason: "not connected yet",
	})
	if err != nil {
		return View{}, storeError(err)
	}
	r.connect(ctx, rec, false)
	r.publish(ctx, ChangeUpstream, rec.ID)
	return r.Get(ctx, rec.ID)
}

// Update changes a registered upstream and reconnects it. Credentials are
// replaced only when the patch carries them (D7: nothing else ever replaces
// them).
func (r *Registry) Update(ctx context.Context, id string, p Patch) (View, error) {
	rec, err := r.cfg.Store.GetUpstream(ctx, id)
	if err != nil {
		return View{}, storeError(err)
	}
	creds, err := r.open(rec)
	if err != nil {
		return View{}, err
	}
	s := Spec{Name: rec.Name, URL: rec.URL, Transport: upstream.Transport(rec.Transport),
		AuthType: passthrough.AuthType(rec.AuthType), Credentials: creds,
		PassthroughHeaders: rec.PassthroughHeaders, Enabled: rec.Enabled}
	if p.Name != nil {
		s.Name = *p.Name
	}
	if p.URL != nil {
		s.URL = *p.URL
	}
	if p.Transport != nil {
		s.Transport = *p.Transport
	}
	if p.AuthType != nil {
		s.AuthType = *p.AuthType
		if p.Credentials == nil && s.AuthType != passthrough.AuthType(rec.AuthType) {
			s.Credentials = auth.Credentials{}
		}
	}
	if p.Credentials != nil {
		s.Credentials = *p.Credentials
	}
	if p.PassthroughHeaders.Set {
		s.PassthroughHeaders = p.PassthroughHeaders.List
	}
	if p.Enabled != nil {
		s.Enabled = *p.Enabled
	}
	if err := s.validate(r.cfg.Egress, &p); err != nil {
		return View{}, err
	}
	secret, err := r.seal(s.Credentials)
	if err != nil {
		return View{}, err
	}
	rec.Name, rec.Slug, rec.URL, rec.Transport = s.Name, slug(s.Name), s.URL, string(s.Transport)
	rec.AuthType, rec.AuthSecret, rec.PassthroughHeaders, rec.Enabled = string(s.AuthType), secret, s.PassthroughHeaders, s.Enabled
	if rec, err = r.cfg.Store.UpdateUpstream(ctx, rec); err != nil {
		return View{}, storeError(err)
	}
	r.connect(ctx, rec, false)
	r.publish(ctx, ChangeUpstream, id)
	return r.Get(ctx, id)
}

// Delete removes an upstream and closes its connection.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.cfg.Store.DeleteUpstream(ctx, id); err != nil {
		return storeError(err)
	}
	r.forget(id)
	r.publish(ctx, ChangeUpstream, id)
	return nil
}

// forget drops upstream id from the index and closes its connection.
func (r *Registry) forget(id string) {
	r.mu.Lock()
	l := r.live[id]
	delete(r.live, id)
	r.publishLocked(IndexChange{Upstream: id, Removed: RemovedDeleted})
	r.mu.Unlock()
	if l != nil && l.client != nil {
		_ = l.client.Close()
	}
}

// Refresh reconnects an upstream and reads its catalogue again, and tells
// the other instances (POST /gateways/{id}/tools/refresh). Discovery
// carries no client headers and never changes stored credentials (spec §5,
// D7).
func (r *Registry) Refresh(ctx context.Context, id string) (View, error) {
	v, err := r.refresh(ctx, id)
	if err == nil {
		r.publish(ctx, ChangeCatalogue, id)
	}
	return v, err
}

// refresh is Refresh for this instance alone: every instance refreshes on
// its own schedule and on its own connection's list_changed.
func (r *Registry) refresh(ctx context.Context, id string) (View, error) {
	rec, err := r.cfg.Store.GetUpstream(ctx, id)
	if err != nil {
		return View{}, storeError(err)
	}
	r.connect(ctx, rec, false)
	return r.Get(ctx, id)
}

// publish tells the other instances of a change, when there are any.
func (r *Registry) publish(ctx context.Context, change Change, id string) {
	if r.cfg.Publish != nil {
		r.cfg.Publish(ctx, change, id)
	}
}

// ApplyGlobal applies another instance's change of the global list: the
// next call resolves it afresh (spec §3, D10).
func (r *Registry) ApplyGlobal() { r.cfg.Resolver.Invalidate() }

// ApplyUpstream applies another instance's change of upstream id, read back
// from the store. A change that leaves the upstream's URL, transport and
// enablement alone — its passthrough list, its credentials, its name —
// applies at once on the connection this instance has; anything else
// reconnects. A deleted upstream is dropped.
func (r *Registry) ApplyUpstream(ctx context.Context, id string) error {
	rec, err := r.cfg.Store.GetUpstream(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		r.forget(id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read upstream %s: %w", id, err)
	}
	r.apply(ctx, rec)
	return nil
}

// apply makes this instance's connection to rec's upstream match rec, as
// ApplyUpstream says.
func (r *Registry) apply(ctx context.Context, rec store.Upstream) {
	id := rec.ID
	r.mu.Lock()
	l := r.live[id]
	r.mu.Unlock()
	if l == nil || l.client == nil || !rec.Enabled || rec.URL != l.record.URL || rec.Transport != l.record.Transport {
		r.connect(ctx, rec, false)
		return
	}
	route, creds, err := r.newRoute(rec)
	if err != nil {
		r.connect(ctx, rec, false) // marks it unavailable with the reason
		return
	}
	route.Caller, route.Catalogue = l.client, l.route.Catalogue
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[id] != l { // replaced meanwhile: that one is newer
		return
	}
	r.live[id] = &liveUpstream{record: rec, route: route, client: l.client, creds: creds}
	r.publishLocked(IndexChange{Upstream: id})
}

// ApplyCatalogue applies another instance's reading of upstream id's
// catalogue, from the store.
func (r *Registry) ApplyCatalogue(ctx context.Context, id string) error {
	cat, err := r.cfg.Store.LoadCatalogue(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the catalogue of upstream %s: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.live[id]
	if l == nil {
		return nil
	}
	route := *l.route
	route.Catalogue = catalogueOf(cat)
	r.live[id] = &liveUpstream{record: l.record, route: &route, client: l.client, creds: l.creds}
	r.publishLocked(IndexChange{Upstream: id})
	return nil
}

// Resync re-reads everything, after changes from other instances may have
// been missed: the global list, and every upstream.
func (r *Registry) Resync(ctx context.Context) error {
	r.cfg.Resolver.Invalidate()
	records, err := r.cfg.Store.ListUpstreams(ctx)
	if err != nil {
		return fmt.Errorf("load upstreams: %w", err)
	}
	known := map[string]bool{}
	for _, rec := range records {
		known[rec.ID] = true
		r.apply(ctx, rec)
	}
	r.mu.Lock()
	var gone []string
	for id := range r.live {
		if !known[id] {
			gone = append(gone, id)
		}
	}
	r.mu.Unlock()
	for _, id := range gone {
		r.forget(id)
	}
	return nil
}

// Get returns one upstream.
func (r *Registry) Get(ctx context.Context, id string) (View, error) {
	rec, err := r.cfg.Store.GetUpstream(ctx, id)
	if err != nil {
		return View{}, storeError(err)
	}
	return r.view(rec), nil
}

// List returns every upstream, by name.
func (r *Registry) List(ctx context.Context) ([]View, error) {
	recs, err := r.cfg.Store.ListUpstreams(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	views := make([]View, len(recs))
	for i, rec := range recs {
		views[i] = r.view(rec)
	}
	return views, nil
}

func (r *Registry) view(rec store.Upstream) View {
	v := View{ID: rec.ID, Name: rec.Name, Slug: rec.Slug, URL: redactURL(rec.URL), Transport: upstream.Transport(rec.Transport),
		AuthType: passthrough.AuthType(rec.AuthType), PassthroughHeaders: rec.PassthroughHeaders, Enabled: rec.Enabled,
		Status: rec.Status, StatusReason: rec.StatusReason, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, Version: rec.Version}
	r.mu.Lock()
	if l, ok := r.live[rec.ID]; ok {
		v.Tools, v.Resources, v.Prompts = len(l.route.Catalogue.Tools), len(l.route.Catalogue.Resources), len(l.route.Catalogue.Prompts)
	}
	r.mu.Unlock()
	return v
}

// GlobalList returns the stored global passthrough list.
func (r *Registry) GlobalList(ctx context.Context) (passthrough.StoredList, error) {
	return r.cfg.Store.GlobalPassthrough(ctx)
}

// SetGlobalList stores the global passthrough list; nil clears it, so the
// env list applies again. The next call uses it (no waiting for the TTL).
func (r *Registry) SetGlobalList(ctx context.Context, names *[]string) error {
	if err := ValidateGlobalList(names); err != nil {
		return err
	}
	if err := r.cfg.Store.SetGlobalPassthrough(ctx, names); err != nil {
		return fmt.Errorf("store the global passthrough list: %w", err)
	}
	r.cfg.Resolver.Invalidate()
	r.publish(ctx, ChangeGlobal, "")
	return nil
}

// Seed creates the stored global list from the env list on first start
// (spec §3); it never overwrites one.
func (r *Registry) Seed(ctx context.Context) error {
	settings := r.cfg.Policy.Settings()
	if !settings.ShouldSeed() {
		return nil
	}
	valid, invalid := passthrough.SeedList(settings.DefaultPassthroughHeaders)
	for _, n := range invalid {
		r.cfg.Logger.Warn("DEFAULT_PASSTHROUGH_HEADERS: invalid header name left out of the stored list", "header", n)
	}
	created, err := r.cfg.Store.SeedGlobalPassthrough(ctx, valid)
	if err != nil {
		return fmt.Errorf("seed the global passthrough list: %w", err)
	}
	if created {
		r.cfg.Logger.Info("stored the global passthrough list from DEFAULT_PASSTHROUGH_HEADERS", "headers", valid)
		r.cfg.Resolver.Invalidate()
	}
	return nil
}

func (r *Registry) seal(c auth.Credentials) ([]byte, error) {
	if c.Username == "" && c.Password == "" && c.Token == "" && len(c.Headers) == 0 && c.OAuth == nil {
		return nil, nil
	}
	if r.cfg.Sealer == nil {
		return nil, &FieldError{"auth", "AUTH_ENCRYPTION_SECRET is not set: mcpgate stores upstream credentials only encrypted"}
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	return r.cfg.Sealer.Seal(plain)
}

func (r *Registry) open(rec store.Upstream) (auth.Credentials, error) {
	var c auth.Credentials
	if len(rec.AuthSecret) == 0 {
		return c, nil
	}
	if r.cfg.Sealer == nil {
		return c, fmt.Errorf("upstream %q has stored credentials but AUTH_ENCRYPTION_SECRET is not set", rec.Name)
	}
	plain, err := r.cfg.Sealer.Open(rec.AuthSecret)
	if err != nil {
		return c, fmt.Errorf("upstream %q: %w", rec.Name, err)
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("upstream %q: decode credentials: %w", rec.Name, err)
	}
	return c, nil
}

// connect (re)connects an upstream, reads its catalogue, records the
// outcome as its status and publishes a new index. At start-up the stored
// catalogue is used until the upstream answers.
func (r *Registry) connect(ctx context.Context, rec store.Upstream, startup bool) {
	route, creds, err := r.newRoute(rec)
	l := &liveUpstream{record: rec, route: route, creds: creds}
	if startup {
		if cat, cerr := r.cfg.Store.LoadCatalogue(ctx, rec.ID); cerr == nil {
			route.Catalogue = dispatch.Catalogue(catalogueOf(cat))
		}
	}
	status, reason := StatusAvailable, ""
	switch {
	case !rec.Enabled:
		status, reason = StatusDisabled, "disabled"
	case err != nil:
		status, reason = StatusUnavailable, statusReason(err)
	default:
		cctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
		l.client, route.Catalogue, err = r.discover(cctx, rec, l.creds)
		cancel()
		if err != nil {
			status, reason = StatusUnavailable, statusReason(err)
			r.cfg.Logger.Warn("upstream unavailable", "upstream", rec.Name, "err", err)
		} else {
			route.Caller = l.client
			saved := store.Catalogue{Tools: route.Catalogue.Tools, Resources: route.Catalogue.Resources,
				ResourceTemplates: route.Catalogue.ResourceTemplates, Prompts: route.Catalogue.Prompts, RefreshedAt: time.Now()}
			if err := r.cfg.Store.SaveCatalogue(ctx, rec.ID, saved); err != nil {
				r.cfg.Logger.Warn("store catalogue", "upstream", rec.Name, "err", err)
			}
		}
	}
	if route.Caller == nil {
		route.Unavailable = reason
	}
	if err := r.cfg.Store.SetUpstreamStatus(ctx, rec.ID, status, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.cfg.Logger.Warn("store upstream status", "upstream", rec.Name, "err", err)
	}
	r.mu.Lock()
	old := r.live[rec.ID]
	r.live[rec.ID] = l
	change := IndexChange{Upstream: rec.ID}
	if !rec.Enabled {
		change.Removed = RemovedDisabled
	}
	r.publishLocked(change)
	r.mu.Unlock()
	if old != nil && old.client != nil {
		_ = old.client.Close() // outside the lock: it may wait on the network
	}
}

// unreachableReason is the status reason of an upstream that could not be
// reached at all.
const unreachableReason = "not reachable (mcpgate's log has the cause)"

// statusReason is what status_reason (and a client calling the upstream)
// is told of a failed connection: the error, except that an upstream not
// reached at all — refused, timed out, hung up, or refused by the egress
// policy — is only "not reachable", the same every time, so status_reason
// cannot be used to scan which addresses and ports answer. The transport
// logged the cause.
func statusReason(err error) string {
	if errors.Is(err, upstream.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
		return unreachableReason
	}
	return err.Error()
}

// newRoute is rec as dispatch routes to it, without a connection or a
// catalogue yet: its allowlist, its credentials opened from the store, its
// relay dialer. An error says why its credentials cannot be used; the
// route is returned all the same.
func (r *Registry) newRoute(rec store.Upstream) (*dispatch.Route, *auth.UpstreamAuth, error) {
	route := &dispatch.Route{
		ID: rec.ID, Name: rec.Name, Slug: rec.Slug,
		Upstream: passthrough.Upstream{Name: rec.Name, AuthType: passthrough.AuthType(rec.AuthType)},
		Endpoint: dispatch.EndpointOf(rec.Transport, rec.URL),
	}
	if rec.PassthroughHeaders != nil {
		route.Allowlist = r.cfg.Policy.Compile(*rec.PassthroughHeaders)
	}
	plain, err := r.open(rec)
	if err != nil {
		return route, nil, err
	}
	creds := auth.NewUpstreamAuth(passthrough.AuthType(rec.AuthType), plain, r.cfg.HTTPClient, nil)
	route.Credentials = creds
	route.Upstream.TokenExchange = creds.TokenExchange()
	if rec.Enabled {
		route.Dial = r.relayDialer(rec)
	}
	return route, creds, nil
}

// relayDialer opens, for one client of the 1:1 relay, an upstream session
// of its own in relay mode (see dispatch.Dialer).
func (r *Registry) relayDialer(rec store.Upstream) dispatch.Dialer {
	return func(ctx context.Context, initialize json.RawMessage, headers http.Header, onMessage func(jsonrpc.Message)) (dispatch.RelayConn, error) {
		c, err := upstream.Connect(ctx, upstream.Options{
			URL: rec.URL, Transport: upstream.Transport(rec.Transport), HTTPClient: r.cfg.HTTPClient,
			ClientName: "mcpgate", ClientVersion: r.cfg.ClientVersion, Logger: r.cfg.Logger,
			Relay: true, Initialize: initialize, OnNotification: onMessage,
		}, headers)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func catalogueOf(c store.Catalogue) dispatch.Catalogue {
	return dispatch.Catalogue{Tools: c.Tools, Resources: c.Resources, ResourceTemplates: c.ResourceTemplates, Prompts: c.Prompts}
}

// discover connects and lists everything the upstream offers, with the
// upstream's own base headers only. An OAuth token refused with 401 is
// fetched again once.
func (r *Registry) discover(ctx context.Context, rec store.Upstream, creds *auth.UpstreamAuth) (*upstream.Client, dispatch.Catalogue, error) {
	var cat dispatch.Catalogue
	var client *upstream.Client
	var base http.Header
	for attempt := 0; ; attempt++ {
		hs, err := creds.BaseHeaders(ctx)
		if err != nil {
			return nil, cat, fmt.Errorf("credentials: %w", err)
		}
		base = http.Header{}
		for _, h := range hs {
			base[h.Name] = []string{h.Value}
		}
		client, err = upstream.Connect(ctx, upstream.Options{
			URL: rec.URL, Transport: upstream.Transport(rec.Transport), HTTPClient: r.cfg.HTTPClient,
			ClientName: "mcpgate", ClientVersion: r.cfg.ClientVersion, Logger: r.cfg.Logger,
			OnNotification: func(m jsonrpc.Message) { r.onNotification(rec.ID, m) },
		}, base)
		var se *upstream.StatusError
		if err != nil && errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized && attempt == 0 &&
			passthrough.AuthType(rec.AuthType) == passthrough.AuthOAuth {
			creds.Invalidate()
			continue
		}
		if err != nil {
			return nil, cat, err
		}
		break
	}
	caps := capabilities(client.InitializeResult())
	lists := []struct {
		enabled bool
		method  string
		key     string
		into    *[]json.RawMessage
	}{
		{caps["tools"], "tools/list", "tools", &cat.Tools},
		{caps["resources"], "resources/list", "resources", &cat.Resources},
		{caps["resources"], "resources/templates/list", "resourceTemplates", &cat.ResourceTemplates},
		{caps["prompts"], "prompts/list", "prompts", &cat.Prompts},
	}
	for _, l := range lists {
		if !l.enabled {
			continue
		}
		items, err := listAll(ctx, client, l.method, l.key, base)
		if err != nil {
			_ = client.Close()
			return nil, cat, fmt.Errorf("%s: %w", l.method, err)
		}
		*l.into = items
	}
	return client, cat, nil
}

func capabilities(initResult json.RawMessage) map[string]bool {
	var r struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	_ = json.Unmarshal(initResult, &r)
	caps := map[string]bool{}
	for k := range r.Capabilities {
		caps[k] = true
	}
	return caps
}

// listAll reads every page of a list method (at most 1000 pages).
func listAll(ctx context.Context, c *upstream.Client, method, key string, headers http.Header) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	for page := 0; page < 1000; page++ {
		var params any = map[string]any{}
		if cursor != "" {
			params = map[string]string{"cursor": cursor}
		}
		req, err := jsonrpc.NewRequest(json.RawMessage(fmt.Sprint(page+1)), method, params)
		if err != nil {
			return nil, err
		}
		resp, err := c.Call(ctx, req, headers.Clone(), nil)
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, resp.Error
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(resp.Result, &body); err != nil {
			return nil, fmt.Errorf("read result: %w", err)
		}
		var items []json.RawMessage
		if raw, ok := body[key]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("read %s: %w", key, err)
			}
		}
		all = append(all, items...)
		var next string
		_ = json.Unmarshal(body["nextCursor"], &next)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
	return nil, fmt.Errorf("more than 1000 pages")
}

// onNotification reacts to an upstream's own notifications: a list change
// triggers a catalogue refresh.
func (r *Registry) onNotification(id string, m jsonrpc.Message) {
	switch m.Method {
	case "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed":
		r.goOwned(func() {
			if _, err := r.refresh(r.ctx, id); err != nil && r.ctx.Err() == nil {
				r.cfg.Logger.Warn("catalogue refresh after list_changed failed", "upstream_id", id, "err", err)
			}
		})
	}
}

// goOwned runs f on a goroutine that Close waits for; after Close it does
// nothing.
func (r *Registry) goOwned(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// publishLocked builds and publishes a new index from the live upstreams,
// and tells OnChange what changed.
func (r *Registry) publishLocked(change IndexChange) {
	routes := make([]*dispatch.Route, 0, len(r.live))
	for _, l := range r.live {
		if l.record.Enabled {
			routes = append(routes, l.route)
		}
	}
	r.index.Store(dispatch.NewIndex(routes, r.cfg.ToolNameSeparator))
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(change)
	}
}

func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "has the name"):
		return &FieldError{"name", "another upstream has this name (names are compared case-insensitively)"}
	case errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "slug"):
		return &FieldError{"name", "another upstream's name gives the same prefix; choose a more distinct name"}
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return err
}
