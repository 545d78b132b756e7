// Package pool turns upstream records into live upstream connections: one
// worker per upstream connects, lists its catalogue, re-lists on request and
// retries with backoff, and reports each outcome to its owner (the registry).
//
// The registry keeps records (validation, sealed credentials, versions); the
// pool keeps the runtime. A worker serialises everything that happens to its
// upstream, so re-lists coalesce (at most one in flight and one queued), a
// new record version applies on the existing connection unless its endpoint
// changed, and a removed upstream's worker stops: nothing it finishes
// afterwards is reported.
package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// Target is one version of an upstream's record as the pool needs it.
type Target struct {
	// ID names the upstream; Name is for logs.
	ID, Name string
	// Version is the record's store version: an older one never replaces a
	// newer one.
	Version   int64
	URL       string
	Transport upstream.Transport
	// Headers returns the upstream's own base headers (its credentials,
	// spec §2.1), for the requests mcpgate makes for itself: connecting and
	// listing. Discovery never carries a client's headers (spec §5).
	Headers func(ctx context.Context) (http.Header, error)
	// Invalidate, when set, drops a cached token after the upstream refused
	// it with 401; the connection is then tried once more (OAuth).
	Invalidate func()
}

// endpoint is what a connection is bound to: a change of it needs a new
// connection, anything else applies on the one there is.
func (t Target) endpoint() string { return string(t.Transport) + " " + t.URL }

// Result is the outcome of one connection or listing attempt.
type Result struct {
	ID string
	// Version is the record version the worker held when it reported.
	Version int64
	// Caller is the live connection; nil when Err is set.
	Caller dispatch.Caller
	// Catalogue is what the upstream lists; only meaningful when Err is nil.
	Catalogue dispatch.Catalogue
	// Err says why the upstream could not be reached or listed.
	Err error
	// At is when the attempt began: what it read is at least that new.
	At time.Time
	// ProtocolVersion is the MCP revision the connection negotiated
	// (upstream.Client.ProtocolVersion); "" when Err is set.
	ProtocolVersion string
}

// Config is what a Pool needs.
type Config struct {
	// HTTPClient is shared by every upstream connection.
	HTTPClient    *http.Client
	ClientVersion string
	Logger        *slog.Logger
	// ConnectTimeout bounds one connection and listing attempt.
	ConnectTimeout time.Duration
	// DrainTimeout bounds how long a replaced connection stays open for its
	// calls in flight (UPSTREAM_TIMEOUT).
	DrainTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts at an
	// upstream that failed: it starts at MinBackoff and doubles up to
	// MaxBackoff (defaults 1s and 30s).
	MinBackoff, MaxBackoff time.Duration
	// OnResult receives every outcome, on the upstream's worker goroutine,
	// one at a time per upstream; never for an upstream after Remove
	// returned. It must not call back into the pool for the same upstream
	// with Remove (it would wait for itself).
	OnResult func(Result)
	// OnSessionOpened, when set, is called for every discovery session
	// opened to upstream id (mcpgate_upstream_sessions_opened_total).
	OnSessionOpened func(id string)
}

// MaxListBytes and MaxListItems bound one listing (every page of one list
// method together): an upstream cannot make mcpgate hold more.
const (
	MaxListBytes = 32 << 20
	MaxListItems = 100_000
)

// maxPages bounds the pages of one listing, a cursor loop's safety net.
const maxPages = 1000

// Pool owns one worker per upstream. It is safe for concurrent use; Close
// stops every worker and closes every connection.
type Pool struct {
	cfg Config

	mu      sync.Mutex
	workers map[string]*worker
	removed map[string]int64 // the record version each upstream was removed at
	closed  bool
	drains  sync.WaitGroup // replaced connections still draining
	life    context.Context
	stop    context.CancelFunc
}

// New returns an empty pool.
func New(cfg Config) *Pool {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 60 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.OnResult == nil {
		cfg.OnResult = func(Result) {}
	}
	life, stop := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, workers: map[string]*worker{}, removed: map[string]int64{}, life: life, stop: stop}
}

// closedChan is returned where there is nothing to wait for.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Set makes the pool follow t: the first Set of an upstream starts its
// worker; a later one with the same endpoint applies on the existing
// connection (new base headers take effect on the next request mcpgate
// makes for itself), and one with a new endpoint makes the worker build a
// new connection, swap it in and drain the old one. A t older than the one
// the pool has is ignored, and so is one no newer than the version the
// upstream was removed at (Remove). The channel is closed once the worker has
// reported on t's endpoint (at once when nothing needs to connect).
func (p *Pool) Set(t Target) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || t.Version <= p.removed[t.ID] {
		return closedChan
	}
	w := p.workers[t.ID]
	if w == nil {
		w = newWorker(p, t)
		p.workers[t.ID] = w
		go w.run()
		return w.connected.ch
	}
	return w.set(t)
}

