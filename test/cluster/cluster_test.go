package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// These tests run several real mcpgate processes on one PostgreSQL (and
// one Redis), the way operators run them behind a load balancer,
// and check from the outside that a change made through one instance is
// applied by every other before its next call, that sessions go on
// whichever instance a request lands on, and that losing Redis or an
// instance is survived.

// propagationBound is how long a change may take to reach another
// instance: far below GLOBAL_CONFIG_CACHE_TTL (60 s), so that only the
// change bus can explain meeting it. The target is 100 ms; it is reported,
// not asserted (performance is not a pass/fail test here).
const propagationBound = 5 * time.Second

// propagationTarget is the goal for a change to reach every instance.
const propagationTarget = 100 * time.Millisecond

// TestChangesReachEveryInstance: with Redis, and without it (PostgreSQL
// LISTEN/NOTIFY only), a registration, each change of the global list, an
// upstream's own list, a catalogue refresh and a deletion made through
// instance A are applied by every other instance within propagationBound.
// The delays of the global-list changes are logged, one line per instance.
func TestChangesReachEveryInstance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		redisDB   int // 0: no Redis
		instances []string
		changes   int
	}{
		{"redis", 10, []string{"A", "B", "C"}, 200},
		{"postgres-notify", 0, []string{"A", "B"}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redisURL := ""
			if tc.redisDB != 0 {
				redisURL = redisDatabase(t, tc.redisDB)
			}
			up := mcptest.NewStreamableHTTP(t)
			d := newDeployment(t, redisURL, nil)
			all := d.start(tc.instances, nil)
			a, others := all[0], all[1:]

			id := a.register(t, map[string]any{"name": "probe", "url": up.URL})
			for _, in := range others {
				took := waitForTool(t, in, "probe-headers", true)
				t.Logf("the registration on A reached %s after %s", in.name, took.Round(time.Millisecond))
			}

			delays := make([][]time.Duration, len(others))
			for i := range tc.changes {
				name, value := fmt.Sprintf("X-Probe-%d", i), fmt.Sprintf("v%d", i)
				put := a.setGlobalList(t, name)
				errs := make([]error, len(others))
				var wg sync.WaitGroup
				for j, in := range others {
					wg.Go(func() {
						var delay time.Duration
						delay, errs[j] = firstForwarded(t.Context(), in, "probe", put, name, value)
						delays[j] = append(delays[j], delay)
					})
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("global list change %d of %d: %v", i+1, tc.changes, err)
				}
			}
			for j, in := range others {
				t.Logf("propagation A→%s (%s, %d instances): %s", in.name, tc.name, len(all), summarize(delays[j]))
			}

			otherChangesReachEveryInstance(t, a, others, id)
		})
	}
}

// firstForwarded polls in, calling the headers tool of upstream slug with
// name: value, until the upstream receives that header from in's call. It
// returns the delay from since (the change's answer) to the start of the
// first call that forwarded it, or an error after propagationBound.
func firstForwarded(ctx context.Context, in *instance, slug string, since time.Time, name, value string) (time.Duration, error) {
	var last http.Header
	for {
		start := time.Now()
		if start.Sub(since) > propagationBound {
			return 0, fmt.Errorf("instance %s still did not forward %s %s after the change; the upstream's last call from it carried %v",
				in.name, name, propagationBound, last)
		}
		h, err := in.forwarded(ctx, slug, name, value)
		if err != nil {
			return 0, err
		}
		if h.Get(name) == value {
			return start.Sub(since), nil
		}
		last = h
	}
}

// summarize gives the percentiles of delays in one line.
func summarize(delays []time.Duration) string {
	s := slices.Clone(delays)
	slices.Sort(s)
	// nearest rank
	p := func(q float64) time.Duration {
		i := max(int(math.Ceil(q*float64(len(s))))-1, 0)
		return s[i].Round(10 * time.Microsecond)
	}
	verdict := "met"
	if p(0.99) > propagationTarget {
		verdict = "NOT met"
	}
	return fmt.Sprintf("%d changes, p50 %s, p90 %s, p99 %s, max %s; p99 ≤ %s: %s",
		len(s), p(0.50), p(0.90), p(0.99), s[len(s)-1].Round(10*time.Microsecond), propagationTarget, verdict)
}

