package registry

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/passthrough"
)

// TestIndexChangeNamesTheListsThatChanged: a new tool at the upstream is a
// change of the tools list alone; a refresh that finds nothing new is no
// change; a deletion changes every list the upstream had.
func TestIndexChangeNamesTheListsThatChanged(t *testing.T) {
	var mu sync.Mutex
	var changes []IndexChange
	srv := mcptest.NewStreamableHTTP(t)
	tr := newTestRegistry(t, func(c *Config) {
		c.OnChange = func(ch IndexChange) {
			mu.Lock()
			changes = append(changes, ch)
			mu.Unlock()
		}
	})
	since := func() []IndexChange {
		mu.Lock()
		defer mu.Unlock()
		out := changes
		changes = nil
		return out
	}
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	all := Lists{Tools: true, Resources: true, Prompts: true}
	if got := since(); len(got) == 0 || got[len(got)-1].Lists != all {
		t.Errorf("after Create: %+v, want the last change to name every list", got)
	}
	srv.AddTool("added")
	eventually(t, 10*time.Second, "the added tool is listed", func() bool {
		return strings.Contains(strings.Join(tr.toolNames(t, v.ID), ","), "added")
	})
	if got := since(); len(got) != 1 || got[0].Lists != (Lists{Tools: true}) {
		t.Errorf("after a tool was added: %+v, want one change of the tools list", got)
	}
	if _, err := tr.Refresh(context.Background(), v.ID); err != nil {
		t.Fatal(err)
	}
	if got := since(); len(got) != 0 {
		t.Errorf("after a refresh that found nothing new: %+v, want none", got)
	}
	if err := tr.Delete(context.Background(), v.ID); err != nil {
		t.Fatal(err)
	}
	if got := since(); len(got) != 1 || got[0].Lists != all || got[0].Removed != RemovedDeleted {
		t.Errorf("after Delete: %+v, want one change of every list, removed as deleted", got)
	}
}