// Refresh asks upstream id's worker to list its catalogue again on the
// existing connection (or to connect, if it has none). Requests coalesce:
// while a listing is in flight, any number of them make one more. The
// channel is closed once a listing that started after this call has been
// reported (at once for an upstream the pool does not have).
func (p *Pool) Refresh(id string) <-chan struct{} {
	p.mu.Lock()
	w := p.workers[id]
	p.mu.Unlock()
	if w == nil {
		return closedChan
	}
	return w.refresh()
}

// Remove stops upstream id's worker and closes its connection, for record
// version (a disabled record's; math.MaxInt64 for a deleted upstream): a
// Set of that version or an older one, arriving late, starts nothing. It
// returns once the worker has stopped, and nothing is reported for it
// afterwards.
func (p *Pool) Remove(id string, version int64) {
	p.mu.Lock()
	w := p.workers[id]
	if w != nil && w.version() > version {
		p.mu.Unlock()
		return // a newer record started it again
	}
	delete(p.workers, id)
	p.removed[id] = max(p.removed[id], version)
	p.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

// Close stops every worker and closes every connection, draining ones
// included.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	ws := p.workers
	p.workers = map[string]*worker{}
	p.mu.Unlock()
	p.stop() // ends the drains at once
	for _, w := range ws {
		w.stop()
	}
	p.drains.Wait()
	return nil
}

// current reports whether w is still upstream id's worker.
func (p *Pool) current(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers[w.t.ID] == w
}

// RelayDialer opens, for one client of the 1:1 relay, an upstream session of
// its own in relay mode (see dispatch.Dialer).
func (p *Pool) RelayDialer(t Target) dispatch.Dialer {
	return func(ctx context.Context, initialize json.RawMessage, headers func(context.Context) (http.Header, error), onMessage func(jsonrpc.Message)) (dispatch.RelayConn, error) {
		c, err := p.connect(ctx, t, upstream.Options{Relay: true, Initialize: initialize, OnNotification: onMessage, Headers: headers})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// connect is the one place mcpgate opens an upstream session: opts gets the
// target's URL and transport and mcpgate's own HTTP client and identity;
// opts.Headers gives the session's own headers, asked for on each of its
// own requests (a refreshed OAuth token, not the one in force at connect).
func (p *Pool) connect(ctx context.Context, t Target, opts upstream.Options) (*upstream.Client, error) {
	opts.URL, opts.Transport, opts.HTTPClient = t.URL, t.Transport, p.cfg.HTTPClient
	opts.ClientName, opts.ClientVersion, opts.Logger = "mcpgate", p.cfg.ClientVersion, p.cfg.Logger
	return upstream.Connect(ctx, opts)
}

// discover opens a discovery session to t with the base headers headers
// gives (the worker's: always its latest record's credentials). An OAuth
// token refused with 401 is fetched again once.
func (p *Pool) discover(ctx context.Context, t Target, headers func(context.Context) (http.Header, error), onNote func(jsonrpc.Message)) (*upstream.Client, error) {
	own := func(ctx context.Context) (http.Header, error) {
		h, err := headers(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		return h, nil
	}
	for attempt := 0; ; attempt++ {
		c, err := p.connect(ctx, t, upstream.Options{OnNotification: onNote, Headers: own,
			Capabilities: json.RawMessage(protocol.DiscoveryCapabilities)})
		var se *upstream.StatusError
		if err != nil && errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized && attempt == 0 && t.Invalidate != nil {
			t.Invalidate()
			continue
		}
		if err != nil {
			return nil, err
		}
		if p.cfg.OnSessionOpened != nil {
			p.cfg.OnSessionOpened(t.ID)
		}
		return c, nil
	}
}

// drain closes a replaced connection once its calls in flight have finished,
// or after DrainTimeout, or at Close.
func (p *Pool) drain(c *conn) {
	p.drains.Add(1)
	go func() {
		defer p.drains.Done()
		t := time.NewTimer(p.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-c.idle():
		case <-t.C:
		case <-p.life.Done():
		}
		_ = c.client.Close()
	}()
}
