// Package registry keeps the records of the registered upstreams and the
// global passthrough list: it validates them, seals credentials before they
// are stored, versions them, has the upstream pool (internal/pool) provision
// each record into a live connection, and publishes the federated index the
// dispatcher routes by.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/pool"
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
	// DrainTimeout bounds how long a connection replaced by one to a new URL
	// or transport stays open for its calls in flight (UPSTREAM_TIMEOUT).
	DrainTimeout time.Duration
	// RefreshInterval re-reads every catalogue periodically; 0 never.
	RefreshInterval time.Duration
	Logger          *slog.Logger
	ClientVersion   string
	// OnSessionOpened, when set, is told of every discovery session opened
	// to an upstream (mcpgate_upstream_sessions_opened_total).
	OnSessionOpened func(upstreamID string)
	// OnChange is called after every new index is published, on local and
	// remote changes alike, with what changed (the front door tells its
	// clients that the lists changed; open relay sessions follow their
	// upstream); it must not block.
	OnChange func(IndexChange)
	// Publish, when set, tells the other instances of a change this one
	// made, after it is stored: they apply it with ApplyGlobal,
	// ApplyUpstream or ApplyCatalogue. id is the upstream's, for
	// ChangeUpstream and ChangeCatalogue, and version its record's store
	// version (0 for a deleted upstream and for ChangeGlobal), so that an
	// instance that already has that version or a newer one skips it.
	Publish func(ctx context.Context, change Change, id string, version int64)
	// AssertOwn, when set, adds to h the identity assertion of a request
	// mcpgate makes for itself (discovery: no client) to an upstream
	// registered with identity_assertion, whose URL is the audience
	// (docs/identity-assertion.md).
	AssertOwn func(ctx context.Context, upstreamID, audience string, h http.Header) error
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
	// Lists says which federated lists changed content: clients are told
	// notifications/{tools,resources,prompts}/list_changed for those only.
	Lists Lists
}

// Lists names federated lists; Resources covers resource templates too
// (notifications/resources/list_changed is about both).
type Lists struct {
	Tools, Resources, Prompts bool
}

// Any reports whether any list is named.
func (l Lists) Any() bool { return l.Tools || l.Resources || l.Prompts }

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

	pool *pool.Pool

	mu   sync.Mutex // guards live and gone, and serialises changes to the index
	live map[string]*liveUpstream
	// gone holds the ids of deleted upstreams: a delete wins over anything
	// still in flight for them (ids are never reused, so this only grows
	// by one small string per deletion).
	gone map[string]bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// liveUpstream is a registered upstream's record and what this instance