// waitForTool waits, within propagationBound, until tools/list on in does
// (or, with present false, does not) list tool; it returns how long that
// took.
func waitForTool(t *testing.T, in *instance, tool string, present bool) time.Duration {
	t.Helper()
	var last []string
	var lastErr error
	start := time.Now()
	for {
		last, lastErr = in.tools(t.Context())
		if lastErr == nil && slices.Contains(last, tool) == present {
			return time.Since(start)
		}
		if time.Since(start) > propagationBound {
			if present {
				t.Fatalf("%s does not list %s %s after the change: %v %v", in.name, tool, propagationBound, last, lastErr)
			}
			t.Fatalf("%s still lists %s %s after the change: %v %v", in.name, tool, propagationBound, last, lastErr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// otherChangesReachEveryInstance: an upstream's own list and its
// credentials (PUT /gateways/{id}), a catalogue refresh (POST /gateways/{id}/tools/refresh)
// and a deletion made through a reach every other instance.
func otherChangesReachEveryInstance(t *testing.T, a *instance, others []*instance, probeID string) {
	t.Helper()
	// The upstream's own list beats the global one (spec §3).
	status, out := a.do(t, "PUT", "/gateways/"+probeID, map[string]any{"passthrough_headers": []string{"X-Own"}})
	if status != http.StatusOK {
		t.Fatalf("PUT /gateways/%s on A: %d %s", probeID, status, out)
	}
	changed := time.Now()
	for _, in := range others {
		if _, err := firstForwarded(t.Context(), in, "probe", changed, "X-Own", "own"); err != nil {
			t.Errorf("the upstream's own list set on A: %v", err)
		}
	}

	// New credentials, sealed by A, are used by the others' very next calls.
	status, out = a.do(t, "PUT", "/gateways/"+probeID, map[string]any{"auth_type": "bearer", "auth_token": "rotated-credential"})
	if status != http.StatusOK {
		t.Fatalf("PUT /gateways/%s credentials on A: %d %s", probeID, status, out)
	}
	changed = time.Now()
	for _, in := range others {
		for {
			h, err := in.forwarded(t.Context(), "probe", "X-Own", "own")
			if err != nil {
				t.Fatal(err)
			}
			if h.Get("Authorization") == "Bearer rotated-credential" {
				t.Logf("the new credentials set on A reached %s after %s", in.name, time.Since(changed).Round(time.Millisecond))
				break
			}
			if time.Since(changed) > propagationBound {
				t.Fatalf("instance %s still sends Authorization %q %s after the credentials changed on A", in.name, h.Get("Authorization"), propagationBound)
			}
		}
	}

	// A catalogue that changes without telling anyone: only the refresh
	// made on A can let the others know.
	var tools atomic.Value
	tools.Store(`[{"name":"first","inputSchema":{"type":"object"}}]`)
	catalogue := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		if req.Method == "tools/list" {
			return jsonrpc.Message{Result: json.RawMessage(`{"tools":` + tools.Load().(string) + `}`)}
		}
		return jsonrpc.Message{Error: jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", req.Method)}
	})
	catID := a.register(t, map[string]any{"name": "catalogue", "url": catalogue.URL})
	for _, in := range others {
		waitForTool(t, in, "catalogue-first", true)
	}
	tools.Store(`[{"name":"second","inputSchema":{"type":"object"}}]`)
	if status, out := a.do(t, "POST", "/gateways/"+catID+"/tools/refresh", nil); status != http.StatusOK {
		t.Fatalf("refresh on A: %d %s", status, out)
	}
	for _, in := range others {
		took := waitForTool(t, in, "catalogue-second", true)
		t.Logf("the refresh on A reached %s after %s", in.name, took.Round(time.Millisecond))
	}

	if status, out := a.do(t, "DELETE", "/gateways/"+probeID, nil); status/100 != 2 {
		t.Fatalf("DELETE /gateways/%s on A: %d %s", probeID, status, out)
	}
	for _, in := range others {
		took := waitForTool(t, in, "probe-headers", false)
		t.Logf("the deletion on A reached %s after %s", in.name, took.Round(time.Millisecond))
	}
}

// TestSessionsWorkOnAnyInstance: a Streamable HTTP session opened on A goes
// on on B and C, and ends everywhere when C deletes it; a legacy SSE
// session opened on A takes its POSTs on B, answers on A's stream, and
// forwards the headers of the opening GET (spec §4).
func TestSessionsWorkOnAnyInstance(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	d := newDeployment(t, redisDatabase(t, 11), nil)
	all := d.start([]string{"A", "B", "C"}, nil)
	a, b, c := all[0], all[1], all[2]
	a.register(t, map[string]any{"name": "probe", "url": up.URL})
	changed := a.setGlobalList(t, "X-Tenant-Id")
	for _, in := range []*instance{b, c} {
		waitForTool(t, in, "probe-headers", true)
		if _, err := firstForwarded(t.Context(), in, "probe", changed, "X-Tenant-Id", "ready"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("streamable", func(t *testing.T) {
		opened := a.postMCP(t, "", request(t, 1, "initialize", initializeParams()))
		if opened.status != http.StatusOK || opened.session == "" || opened.answer.Error != nil {
			t.Fatalf("initialize on A: %d session %q %v %s", opened.status, opened.session, opened.answer.Error, opened.body)
		}
		session := opened.session
		if r := a.postMCP(t, session, notification(t, "notifications/initialized")); r.status != http.StatusAccepted {
			t.Fatalf("notifications/initialized on A: %d %s", r.status, r.body)
		}

		list := b.postMCP(t, session, request(t, 2, "tools/list", map[string]any{}))
		if list.status != http.StatusOK || list.answer.Error != nil {
			t.Fatalf("tools/list on B in A's session: %d %v %s", list.status, list.answer.Error, list.body)
		}
		if names, err := toolNames(list.answer.Result); err != nil || !slices.Contains(names, "probe-headers") {
			t.Errorf("tools/list on B in A's session: %v %v, want probe-headers", names, err)
		}

		// A POST's own headers go with its calls (spec §4).
		call := c.postMCP(t, session, request(t, 3, "tools/call", map[string]any{"name": "probe-headers", "arguments": map[string]any{}}),
			"X-Tenant-Id", "from-c")
		if call.status != http.StatusOK || call.answer.Error != nil {
			t.Fatalf("tools/call on C in A's session: %d %v %s", call.status, call.answer.Error, call.body)
		}
		text, err := toolText(call.answer.Result)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := headersOf(text); err != nil || h.Get("X-Tenant-Id") != "from-c" {
			t.Errorf("tools/call on C in A's session: the upstream got %v %v, want X-Tenant-Id from-c", h, err)
		}

		// Still its client's alone on every instance: another token's
		// subject is told it does not exist, on B, where the session's
		// federated backend is opened again from its record.
		j, err := auth.NewJWT([]byte(jwtSecret))
		if err != nil {
			t.Fatal(err)
		}
		otherToken, err := j.Mint("someone-else", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(t.Context(), "POST", b.url+"/mcp", bytes.NewReader(request(t, 5, "tools/call", map[string]any{"name": "probe-echo", "arguments": map[string]any{"text": "x"}})))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+otherToken)
		req.Header.Set("Mcp-Session-Id", session)
		foreign, err := a.d.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		foreign.Body.Close()
		if foreign.StatusCode != http.StatusNotFound {
			t.Errorf("another client's POST on B in A's session: %d, want 404", foreign.StatusCode)
		}

		// The GET stream of the session, on B.
		resp, err := b.open(t.Context(), "GET", "/mcp", nil, "Accept", "text/event-stream",
			"Mcp-Session-Id", session, "Mcp-Protocol-Version", "2025-06-18")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Errorf("GET /mcp on B in A's session: %d %s, want an event stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		resp.Body.Close()

		status, out := c.do(t, "DELETE", "/mcp", nil, "Mcp-Session-Id", session, "Mcp-Protocol-Version", "2025-06-18")
		if status/100 != 2 {
			t.Fatalf("DELETE /mcp on C in A's session: %d %s", status, out)
		}
		// The end is published: the other instances drop their copies as
		// soon as it arrives (milliseconds), not at their next renewal.
		deleted := time.Now()
		for _, in := range []*instance{a, b} {
			for {
				r := in.postMCP(t, session, request(t, 4, "tools/list", map[string]any{}))
				if r.status == http.StatusNotFound {
					t.Logf("%s answered 404 for the deleted session %s after the DELETE on C", in.name, time.Since(deleted).Round(time.Millisecond))
					break
				}
				if time.Since(deleted) > 2*time.Second {
					t.Fatalf("POST /mcp on %s 2 s after C deleted the session: %d %.80s%.80s…, want 404", in.name, r.status, r.answer.Result, r.body)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	})

	t.Run("sse", func(t *testing.T) {
		s := openSSE(t, a, "X-Tenant-Id", "acme")
		// The POSTs' own X-Tenant-Id must not be what is forwarded.
		s.initialize(t, b, "X-Tenant-Id", "from-a-post")
		h := s.callHeaders(t, b, 2, "probe", "X-Tenant-Id", "from-a-post")
		if got := h.Get("X-Tenant-Id"); got != "acme" {
			t.Errorf("a call posted to B in A's SSE session reached the upstream with X-Tenant-Id %q, want the opening GET's acme", got)
		}
	})
}

// TestInstanceKilledMidTraffic: when A is SIGKILLed while B and C carry
// calls, those calls all succeed, the stored configuration is intact, and
// the client of an SSE session A held sees its stream end and is told by B
// to open a new session, which works.
func TestInstanceKilledMidTraffic(t *testing.T) {
	const (
		load    = 2 * time.Second
		workers = 4
		killAt  = 600 * time.Millisecond
	)
	up := mcptest.NewStreamableHTTP(t)
	d := newDeployment(t, redisDatabase(t, 12), nil)
	all := d.start([]string{"A", "B", "C"}, nil)
	a, b, c := all[0], all[1], all[2]
	a.register(t, map[string]any{"name": "probe", "url": up.URL})
	changed := a.setGlobalList(t, "X-Tenant-Id")
	for _, in := range []*instance{b, c} {
		waitForTool(t, in, "probe-echo", true)
		if _, err := firstForwarded(t.Context(), in, "probe", changed, "X-Tenant-Id", "ready"); err != nil {
			t.Fatal(err)
		}
	}
	before := storedConfiguration(t, b)

	old := openSSE(t, a, "X-Tenant-Id", "acme")
	old.initialize(t, a)

	var calls, failures atomic.Int64
	var mu sync.Mutex
	var firstFailures []string
	var wg sync.WaitGroup
	stop := time.Now().Add(load)
	for w := range workers {
		target := []*instance{b, c}[w%2]
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				calls.Add(1)
				text, err := target.callTool(t.Context(), "probe-echo", map[string]any{"text": fmt.Sprint(n)})
				if err == nil && text != fmt.Sprint(n) {
					err = fmt.Errorf("probe-echo on %s returned %q, want %d", target.name, text, n)
				}
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if len(firstFailures) < 5 {
						firstFailures = append(firstFailures, err.Error())
					}
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(killAt)
	a.kill(t)
	killed := time.Now()

	// The client of A's session sees its stream end...
	if ended, why := old.waitEnded(5 * time.Second); !ended {
		t.Errorf("the SSE stream of the killed instance A did not end within 5s")
	} else {
		t.Logf("A's SSE stream ended %s after the kill: %v", time.Since(killed).Round(time.Millisecond), why)
	}
	// ...and B tells it to open a new session. A message routed to A in the
	// moment Redis takes to notice A's connection is gone is accepted and
	// lost; that moment is bounded.
	var status int
	var body string
	accepted := 0
	for deadline := time.Now().Add(3 * time.Second); ; accepted++ {
		status, body = old.post(t, b, request(t, 9, "tools/list", map[string]any{}))
		if status != http.StatusAccepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != http.StatusNotFound || !strings.Contains(body, "GET /sse") || !strings.Contains(body, "new") {
		t.Errorf("POST on B for the killed A's SSE session: %d %s; want 404 telling to open a new session with GET /sse", status, body)
	}
	if accepted > 0 {
		t.Logf("B accepted %d POSTs for the killed A's session (202) before answering 404", accepted)
	}

	wg.Wait()
	t.Logf("%d calls on B and C while A was killed, %d failed", calls.Load(), failures.Load())
	if failures.Load() > 0 {
		t.Errorf("%d of %d calls on B and C failed after A was killed; the first: %s", failures.Load(), calls.Load(), strings.Join(firstFailures, "; "))
	}
	if calls.Load() < workers*10 {
		t.Errorf("only %d calls were made in %s: the load did not run", calls.Load(), load)
	}

	if after := storedConfiguration(t, b); after != before {
		t.Errorf("the stored configuration changed when A was killed:\nbefore %s\nafter  %s", before, after)
	}

	fresh := openSSE(t, b, "X-Tenant-Id", "acme")
	fresh.initialize(t, b)
	if h := fresh.callHeaders(t, c, 2, "probe"); h.Get("X-Tenant-Id") != "acme" {
		t.Errorf("a new SSE session on B, posting to C: the upstream got X-Tenant-Id %q, want acme", h.Get("X-Tenant-Id"))
	}
}

// storedConfiguration reads, through in, the registered upstreams (what
// was configured of them) and the global list, as one string.
func storedConfiguration(t *testing.T, in *instance) string {
	t.Helper()
	status, out := in.do(t, "GET", "/gateways", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /gateways on %s: %d %s", in.name, status, out)
	}
	var upstreams []struct {
		ID                 string    `json:"id"`
		Name               string    `json:"name"`
		URL                string    `json:"url"`
		Transport          string    `json:"transport"`
		AuthType           string    `json:"auth_type"`
		Enabled            bool      `json:"enabled"`
		PassthroughHeaders *[]string `json:"passthrough_headers"`
	}
	if err := json.Unmarshal(out, &upstreams); err != nil {
		t.Fatalf("GET /gateways on %s: %v in %s", in.name, err, out)
	}
	if len(upstreams) == 0 {
		t.Fatalf("GET /gateways on %s lists no upstream", in.name)
	}
	status, global := in.do(t, "GET", "/admin/config/passthrough-headers", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /admin/config/passthrough-headers on %s: %d %s", in.name, status, global)
	}
	b, _ := json.Marshal(upstreams)
	return string(b) + " " + strings.TrimSpace(string(global))
}

// TestRedisOutage: with Redis gone, both instances keep serving, a change
// still converges within GLOBAL_CONFIG_CACHE_TTL (2 s here), and B says
// once that Redis is unreachable; when Redis is back on the same port,
// changes propagate fast again.
func TestRedisOutage(t *testing.T) {
	const (
		ttl        = 2 * time.Second
		ttlBound   = 5 * time.Second // the TTL plus slack
		fastBound  = time.Second
		fastInARow = 5 // with a 2 s TTL, luck gives five fast ones in a row ~3% of the time
		recovery   = 20 * time.Second
	)
	redis := testenv.StartRedisServer(t)
	up := mcptest.NewStreamableHTTP(t)
	d := newDeployment(t, redis.URL(), map[string]string{"GLOBAL_CONFIG_CACHE_TTL": "2"})
	all := d.start([]string{"A", "B"}, nil)
	a, b := all[0], all[1]
	a.register(t, map[string]any{"name": "probe", "url": up.URL})
	waitForTool(t, b, "probe-headers", true)

	change := 0
	// propagate changes the global list on A and returns how long B took to
	// forward the new header, or the error after bound.
	propagate := func(bound time.Duration) (time.Duration, error) {
		change++
		name, value := fmt.Sprintf("X-Change-%d", change), fmt.Sprintf("v%d", change)
		put := a.setGlobalList(t, name)
		ctx, cancel := context.WithTimeout(t.Context(), bound+requestTimeout)
		defer cancel()
		var last http.Header
		for {
			start := time.Now()
			if start.Sub(put) > bound {
				return 0, fmt.Errorf("B did not forward %s within %s of the change on A; its last call carried %v", name, bound, last)
			}
			h, err := b.forwarded(ctx, "probe", name, value)
			if err != nil {
				return 0, err
			}
			if h.Get(name) == value {
				return start.Sub(put), nil
			}
			last = h
		}
	}
	// The lines of B's log that say Redis cannot be reached: the warnings
	// and errors naming it, whatever their wording.
	unreachable := func() []string {
		return b.logLines(func(line string) bool {
			var l struct {
				Level string `json:"level"`
			}
			return json.Unmarshal([]byte(line), &l) == nil && (l.Level == "WARN" || l.Level == "ERROR") &&
				strings.Contains(strings.ToLower(line), "redis")
		})
	}

	if took, err := propagate(fastBound); err != nil {
		t.Fatalf("before the outage: %v", err)
	} else {
		t.Logf("before the outage a change reached B after %s", took.Round(time.Millisecond))
	}

	redis.Stop()
	down := time.Now()
	for _, in := range all {
		for i := range 5 {
			if text, err := in.callTool(t.Context(), "probe-echo", map[string]any{"text": fmt.Sprint(i)}); err != nil || text != fmt.Sprint(i) {
				t.Errorf("call on %s with Redis down: %q %v", in.name, text, err)
			}
		}
		if status, out := in.do(t, "GET", "/ready", nil); status != http.StatusOK {
			t.Errorf("GET /ready on %s with Redis down: %d %s", in.name, status, out)
		}
	}
	if took, err := propagate(ttlBound); err != nil {
		t.Errorf("with Redis down: %v", err)
	} else {
		t.Logf("with Redis down a change reached B after %s (GLOBAL_CONFIG_CACHE_TTL %s)", took.Round(time.Millisecond), ttl)
	}
	// Long enough down for reconnection attempts to have been made, and
	// logged if they are logged each time.
	if rest := 4*time.Second - time.Since(down); rest > 0 {
		time.Sleep(rest)
	}
	if lines := unreachable(); len(lines) != 1 {
		t.Errorf("with Redis down %s, B's log has %d lines saying Redis is unreachable, want exactly 1:\n%s",
			time.Since(down).Round(time.Second), len(lines), strings.Join(lines, "\n"))
	}

	redis.Start()
	back := time.Now()
	var delays []time.Duration
	inARow := 0
	for inARow < fastInARow {
		if time.Since(back) > recovery {
			t.Fatalf("%s after Redis came back, changes still do not reach B fast (≤ %s %d times in a row); the last delays: %v",
				recovery, fastBound, fastInARow, delays[max(len(delays)-10, 0):])
		}
		took, err := propagate(ttlBound)
		if err != nil {
			t.Fatalf("after Redis came back: %v", err)
		}
		delays = append(delays, took.Round(time.Millisecond))
		if took <= fastBound {
			inARow++
		} else {
			inARow = 0
		}
	}
	t.Logf("after Redis came back, changes reached B fast %d times in a row %s later; delays of every change since: %v",
		fastInARow, time.Since(back).Round(time.Millisecond), delays)
	if lines := unreachable(); len(lines) != 1 {
		t.Errorf("after the outage B's log has %d lines saying Redis is unreachable, want exactly 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, in := range all {
		if _, err := in.callTool(t.Context(), "probe-echo", map[string]any{"text": "after"}); err != nil {
			t.Errorf("call on %s after Redis came back: %v", in.name, err)
		}
	}
}

// TestStartupSeedsOneGlobalList: ten instances started at once on an empty
// database, each with a different env list, all start, and all serve the
// one stored global list that exactly one of them seeded (spec §3).
func TestStartupSeedsOneGlobalList(t *testing.T) {
	const n = 10
	d := newDeployment(t, redisDatabase(t, 13), nil)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("I%d", i)
	}
	all := d.start(names, func(i int) map[string]string {
		return map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": fmt.Sprintf("X-Seed-%d", i)}
	})
	var first string
	for _, in := range all {
		status, out := in.do(t, "GET", "/admin/config/passthrough-headers", nil)
		if status != http.StatusOK {
			t.Fatalf("GET /admin/config/passthrough-headers on %s: %d %s", in.name, status, out)
		}
		var v struct {
			PassthroughHeaders []string `json:"passthrough_headers"`
		}
		if err := json.Unmarshal(out, &v); err != nil || len(v.PassthroughHeaders) != 1 || !strings.HasPrefix(v.PassthroughHeaders[0], "X-Seed-") {
			t.Errorf("%s serves the stored global list %s, want the one env list of the instance that seeded it", in.name, out)
			continue
		}
		if first == "" {
			first = v.PassthroughHeaders[0]
			t.Logf("the stored global list is [%s], seeded by one of %d instances started at once", first, n)
		} else if v.PassthroughHeaders[0] != first {
			t.Errorf("%s serves [%s], another instance [%s]: more than one seed was stored", in.name, v.PassthroughHeaders[0], first)
		}
	}
}
