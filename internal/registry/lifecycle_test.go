package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// The tests in this file are the upstream lifecycle's races: each one
// failed before upstream records were provisioned into a pool of workers.

// testRegistry is a registry over a real SQLite store, not started.
type testRegistry struct {
	*Registry
	st      *store.Store
	changes atomic.Int64 // OnChange calls
}

func newTestRegistry(t *testing.T, tweak func(*Config)) *testRegistry {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:///"+filepath.Join(t.TempDir(), "mcpgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	policy := passthrough.NewPolicy(passthrough.DefaultSettings())
	tr := &testRegistry{st: st}
	cfg := Config{Store: st, Policy: policy, Resolver: passthrough.NewAllowlistResolver(policy, st.GlobalPassthrough, nil),
		HTTPClient: upstream.NewHTTPClient(egress.LocalPolicy(), nil), Egress: egress.LocalPolicy(),
		ConnectTimeout: 5 * time.Second, OnChange: func(IndexChange) { tr.changes.Add(1) }}
	if tweak != nil {
		tweak(&cfg)
	}
	tr.Registry = New(cfg)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func (tr *testRegistry) create(t *testing.T, name, url string, transport upstream.Transport) View {
	t.Helper()
	v, err := tr.Create(context.Background(), Spec{Name: name, URL: url, Transport: transport, AuthType: passthrough.AuthNone, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// route returns upstream id's route in the current index.
func (tr *testRegistry) route(t *testing.T, id string) *dispatch.Route {
	t.Helper()
	r, ok := tr.Index().Route(id)
	if !ok {
		t.Fatalf("upstream %s is not in the index", id)
	}
	return r
}

// callTool calls tool name on upstream id's connection, as dispatch does.
func (tr *testRegistry) callTool(ctx context.Context, t *testing.T, id, name string) (jsonrpc.Message, error) {
	t.Helper()
	r := tr.route(t, id)
	if r.Caller == nil {
		return jsonrpc.Message{}, errors.New("unavailable: " + r.Unavailable)
	}
	req, err := jsonrpc.NewRequest(json.RawMessage(`7`), "tools/call", map[string]any{"name": name, "arguments": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Caller.Call(ctx, req, http.Header{}, nil)
}

// toolNames are the names of upstream id's tools in the index.
func (tr *testRegistry) toolNames(t *testing.T, id string) []string {
	t.Helper()
	var names []string
	for _, item := range tr.route(t, id).Catalogue.Tools {
		var tool struct{ Name string }
		if err := json.Unmarshal(item, &tool); err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// gate is a tool that blocks until the test releases it.
type gate struct {
	started chan struct{} // one slot: a call has begun
	release chan struct{}
}

// addBlockingTool adds tool "block" to srv: it signals started, then
// answers "released" once g.release is closed.
func addBlockingTool(srv *mcptest.Server) *gate {
	g := &gate{started: make(chan struct{}, 1), release: make(chan struct{})}
	mcp.AddTool(srv.MCPServer(), &mcp.Tool{Name: "block", Description: "Blocks until released."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			select {
			case g.started <- struct{}{}:
			default:
			}
			select {
			case <-g.release:
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	return g
}

// listGate holds the upstream's tools/list requests while armed.
type listGate struct {
	armed    atomic.Bool
	inflight chan struct{} // one slot: a held tools/list has arrived
	release  chan struct{}
}

func newListGate() *listGate {
	return &listGate{inflight: make(chan struct{}, 1), release: make(chan struct{})}
}

// option is the mcptest option that makes the server hold tools/list.
func (g *listGate) option() mcptest.Option {
	return mcptest.WithOnRequest(func(r *http.Request) {
		if !g.armed.Load() || r.Method != http.MethodPost {
			return
		}
		var buf strings.Builder
		if r.Body != nil {
			b := make([]byte, 4096)
			n, _ := r.Body.Read(b)
			buf.Write(b[:n])
		}
		if !strings.Contains(buf.String(), `"tools/list"`) {
			return
		}
		select {
		case g.inflight <- struct{}{}:
		default:
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
	})
}

// waitFor waits for c, failing the test after d.
func waitFor(t *testing.T, c <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Fatalf("waited %v for %s", d, what)
	}
}

// eventually polls cond every 20ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countRPC(srv *mcptest.Server, method string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.JSONRPCMethod == method {
			n++
		}
	}
	return n
}

// TestCallInFlightSurvivesRefresh: a tool call in flight when the catalogue
// is refreshed — periodically, by the admin API, by the upstream's own
// list_changed, or by another instance's change of the record —
// completes with its result (before, the refresh closed the connection:
// "upstream client closed").
func TestCallInFlightSurvivesRefresh(t *testing.T) {
	for _, tc := range []struct {
		name     string
		periodic bool // the registry is started with a short CATALOGUE_REFRESH_INTERVAL
		refresh  func(t *testing.T, tr *testRegistry, srv *mcptest.Server, id string)
	}{
		{"periodic refresh", true, func(t *testing.T, _ *testRegistry, srv *mcptest.Server, _ string) {
			listed := countRPC(srv, "tools/list")
			eventually(t, 10*time.Second, "two periodic re-lists", func() bool { return countRPC(srv, "tools/list") >= listed+2 })
		}},
		{"another instance's change", false, func(t *testing.T, tr *testRegistry, _ *mcptest.Server, id string) {
			ctx := context.Background()
			rec, err := tr.st.GetUpstream(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			none := []string{}
			rec.PassthroughHeaders, rec.Name = &none, "crm renamed"
			if rec, err = tr.st.UpdateUpstream(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if err := tr.ApplyUpstream(ctx, id, rec.Version); err != nil {
				t.Fatal(err)
			}
			if err := tr.ApplyCatalogue(ctx, id); err != nil {
				t.Fatal(err)
			}
		}},
		{"admin refresh", false, func(t *testing.T, tr *testRegistry, _ *mcptest.Server, id string) {
			if _, err := tr.Refresh(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}},
		{"list_changed", false, func(t *testing.T, tr *testRegistry, srv *mcptest.Server, id string) {
			srv.AddTool("added")
			eventually(t, 10*time.Second, "the added tool is listed", func() bool {
				return strings.Contains(strings.Join(tr.toolNames(t, id), ","), "added")
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mcptest.NewStreamableHTTP(t)
			g := addBlockingTool(srv)
			var tweak func(*Config)
			if tc.periodic {
				tweak = func(c *Config) { c.RefreshInterval = 20 * time.Millisecond }
			}
			tr := newTestRegistry(t, tweak)
			if tc.periodic {
				if err := tr.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)

			type outcome struct {
				resp jsonrpc.Message
				err  error
			}
			done := make(chan outcome, 1)
			go func() {
				resp, err := tr.callTool(context.Background(), t, v.ID, "block")
				done <- outcome{resp, err}
			}()
			waitFor(t, g.started, 10*time.Second, "the call to reach the upstream")
			tc.refresh(t, tr, srv, v.ID)
			close(g.release)
			var out outcome
			select {
			case out = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the call did not finish")
			}
			if out.err != nil {
				t.Fatalf("the call in flight failed across the refresh: %v", out.err)
			}
			if !strings.Contains(string(out.resp.Result), "released") {
				t.Errorf("result %s, want the tool's answer", out.resp.Result)
			}
		})
	}
}

// TestCallInFlightSurvivesURLChange: a new URL builds the new connection
// first, and the old one drains: the call in flight on it completes, and
// the next call goes to the new upstream.
func TestCallInFlightSurvivesURLChange(t *testing.T) {
	oldSrv := mcptest.NewStreamableHTTP(t, mcptest.WithName("old"))
	g := addBlockingTool(oldSrv)
	newSrv := mcptest.NewStreamableHTTP(t, mcptest.WithName("new"))
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", oldSrv.URL, upstream.StreamableHTTP)

	done := make(chan error, 1)
	go func() {
		_, err := tr.callTool(context.Background(), t, v.ID, "block")
		done <- err
	}()
	waitFor(t, g.started, 10*time.Second, "the call to reach the upstream")
	moved := newSrv.URL
	if _, err := tr.Update(context.Background(), v.ID, Patch{URL: &moved}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "calls go to the new upstream", func() bool {
		_, err := tr.callTool(context.Background(), t, v.ID, "echo")
		return err == nil && countRPC(newSrv, "tools/call") > 0
	})
	close(g.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the call in flight on the old connection failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not finish")
	}
}

// TestListChangedRelistsOnTheSameSession: an upstream's list_changed makes
// mcpgate list again on the session it has, never open a new one — even
// with a server that sends list_changed after every initialize (as
// server-everything does over SSE, which made a reconnect storm).
func TestListChangedRelistsOnTheSameSession(t *testing.T) {
	for _, transport := range []upstream.Transport{upstream.SSE, upstream.StreamableHTTP} {
		t.Run(string(transport), func(t *testing.T) {
			var srv *mcptest.Server
			var added atomic.Int64
			storm := mcptest.WithOnRequest(func(r *http.Request) {
				b := make([]byte, 4096)
				n, _ := r.Body.Read(b)
				if strings.Contains(string(b[:n]), `"notifications/initialized"`) {
					srv.AddTool("init" + string(rune('a'+added.Add(1)%26)))
				}
			})
			if transport == upstream.SSE {
				srv = mcptest.NewSSE(t, storm)
			} else {
				srv = mcptest.NewStreamableHTTP(t, storm)
			}
			tr := newTestRegistry(t, nil)
			v := tr.create(t, "crm", srv.URL, transport)
			srv.AddTool("late")
			eventually(t, 10*time.Second, "the tool added later is listed", func() bool {
				return strings.Contains(strings.Join(tr.toolNames(t, v.ID), ","), "late")
			})
			if n := countRPC(srv, "initialize"); n != 1 {
				t.Errorf("the upstream saw %d initialize requests, want 1 (list_changed re-lists on the same session)", n)
			}
		})
	}
}

// TestDeleteWinsOverDiscoveryInFlight: an upstream deleted while its
// catalogue is being listed — by a refresh, or by its creation — is gone
// for good once Delete has returned.
func TestDeleteWinsOverDiscoveryInFlight(t *testing.T) {
	t.Run("refresh", func(t *testing.T) {
		lg := newListGate()
		srv := mcptest.NewStreamableHTTP(t, lg.option())
		tr := newTestRegistry(t, nil)
		v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
		lg.armed.Store(true)
		refreshed := make(chan struct{})
		go func() {
			defer close(refreshed)
			_, _ = tr.Refresh(context.Background(), v.ID)
		}()
		waitFor(t, lg.inflight, 10*time.Second, "the refresh's tools/list")
		if err := tr.Delete(context.Background(), v.ID); err != nil {
			t.Fatal(err)
		}
		close(lg.release)
		waitFor(t, refreshed, 10*time.Second, "the refresh to return")
		assertGone(t, tr, v.ID)
	})
	t.Run("create", func(t *testing.T) {
		lg := newListGate()
		lg.armed.Store(true)
		srv := mcptest.NewStreamableHTTP(t, lg.option())
		tr := newTestRegistry(t, nil)
		created := make(chan struct{})
		go func() {
			defer close(created)
			_, _ = tr.Create(context.Background(), Spec{Name: "crm", URL: srv.URL, Transport: upstream.StreamableHTTP, AuthType: passthrough.AuthNone, Enabled: true})
		}()
		waitFor(t, lg.inflight, 10*time.Second, "the creation's tools/list")
		recs, err := tr.st.ListUpstreams(context.Background())
		if err != nil || len(recs) != 1 {
			t.Fatalf("stored upstreams %v, %v; want the one being created", recs, err)
		}
		if err := tr.Delete(context.Background(), recs[0].ID); err != nil {
			t.Fatal(err)
		}
		close(lg.release)
		waitFor(t, created, 10*time.Second, "Create to return")
		assertGone(t, tr, recs[0].ID)
	})
}

// assertGone checks that deleted upstream id is not routable, and that a
// later refresh does not bring it back.
func assertGone(t *testing.T, tr *testRegistry, id string) {
	t.Helper()
	if _, ok := tr.Index().Route(id); ok {
		t.Fatal("the deleted upstream is back in the index")
	}
	if _, err := tr.Refresh(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("refreshing the deleted upstream: %v, want ErrNotFound", err)
	}
	if err := tr.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Index().Route(id); ok {
		t.Fatal("the deleted upstream is back in the index after a resync")
	}
}

// TestOlderRecordNeverReplacesNewer: a record read before a change and
// applied after it (a slow apply, another instance's late event) does not
// undo the change — here, a tightened allowlist.
func TestOlderRecordNeverReplacesNewer(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	older, err := tr.st.GetUpstream(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	none := []string{}
	if _, err := tr.Update(context.Background(), v.ID, Patch{PassthroughHeaders: OptionalList{Set: true, List: &none}}); err != nil {
		t.Fatal(err)
	}
	if tr.route(t, v.ID).Allowlist == nil {
		t.Fatal("the tightened (empty) allowlist is not in force")
	}
	tr.apply(context.Background(), older)
	if tr.route(t, v.ID).Allowlist == nil {
		t.Error("the older record (inheriting the global list) replaced the newer one (forwarding nothing)")
	}
}

// switchProxy is a reverse proxy to an upstream that can be taken down: it
// then drops every connection it is given, as a dead host would.
type switchProxy struct {
	down atomic.Bool
	rp   *httputil.ReverseProxy
	URL  string
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{rp: &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host}) },
		FlushInterval: -1,
	}}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	p.URL = ts.URL + u.Path
	return p
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// TestUnreachableUpstreamKeepsItsCatalogue: a refresh while the upstream is
// down keeps the last good catalogue (its tools stay listed; calling one
// says the upstream is unavailable), and its tools are callable again within
// seconds of its return, without another refresh.
func TestUnreachableUpstreamKeepsItsCatalogue(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	proxy := newSwitchProxy(t, srv.URL)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", proxy.URL, upstream.StreamableHTTP)
	before := len(tr.toolNames(t, v.ID))
	if before == 0 {
		t.Fatal("no tools listed")
	}
	proxy.down.Store(true)
	got, err := tr.Refresh(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusUnavailable || got.StatusReason == "" {
		t.Errorf("status %q (%q) while down, want unavailable with a reason", got.Status, got.StatusReason)
	}
	if n := len(tr.toolNames(t, v.ID)); n != before {
		t.Fatalf("%d tools listed while the upstream is down, want the last good %d", n, before)
	}
	if r := tr.route(t, v.ID); r.Caller != nil || r.Unavailable == "" {
		t.Errorf("route while down: caller %v, unavailable %q; want no caller and the reason", r.Caller, r.Unavailable)
	}
	proxy.down.Store(false)
	eventually(t, 10*time.Second, "the upstream's tools are callable again", func() bool {
		_, err := tr.callTool(context.Background(), t, v.ID, "echo")
		return err == nil
	})
}

// TestStoredCatalogueServedUntilDiscoverySucceeds: at start, an upstream
// that does not answer keeps the catalogue stored by the last run.
func TestStoredCatalogueServedUntilDiscoverySucceeds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/mcp"
	_ = ln.Close() // nothing listens there now
	tr := newTestRegistry(t, func(c *Config) { c.ConnectTimeout = 2 * time.Second })
	ctx := context.Background()
	rec, err := tr.st.CreateUpstream(ctx, store.Upstream{Name: "crm", Slug: "crm", URL: dead, Transport: string(upstream.StreamableHTTP),
		AuthType: string(passthrough.AuthNone), Enabled: true, Status: StatusAvailable})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.st.SaveCatalogue(ctx, rec.ID, store.Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"lookup"}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if names := tr.toolNames(t, rec.ID); len(names) != 1 || names[0] != "lookup" {
		t.Errorf("tools %v after a failed discovery at start, want the stored [lookup]", names)
	}
}

// TestOptionalListAnsweringMethodNotFoundListsNothing: an upstream that
// announces resources but answers resources/templates/list with -32601
// (method not found) is available, with its resources and no templates.
func TestOptionalListAnsweringMethodNotFoundListsNothing(t *testing.T) {
	srv := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		switch req.Method {
		case "tools/list":
			return jsonrpc.Message{Result: json.RawMessage(`{"tools":[{"name":"lookup","inputSchema":{"type":"object"}}]}`)}
		case "resources/list":
			return jsonrpc.Message{Result: json.RawMessage(`{"resources":[{"uri":"test://a","name":"a"}]}`)}
		}
		return jsonrpc.NewError(req.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q not found", req.Method))
	}, mcptest.WithCapabilities(map[string]any{"tools": map[string]any{}, "resources": map[string]any{}}))
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	if v.Status != StatusAvailable {
		t.Fatalf("status %q (%s), want available", v.Status, v.StatusReason)
	}
	if v.Tools != 1 || v.Resources != 1 {
		t.Errorf("%d tools and %d resources, want 1 and 1", v.Tools, v.Resources)
	}
	if n := countRPC(srv, "prompts/list"); n != 0 {
		t.Errorf("prompts/list called %d times; the upstream does not announce prompts", n)
	}
}

// TestRefreshThatChangesNothingPublishesNothing: a refresh that finds the
// same catalogue on the same connection publishes no new index, so clients
// are told of no change.
func TestRefreshThatChangesNothingPublishesNothing(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	before := tr.changes.Load()
	for range 3 {
		if _, err := tr.Refresh(context.Background(), v.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := tr.changes.Load() - before; n != 0 {
		t.Errorf("%d changes published by refreshes that changed nothing, want 0", n)
	}
}

// TestCallsNeverFailAcrossRefreshes: calls keep succeeding while the
// upstream announces list changes and the admin API refreshes and renames
// it, over and over, and all that takes one discovery session.
func TestCallsNeverFailAcrossRefreshes(t *testing.T) {
	srv := mcptest.NewSSE(t)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.SSE)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	var workers sync.WaitGroup
	for range 8 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for ctx.Err() == nil {
				_, err := tr.callTool(context.Background(), t, v.ID, "echo")
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	for i := 0; ctx.Err() == nil; i++ {
		srv.AddTool("t" + string(rune('a'+i%26)))
		if _, err := tr.Refresh(context.Background(), v.ID); err != nil {
			t.Fatal(err)
		}
		name := "crm" + string(rune('a'+i%2))
		if _, err := tr.Update(context.Background(), v.ID, Patch{Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	workers.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d calls failed; the first: %v", n, calls.Load(), firstFailure.Load())
	}
	if n := countRPC(srv, "initialize"); n != 1 {
		t.Errorf("%d upstream sessions opened, want 1", n)
	}
	t.Logf("%d calls", calls.Load())
}