// TestViewSaysHowFreshTheCatalogueIs: catalogue_stale and
// catalogue_refreshed_at follow the listings — fresh after one succeeded,
// stale (with the time of the last good one) after one failed, and stale
// when loaded from the store at start.
func TestViewSaysHowFreshTheCatalogueIs(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	proxy := newSwitchProxy(t, srv.URL)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", proxy.URL, upstream.StreamableHTTP)
	if v.CatalogueStale || v.CatalogueRefreshedAt == nil {
		t.Fatalf("after Create: stale %v, refreshed at %v; want fresh, with a time", v.CatalogueStale, v.CatalogueRefreshedAt)
	}
	at := *v.CatalogueRefreshedAt
	proxy.down.Store(true)
	v, err := tr.Refresh(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.CatalogueStale || v.CatalogueRefreshedAt == nil || !v.CatalogueRefreshedAt.Equal(at) {
		t.Errorf("after a failed refresh: stale %v, refreshed at %v; want stale, still %v", v.CatalogueStale, v.CatalogueRefreshedAt, at)
	}
	if v.Status != StatusUnavailable || v.Tools == 0 {
		t.Errorf("after a failed refresh: status %q, %d tools; want unavailable with the last good tools", v.Status, v.Tools)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"catalogue_stale":true`) || !strings.Contains(string(b), `"catalogue_refreshed_at":"`) {
		t.Errorf("the view as JSON lacks the catalogue fields: %s", b)
	}
	proxy.down.Store(false)
	eventually(t, 10*time.Second, "the upstream is listed again", func() bool {
		v, err := tr.Get(context.Background(), v.ID)
		return err == nil && !v.CatalogueStale && v.Status == StatusAvailable
	})

	// At start, with the upstream gone: the stored catalogue, stale.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/mcp"
	_ = ln.Close()
	tr2 := newTestRegistry(t, func(c *Config) { c.ConnectTimeout = 2 * time.Second })
	ctx := context.Background()
	rec, err := tr2.st.CreateUpstream(ctx, store.Upstream{Name: "crm", Slug: "crm", URL: dead, Transport: string(upstream.StreamableHTTP),
		AuthType: string(passthrough.AuthNone), Enabled: true, Status: StatusAvailable})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr2.st.SaveCatalogue(ctx, rec.ID, store.Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"lookup"}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := tr2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	v, err = tr2.Get(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.CatalogueStale || v.CatalogueRefreshedAt == nil || v.Tools != 1 || v.Status != StatusUnavailable {
		t.Errorf("at start with the upstream gone: %+v; want the stored tool, stale, unavailable", v)
	}
}

// TestOneDiscoverySessionPerUpstream: refreshes and list_changed re-list on
// the discovery session there is: OnSessionOpened is told of one.
func TestOneDiscoverySessionPerUpstream(t *testing.T) {
	var opened atomic.Int64
	srv := mcptest.NewSSE(t)
	tr := newTestRegistry(t, func(c *Config) { c.OnSessionOpened = func(string) { opened.Add(1) } })
	v := tr.create(t, "crm", srv.URL, upstream.SSE)
	for range 3 {
		if _, err := tr.Refresh(context.Background(), v.ID); err != nil {
			t.Fatal(err)
		}
	}
	srv.AddTool("added")
	eventually(t, 10*time.Second, "the added tool is listed", func() bool {
		return strings.Contains(strings.Join(tr.toolNames(t, v.ID), ","), "added")
	})
	if n := opened.Load(); n != 1 {
		t.Errorf("%d discovery sessions opened, want 1", n)
	}
}

// TestApplyUpstreamSkipsAVersionItHas: another instance's event for a
// record version this instance already serves, or an older one, changes
// nothing — not even when the store has meanwhile moved on.
func TestApplyUpstreamSkipsAVersionItHas(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	before := tr.changes.Load()
	if err := tr.ApplyUpstream(context.Background(), v.ID, v.Version); err != nil {
		t.Fatal(err)
	}
	if n := tr.changes.Load() - before; n != 0 {
		t.Errorf("%d changes for an event of the version served", n)
	}
	if err := tr.st.DeleteUpstream(context.Background(), v.ID); err != nil {
		t.Fatal(err)
	}
	if err := tr.ApplyUpstream(context.Background(), v.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Index().Route(v.ID); ok {
		t.Error("a deletion applied from another instance left the upstream in the index")
	}
}

// TestCallFindingTheUpstreamUnreachableChecksIt: a call that finds the
// upstream gone has its worker check at once, so the upstream shows as
// unavailable (and is retried) without waiting for the next refresh.
func TestCallFindingTheUpstreamUnreachableChecksIt(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	proxy := newSwitchProxy(t, srv.URL)
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", proxy.URL, upstream.StreamableHTTP)
	proxy.down.Store(true)
	if _, err := tr.callTool(context.Background(), t, v.ID, "echo"); err == nil {
		t.Fatal("a call through the downed proxy succeeded")
	}
	eventually(t, 10*time.Second, "the upstream shows as unavailable", func() bool {
		v, err := tr.Get(context.Background(), v.ID)
		return err == nil && v.Status == StatusUnavailable
	})
	proxy.down.Store(false)
	eventually(t, 10*time.Second, "the upstream's tools are callable again", func() bool {
		_, err := tr.callTool(context.Background(), t, v.ID, "echo")
		return err == nil
	})
}

// TestAnnouncementKeptAcrossAnotherInstancesListing: what an upstream
// announced at initialize (capabilities, instructions) is kept from this
// instance's own discovery session when another instance's listing, read
// from the store, replaces the lists: the store keeps only the lists.
func TestAnnouncementKeptAcrossAnotherInstancesListing(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t, mcptest.WithInstructions("Be brief."))
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	before := tr.route(t, v.ID).Catalogue
	if before.Instructions != "Be brief." || !strings.Contains(string(before.Capabilities), `"tools"`) {
		t.Fatalf("after Create: instructions %q, capabilities %s; want the upstream's", before.Instructions, before.Capabilities)
	}
	ctx := context.Background()
	other := store.Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"elsewhere","inputSchema":{"type":"object"}}`)},
		RefreshedAt: time.Now().Add(time.Minute)}
	if err := tr.st.SaveCatalogue(ctx, v.ID, other); err != nil {
		t.Fatal(err)
	}
	if err := tr.ApplyCatalogue(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	after := tr.route(t, v.ID).Catalogue
	if names := tr.toolNames(t, v.ID); len(names) != 1 || names[0] != "elsewhere" {
		t.Errorf("after another instance's listing: tools %v, want [elsewhere]", names)
	}
	if after.Instructions != before.Instructions || string(after.Capabilities) != string(before.Capabilities) {
		t.Errorf("after another instance's listing: instructions %q, capabilities %s; want %q, %s",
			after.Instructions, after.Capabilities, before.Instructions, before.Capabilities)
	}
}

// TestDiscoveryListsToolsThatNeedClientCapabilities: a server may offer a
// tool that needs sampling, elicitation or roots only to a client that
// declared them (server-everything does). Discovery declares them all, so
// the catalogue lists those tools; each client then reaches the upstream on
// a session opened with its own capabilities. Discovery's session, which has
// no client behind it, answers the upstream's roots/list with no roots.
func TestDiscoveryListsToolsThatNeedClientCapabilities(t *testing.T) {
	var srv *mcptest.Server
	declared := func(capability string) bool {
		for _, r := range srv.Requests() {
			if r.JSONRPCMethod == "initialize" {
				var m struct {
					Params struct {
						Capabilities map[string]json.RawMessage `json:"capabilities"`
					} `json:"params"`
				}
				if json.Unmarshal(r.Body, &m) == nil {
					_, ok := m.Params.Capabilities[capability]
					return ok
				}
			}
		}
		return false
	}
	srv = mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		tools := []string{`{"name":"plain","inputSchema":{"type":"object"}}`}
		for _, c := range []string{"sampling", "elicitation", "roots"} {
			if declared(c) {
				tools = append(tools, `{"name":"needs-`+c+`","inputSchema":{"type":"object"}}`)
			}
		}
		return jsonrpc.Message{Result: json.RawMessage(`{"tools":[` + strings.Join(tools, ",") + `]}`)}
	})
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	got := strings.Join(tr.toolNames(t, v.ID), ",")
	if want := "plain,needs-sampling,needs-elicitation,needs-roots"; got != want {
		t.Errorf("catalogue tools %s, want %s", got, want)
	}
}

// TestALateListingLosesToALaterReading: a listing of this instance's that
// began before another instance's refresh, and answers after it was
// applied, does not put the older catalogue back (seen in test/cluster:
// an instance went on listing the tools from before a refresh made
// elsewhere).
func TestALateListingLosesToALaterReading(t *testing.T) {
	var tools atomic.Value
	tools.Store(`[{"name":"first","inputSchema":{"type":"object"}}]`)
	var hold atomic.Bool
	held, release := make(chan struct{}, 1), make(chan struct{})
	srv := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		if req.Method != "tools/list" {
			return jsonrpc.Message{Error: jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", req.Method)}
		}
		answer := tools.Load().(string) // read as the request arrives
		if hold.Load() {
			held <- struct{}{}
			<-release
		}
		return jsonrpc.Message{Result: json.RawMessage(`{"tools":` + answer + `}`)}
	})
	tr := newTestRegistry(t, nil)
	v := tr.create(t, "crm", srv.URL, upstream.StreamableHTTP)
	if names := tr.toolNames(t, v.ID); len(names) != 1 || names[0] != "first" {
		t.Fatalf("after Create: tools %v, want [first]", names)
	}

	// This instance's listing begins, and the upstream answers it late.
	hold.Store(true)
	done := tr.pool.Refresh(v.ID)
	<-held
	hold.Store(false)
	// Meanwhile the upstream changes and another instance reads it.
	tools.Store(`[{"name":"second","inputSchema":{"type":"object"}}]`)
	ctx := context.Background()
	if err := tr.st.SaveCatalogue(ctx, v.ID, store.Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"second","inputSchema":{"type":"object"}}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.ApplyCatalogue(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if names := tr.toolNames(t, v.ID); len(names) != 1 || names[0] != "second" {
		t.Fatalf("after another instance's refresh: tools %v, want [second]", names)
	}
	close(release)
	<-done
	if names := tr.toolNames(t, v.ID); len(names) != 1 || names[0] != "second" {
		t.Errorf("after this instance's late listing: tools %v, want [second], the later reading", names)
	}
	stored, err := tr.st.LoadCatalogue(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Tools) != 1 || !strings.Contains(string(stored.Tools[0]), `"second"`) {
		t.Errorf("the store holds %s, want the later reading [second]", stored.Tools)
	}
}