// serves for it. It is replaced, never changed, under Registry.mu.
type liveUpstream struct {
	record store.Upstream
	route  *dispatch.Route
	creds  *auth.UpstreamAuth
	// pooled says the pool has a worker for it (enabled, credentials
	// readable).
	pooled bool
	// connVersion is the record version the connection's endpoint (URL and
	// transport) dates from: a pool result for an older one is stale.
	connVersion int64
	// status and reason are this instance's view of the upstream's health.
	status, reason string
	// protocolVersion is the MCP revision its connection negotiated; ""
	// while it has none.
	protocolVersion string
	// stale says the catalogue served is the stored one loaded at start, or
	// one kept from before a failed attempt; refreshedAt is when it was
	// last listed successfully (zero when never).
	stale       bool
	refreshedAt time.Time
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
	// CatalogueStale is true while the catalogue served is the one loaded
	// from the store at start or kept from before a failed refresh.
	CatalogueStale bool `json:"catalogue_stale"`
	// CatalogueRefreshedAt is when the catalogue was last listed
	// successfully; nil when never.
	CatalogueRefreshedAt *time.Time `json:"catalogue_refreshed_at,omitempty"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
	Version              int64      `json:"version"`

	// IdentityAssertion: mcpgate signs who each request forwarded there is
	// for (docs/identity-assertion.md).
	IdentityAssertion bool `json:"identity_assertion"`
	// Conflicts are federated names this upstream shares with another
	// (only one of the two is served); none normally.
	Conflicts []Conflict `json:"conflicts,omitempty"`

	// ProtocolVersion is the MCP revision this instance's connection to
	// the upstream negotiated (docs/revisions.md); absent while it has none.
	ProtocolVersion string `json:"protocol_version,omitempty"`
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
	r := &Registry{cfg: cfg, live: map[string]*liveUpstream{}, gone: map[string]bool{}, ctx: ctx, cancel: cancel}
	r.pool = pool.New(pool.Config{
		HTTPClient: cfg.HTTPClient, ClientVersion: cfg.ClientVersion, Logger: cfg.Logger,
		ConnectTimeout: cfg.ConnectTimeout, DrainTimeout: cfg.DrainTimeout,
		OnResult: r.onResult, OnSessionOpened: cfg.OnSessionOpened,
	})
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
	records = r.resealStored(ctx, records)
	var connected []<-chan struct{}
	for _, rec := range records {
		// The stored catalogue is served, marked stale, until the upstream
		// answers (and kept if it does not).
		cat, err := r.cfg.Store.LoadCatalogue(ctx, rec.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.cfg.Logger.Warn("load the stored catalogue", "upstream", rec.Name, "err", err)
		}
		connected = append(connected, r.provision(rec, &cat))
	}
	for _, c := range connected {
		wait(ctx, c)
	}
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
	_ = r.pool.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.live)
	return nil
}

// wait waits for c, or for ctx to end.
func wait(ctx context.Context, c <-chan struct{}) {
	select {
	case <-c:
	case <-ctx.Done():
	}
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
			// Each upstream's worker re-lists on its existing session;
			// one that fails is retried with backoff and logged there.
			for _, id := range ids {
				r.pool.Refresh(id)
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
	if err := r.checkPrefixes(ctx, "", s.Name); err != nil {
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
		IdentityAssertion: s.IdentityAssertion,
	})
	if err != nil {
		return View{}, storeError(err)
	}
	wait(ctx, r.provision(rec, nil))
	r.publish(ctx, ChangeUpstream, rec.ID, rec.Version)
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
	// Stored credentials that cannot be opened (a new AUTH_ENCRYPTION_SECRET)
	// do not stop a patch that replaces them or does not need them; see
	// keepSealed.
	creds, openErr := r.open(rec)
	s := Spec{Name: rec.Name, URL: rec.URL, Transport: upstream.Transport(rec.Transport),
		AuthType: passthrough.AuthType(rec.AuthType), Credentials: creds,
		PassthroughHeaders: rec.PassthroughHeaders, Enabled: rec.Enabled, IdentityAssertion: rec.IdentityAssertion}
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
	if p.IdentityAssertion != nil {
		s.IdentityAssertion = *p.IdentityAssertion
	}
	keep, err := keepSealed(openErr, p, passthrough.AuthType(rec.AuthType))
	if err != nil {
		return View{}, err
	}
	if err := s.validate(r.cfg.Egress, &p); err != nil {
		return View{}, err
	}
	if p.Name != nil { // an older record's clash stays updatable (to rename or disable it)
		if err := r.checkPrefixes(ctx, id, s.Name); err != nil {
			return View{}, err
		}
	}
	secret := rec.AuthSecret
	if !keep {
		if secret, err = r.seal(s.Credentials); err != nil {
			return View{}, err
		}
	}
	rec.Name, rec.Slug, rec.URL, rec.Transport = s.Name, slug(s.Name), s.URL, string(s.Transport)
	rec.AuthType, rec.AuthSecret, rec.PassthroughHeaders, rec.Enabled = string(s.AuthType), secret, s.PassthroughHeaders, s.Enabled
	rec.IdentityAssertion = s.IdentityAssertion
	if rec, err = r.cfg.Store.UpdateUpstream(ctx, rec); err != nil {
		return View{}, storeError(err)
	}
	wait(ctx, r.provision(rec, nil))
	r.publish(ctx, ChangeUpstream, id, rec.Version)
	return r.Get(ctx, id)
}

// Delete removes an upstream and closes its connection. Once it has
// returned, nothing in flight for the upstream — a connection, a listing, an
// older record applied late — brings it back.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.cfg.Store.DeleteUpstream(ctx, id); err != nil {
		return storeError(err)
	}
	r.forget(id)
	r.publish(ctx, ChangeUpstream, id, 0)
	return nil
}

// forget drops deleted upstream id from the index for good and closes its
// connection.
func (r *Registry) forget(id string) {
	r.mu.Lock()
	r.gone[id] = true
	l := r.live[id]
	delete(r.live, id)
	change := IndexChange{Upstream: id, Removed: RemovedDeleted}
	if l != nil {
		change.Lists = listsChanged(l.indexed(), nil)
	}
	r.publishLocked(change)
	r.mu.Unlock()
	r.pool.Remove(id, math.MaxInt64) // outside the lock: it waits for the worker
}

// Refresh reads an upstream's catalogue again on its existing connection
// (connecting if it has none) and tells the other instances
// (POST /gateways/{id}/tools/refresh). Discovery carries no client headers
// and never changes stored credentials (spec §5, D7).
func (r *Registry) Refresh(ctx context.Context, id string) (View, error) {
	v, err := r.refresh(ctx, id)
	if err == nil {
		r.publish(ctx, ChangeCatalogue, id, v.Version)
	}
	return v, err
}

// refresh is Refresh for this instance alone: every instance refreshes on
// its own schedule and on its own connection's list_changed. It follows
// the stored record first, in case a change was missed.
func (r *Registry) refresh(ctx context.Context, id string) (View, error) {
	rec, err := r.cfg.Store.GetUpstream(ctx, id)
	if err != nil {
		return View{}, storeError(err)
	}
	wait(ctx, r.provision(rec, nil))
	wait(ctx, r.pool.Refresh(id))
	return r.Get(ctx, id)
}

// publish tells the other instances of a change, when there are any.
func (r *Registry) publish(ctx context.Context, change Change, id string, version int64) {
	if r.cfg.Publish != nil {
		r.cfg.Publish(ctx, change, id, version)
	}
}

// ApplyGlobal applies another instance's change of the global list: the
// next call resolves it afresh (spec §3, D10).
func (r *Registry) ApplyGlobal() { r.cfg.Resolver.Invalidate() }

// ApplyUpstream applies another instance's change of upstream id, read back
// from the store; version is the record version the change made (0 when
// unknown or deleted), and one this instance already has, or an older one,
// is skipped. A change that leaves the upstream's URL and transport alone —
// its passthrough list, its credentials, its name — applies at once on the
// connection this instance has; a new URL or transport gets a new
// connection, built before the old one is let go. A deleted upstream is
// dropped for good.
func (r *Registry) ApplyUpstream(ctx context.Context, id string, version int64) error {
	if version > 0 {
		r.mu.Lock()
		l := r.live[id]
		known := r.gone[id] || (l != nil && l.record.Version >= version)
		r.mu.Unlock()
		if known {
			return nil
		}
	}
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

// apply makes this instance follow rec, as ApplyUpstream says, without
// waiting for a new connection.
func (r *Registry) apply(_ context.Context, rec store.Upstream) {
	r.provision(rec, nil)
}

// provision makes this instance serve rec: the record version it has, an
// older one, or a deleted upstream's changes nothing. The route is
// published at once (a tightened allowlist is in force for the next call);
// the connection is the pool's: kept when the URL and transport are the
// same, built anew (the old one serving until then) when not, closed when
// the upstream is disabled. stored, at start, is the catalogue to serve
// until the upstream answers. The channel is closed once the pool has
// reported on the connection (at once when none was needed).
func (r *Registry) provision(rec store.Upstream, stored *store.Catalogue) <-chan struct{} {
	route, creds, err := r.newRoute(rec)
	r.mu.Lock()
	old := r.live[rec.ID]
	if r.gone[rec.ID] || (old != nil && rec.Version <= old.record.Version) {
		r.mu.Unlock() // deleted, older, or the record this instance serves
		return closed
	}
	l := &liveUpstream{record: rec, route: route, creds: creds, connVersion: rec.Version,
		status: StatusUnavailable, reason: "not connected yet"}
	switch {
	case old != nil:
		route.Catalogue, l.stale, l.refreshedAt = old.route.Catalogue, old.stale, old.refreshedAt
	case stored != nil:
		route.Catalogue, l.refreshedAt = catalogueOf(*stored), stored.RefreshedAt
		l.stale = !stored.RefreshedAt.IsZero()
	}
	switch {
	case !rec.Enabled:
		l.status, l.reason = StatusDisabled, "disabled"
	case err != nil:
		l.status, l.reason = StatusUnavailable, statusReason(err)
	default:
		l.pooled = true
		if old != nil && old.pooled {
			// The connection there is serves until the pool reports on
			// the new endpoint, if it changed.
			route.Caller = old.route.Caller
			l.status, l.reason = old.status, old.reason
			if old.record.URL == rec.URL && old.record.Transport == rec.Transport {
				l.connVersion = old.connVersion
			}
		}
	}
	if route.Caller == nil {
		route.Unavailable = l.reason
	}
	r.live[rec.ID] = l
	change := IndexChange{Upstream: rec.ID, Lists: listsChanged(old.indexed(), l.indexed())}
	if !rec.Enabled {
		change.Removed = RemovedDisabled
	}
	r.publishLocked(change)
	r.mu.Unlock()
	if !l.pooled {
		r.pool.Remove(rec.ID, rec.Version)
		return closed
	}
	return r.pool.Set(r.target(rec, creds))
}

// closed is a channel with nothing to wait for.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// onResult is the pool's report on an upstream's connection or listing: a
// success serves the new catalogue on the connection; a failure keeps the
// last good catalogue and marks the upstream unavailable, with the reason
// (the pool retries with backoff). A report for a deleted or disabled
// upstream, or for an endpoint the record has moved from, is dropped. An
// index is published only when something a client sees changed.
func (r *Registry) onResult(res pool.Result) {
	r.mu.Lock()
	l := r.live[res.ID]
	if l == nil || !l.pooled || res.Version < l.connVersion {
		r.mu.Unlock()
		return
	}
	n := *l
	route := *l.route
	n.route = &route
	switch {
	case res.Err == nil && res.At.After(l.refreshedAt):
		route.Caller, route.Unavailable, route.Catalogue = res.Caller, "", res.Catalogue
		n.status, n.reason, n.stale, n.refreshedAt = StatusAvailable, "", false, res.At
		n.protocolVersion = res.ProtocolVersion
	case res.Err == nil:
		// Another instance's reading, applied while this one was under
		// way, began later: its lists stay. What the upstream announced
		// at initialize is this connection's own.
		route.Caller, route.Unavailable = res.Caller, ""
		route.Catalogue.Capabilities, route.Catalogue.Instructions = res.Catalogue.Capabilities, res.Catalogue.Instructions
		n.status, n.reason, n.stale = StatusAvailable, "", false
		n.protocolVersion = res.ProtocolVersion
	default:
		route.Caller, route.Unavailable = nil, statusReason(res.Err)
		n.status, n.reason, n.stale = StatusUnavailable, route.Unavailable, true
		n.protocolVersion = ""
	}
	r.live[res.ID] = &n
	lists := listsChanged(l.indexed(), n.indexed())
	if lists.Any() || route.Caller != l.route.Caller || route.Unavailable != l.route.Unavailable {
		r.publishLocked(IndexChange{Upstream: res.ID, Lists: lists})
	}
	r.mu.Unlock()

	// Store writes after the index is in force, outside the lock; for a
	// deleted upstream they find nothing to write.
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ConnectTimeout)
	defer cancel()
	if n.status != l.status || n.reason != l.reason {
		if err := r.cfg.Store.SetUpstreamStatus(ctx, res.ID, n.status, n.reason); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.cfg.Logger.Warn("store upstream status", "upstream", n.record.Name, "err", err)
		}
	}
	if res.Err == nil && (lists.Any() || l.stale || !sameCatalogue(l.route.Catalogue, route.Catalogue)) {
		saved := store.Catalogue{Tools: route.Catalogue.Tools, Resources: route.Catalogue.Resources,
			ResourceTemplates: route.Catalogue.ResourceTemplates, Prompts: route.Catalogue.Prompts, RefreshedAt: n.refreshedAt}
		if err := r.cfg.Store.SaveCatalogue(ctx, res.ID, saved); err != nil && !errors.Is(err, store.ErrNotFound) {
			r.cfg.Logger.Warn("store catalogue", "upstream", n.record.Name, "err", err)
		}
	}
}

// ApplyCatalogue applies another instance's reading of upstream id's
// catalogue, from the store, unless this instance has listed it since.
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
	if l == nil || !cat.RefreshedAt.After(l.refreshedAt) {
		return nil
	}
	n := *l
	route := *l.route
	n.route = &route
	// What the upstream announced at initialize is this instance's own
	// discovery session's; the store keeps only the lists.
	own := l.route.Catalogue
	route.Catalogue, n.refreshedAt = catalogueOf(cat), cat.RefreshedAt
	route.Catalogue.Capabilities, route.Catalogue.Instructions = own.Capabilities, own.Instructions
	r.live[id] = &n
	if lists := listsChanged(l.indexed(), n.indexed()); lists.Any() {
		r.publishLocked(IndexChange{Upstream: id, Lists: lists})
	}
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

// view is rec as the admin API shows it, with this instance's own view of
// its health and catalogue when it has one (the stored status is the last
// one any instance wrote).
func (r *Registry) view(rec store.Upstream) View {
	v := View{ID: rec.ID, Name: rec.Name, Slug: rec.Slug, URL: redactURL(rec.URL), Transport: upstream.Transport(rec.Transport),
		AuthType: passthrough.AuthType(rec.AuthType), PassthroughHeaders: rec.PassthroughHeaders, Enabled: rec.Enabled,
		Status: rec.Status, StatusReason: rec.StatusReason, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, Version: rec.Version}
	v.IdentityAssertion = rec.IdentityAssertion
	v.Conflicts = conflictsOf(r.index.Load(), rec.ID)
	r.mu.Lock()
	if l, ok := r.live[rec.ID]; ok {
		cat := l.route.Catalogue
		v.Tools, v.Resources, v.Prompts = len(cat.Tools), len(cat.Resources), len(cat.Prompts)
		v.CatalogueStale = l.stale
		if !l.refreshedAt.IsZero() {
			at := l.refreshedAt.UTC()
			v.CatalogueRefreshedAt = &at
		}
		if l.record.Version == rec.Version {
			v.Status, v.StatusReason = l.status, l.reason
			v.ProtocolVersion = l.protocolVersion
		}
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
	r.publish(ctx, ChangeGlobal, "", 0)
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
		return c, fmt.Errorf("upstream %q has stored credentials but AUTH_ENCRYPTION_SECRET is not set: %s", rec.Name, noSealerFix(rec.ID))
	}
	plain, err := r.cfg.Sealer.Open(rec.AuthSecret)
	if err != nil {
		return c, fmt.Errorf("upstream %q: %w: %s", rec.Name, err, reopenFix(rec.ID))
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, fmt.Errorf("upstream %q: decode credentials: %w", rec.Name, err)
	}
	return c, nil
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
	if rec.IdentityAssertion {
		route.AssertionAudience = rec.URL
	}
	plain, err := r.open(rec)
	if err != nil {
		return route, nil, err
	}
	creds := auth.NewUpstreamAuth(passthrough.AuthType(rec.AuthType), plain, r.cfg.HTTPClient, nil)
	route.Credentials = creds
	route.Upstream.TokenExchange = creds.TokenExchange()
	if rec.Enabled {
		route.Dial = r.pool.RelayDialer(r.target(rec, creds))
	}
	return route, creds, nil
}

// target is rec as the pool connects to it: discovery carries the
// upstream's own base headers only (spec §5).
func (r *Registry) target(rec store.Upstream, creds *auth.UpstreamAuth) pool.Target {
	t := pool.Target{ID: rec.ID, Name: rec.Name, Version: rec.Version, URL: rec.URL, Transport: upstream.Transport(rec.Transport),
		Headers: func(ctx context.Context) (http.Header, error) {
			hs, err := creds.BaseHeaders(ctx)
			if err != nil {
				return nil, err
			}
			base := http.Header{}
			for _, h := range hs {
				base[h.Name] = []string{h.Value}
			}
			if rec.IdentityAssertion && r.cfg.AssertOwn != nil {
				if err := r.cfg.AssertOwn(ctx, rec.ID, rec.URL, base); err != nil {
					return nil, err
				}
			}
			return base, nil
		}}
	if passthrough.AuthType(rec.AuthType) == passthrough.AuthOAuth {
		t.Invalidate = creds.Invalidate
	}
	return t
}

func catalogueOf(c store.Catalogue) dispatch.Catalogue {
	return dispatch.Catalogue{Tools: c.Tools, Resources: c.Resources, ResourceTemplates: c.ResourceTemplates, Prompts: c.Prompts}
}

// indexed is l's route as the index has it: nil when l is absent or
// disabled.
func (l *liveUpstream) indexed() *dispatch.Route {
	if l == nil || !l.record.Enabled {
		return nil
	}
	return l.route
}

// listsChanged says which federated lists differ between an upstream's
// route before and after (nil: not in the index): their items, or the
// prefix their names get.
func listsChanged(before, after *dispatch.Route) Lists {
	differ := func(pick func(dispatch.Catalogue) [][]json.RawMessage) bool {
		var a, b [][]json.RawMessage
		var slugA, slugB string
		if before != nil {
			a, slugA = pick(before.Catalogue), before.Slug
		}
		if after != nil {
			b, slugB = pick(after.Catalogue), after.Slug
		}
		if empty(a) && empty(b) {
			return false
		}
		return slugA != slugB || !slices.EqualFunc(a, b, sameItems)
	}
	return Lists{
		Tools: differ(func(c dispatch.Catalogue) [][]json.RawMessage { return [][]json.RawMessage{c.Tools} }),
		Resources: differ(func(c dispatch.Catalogue) [][]json.RawMessage {
			return [][]json.RawMessage{c.Resources, c.ResourceTemplates}
		}),
		Prompts: differ(func(c dispatch.Catalogue) [][]json.RawMessage { return [][]json.RawMessage{c.Prompts} }),
	}
}

// sameCatalogue reports whether a and b list the same items, byte for byte.
func sameCatalogue(a, b dispatch.Catalogue) bool {
	return sameItems(a.Tools, b.Tools) && sameItems(a.Resources, b.Resources) &&
		sameItems(a.ResourceTemplates, b.ResourceTemplates) && sameItems(a.Prompts, b.Prompts)
}

func sameItems(a, b []json.RawMessage) bool {
	return slices.EqualFunc(a, b, func(x, y json.RawMessage) bool { return bytes.Equal(x, y) })
}

func empty(lists [][]json.RawMessage) bool {
	for _, l := range lists {
		if len(l) > 0 {
			return false
		}
	}
	return true
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
	next := dispatch.NewIndex(routes, r.cfg.ToolNameSeparator)
	r.reportConflicts(r.index.Swap(next), next)
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
