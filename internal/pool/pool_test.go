package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// results records what a pool reports.
type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, res)
}

func (r *results) list() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.all...)
}

func newTestPool(t *testing.T, rs *results, sessions *atomic.Int64) *Pool {
	t.Helper()
	p := New(Config{HTTPClient: upstream.NewHTTPClient(egress.LocalPolicy(), nil), ConnectTimeout: 5 * time.Second,
		OnResult: rs.add, OnSessionOpened: func(string) {
			if sessions != nil {
				sessions.Add(1)
			}
		}})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func target(id, url string, version int64) Target {
	return Target{ID: id, Name: id, Version: version, URL: url, Transport: upstream.StreamableHTTP,
		Headers: func(context.Context) (http.Header, error) { return http.Header{}, nil }}
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
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

// TestRelistsCoalesce: however many re-lists are asked for while one is in
// flight, one more follows it, on the same session.
func TestRelistsCoalesce(t *testing.T) {
	var armed atomic.Bool
	inflight, release := make(chan struct{}, 1), make(chan struct{})
	srv := mcptest.NewStreamableHTTP(t, mcptest.WithOnRequest(func(r *http.Request) {
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		if !armed.Load() || !strings.Contains(string(b[:n]), `"tools/list"`) {
			return
		}
		select {
		case inflight <- struct{}{}:
		default:
		}
		<-release
	}))
	var rs results
	var sessions atomic.Int64
	p := newTestPool(t, &rs, &sessions)
	waitFor(t, p.Set(target("u", srv.URL, 1)), "the first connection")
	armed.Store(true)
	p.Refresh("u")
	waitFor(t, inflight, "a listing in flight")
	var last <-chan struct{}
	for range 50 {
		last = p.Refresh("u")
	}
	armed.Store(false)
	close(release)
	waitFor(t, last, "the queued listing")
	if n := countRPC(srv, "tools/list"); n != 3 {
		t.Errorf("%d tools/list requests, want 3: the first listing, the one in flight, and one for the 50 asked meanwhile", n)
	}
	if n := countRPC(srv, "initialize"); n != 1 || sessions.Load() != 1 {
		t.Errorf("%d initialize requests and %d sessions counted, want 1 and 1", n, sessions.Load())
	}
	if got := rs.list(); len(got) != 3 || got[2].Err != nil {
		t.Errorf("results %+v, want three successes", got)
	}
}

// TestListingIsBounded: one listing may not exceed MaxListItems items or
// MaxListBytes bytes, however the upstream pages it; the reason says so.
func TestListingIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		items   int // per page
		itemLen int
		want    string
	}{
		{"items", 1000, 0, "more than 100000 items"},
		{"bytes", 4, 1 << 20, "more than 32 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := make([]json.RawMessage, tc.items)
			for i := range page {
				page[i] = json.RawMessage(fmt.Sprintf(`{"name":"t%d","description":%q}`, i, strings.Repeat("x", tc.itemLen)))
			}
			body, err := json.Marshal(map[string]any{"tools": page, "nextCursor": "more"})
			if err != nil {
				t.Fatal(err)
			}
			srv := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
				return jsonrpc.Message{Result: body} // always one more page
			})
			var rs results
			p := newTestPool(t, &rs, nil)
			p.cfg.ConnectTimeout = time.Minute // 32 MiB of JSON is slow under -race
			done := p.Set(target("u", srv.URL, 1))
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("the listing did not end")
			}
			got := rs.list()
			if len(got) != 1 || got[0].Err == nil || !errors.Is(got[0].Err, errTooLarge) || !strings.Contains(got[0].Err.Error(), tc.want) {
				t.Fatalf("results %+v, want one failure saying %q", got, tc.want)
			}
			if n := countRPC(srv, "tools/list"); n > 101 {
				t.Errorf("%d pages read; the bound should have stopped it sooner", n)
			}
		})
	}
}

// TestRemoveWinsOverListingInFlight: once Remove has returned, nothing is
// reported for the upstream, even when its listing ends afterwards.
func TestRemoveWinsOverListingInFlight(t *testing.T) {
	var armed atomic.Bool
	inflight, release := make(chan struct{}, 1), make(chan struct{})
	srv := mcptest.NewStreamableHTTP(t, mcptest.WithOnRequest(func(r *http.Request) {
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		if armed.Load() && strings.Contains(string(b[:n]), `"tools/list"`) {
			select {
			case inflight <- struct{}{}:
			default:
			}
			<-release
		}
	}))
	var rs results
	p := newTestPool(t, &rs, nil)
	waitFor(t, p.Set(target("u", srv.URL, 1)), "the first connection")
	armed.Store(true)
	listed := p.Refresh("u")
	waitFor(t, inflight, "a listing in flight")
	p.Remove("u", 1)
	n := len(rs.list())
	close(release)
	waitFor(t, listed, "the refresh's waiters to be released")
	if got := rs.list(); len(got) != n {
		t.Errorf("%d results after Remove returned", len(got)-n)
	}
	// A late Set of the removed version starts nothing.
	waitFor(t, p.Set(target("u", srv.URL, 1)), "a late Set")
	if got := rs.list(); len(got) != n {
		t.Errorf("a Set of the removed version reported %d results", len(got)-n)
	}
}

// TestOlderTargetNeverReplacesNewer: a Set of an older record version,
// arriving after a newer one, does not move the connection back.
func TestOlderTargetNeverReplacesNewer(t *testing.T) {
	oldSrv, newSrv := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	var rs results
	p := newTestPool(t, &rs, nil)
	waitFor(t, p.Set(target("u", newSrv.URL, 2)), "the connection")
	waitFor(t, p.Set(target("u", oldSrv.URL, 1)), "the older Set")
	waitFor(t, p.Refresh("u"), "a listing")
	if n := len(oldSrv.Requests()); n != 0 {
		t.Errorf("the older record's URL got %d requests", n)
	}
}

// TestBackoff: 1s, doubling, at most 30s.
func TestBackoff(t *testing.T) {
	w := &worker{p: New(Config{})}
	defer w.p.Close()
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		if got := w.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}
