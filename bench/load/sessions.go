package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// SessionOptions bound the sessions scenario (-sessions): client sessions
// of their own against one shared session, and what a client session costs.
type SessionOptions struct {
	// Callers is the number of concurrent callers of the throughput part;
	// Calls the measured calls, all callers together, per path.
	Callers, Calls int
	// Sessions is the number of client sessions the memory part opens and
	// holds at once, each making one tool call.
	Sessions int
	// CallTimeout bounds each call.
	CallTimeout time.Duration
	// Progress, when set, receives a line as each part ends.
	Progress io.Writer
}

// DefaultSessionOptions are the sessions scenario's standard figures.
func DefaultSessionOptions() SessionOptions {
	return SessionOptions{Callers: 32, Calls: 20000, Sessions: 1000, CallTimeout: 10 * time.Second}
}

// SessionReport is what the sessions scenario measured.
type SessionReport struct {
	Callers int `json:"callers"`
	// Shared: every caller on one /mcp session (the harness's mcpgate path);
	// Own: each caller on a /mcp session of its own.
	Shared SessionThroughput `json:"shared_session"`
	Own    SessionThroughput `json:"own_sessions"`
	// Sessions is the number of client sessions the memory part held open.
	Sessions int `json:"sessions"`
	// FirstCallP50 and FirstCallP99 are the latencies of each new session's
	// first tools/call (which is where an upstream session opened lazily
	// for it is paid for); compare with Own's steady-state percentiles.
	FirstCallP50 time.Duration `json:"first_call_p50_ns"`
	FirstCallP99 time.Duration `json:"first_call_p99_ns"`
	// RSSPer1000 and HeapPer1000 are the growth of mcpgate's resident set
	// and of its Go heap in use, per 1 000 client sessions held open, in
	// bytes (from its /metrics: process_resident_memory_bytes,
	// go_memstats_heap_inuse_bytes).
	RSSPer1000  float64 `json:"rss_bytes_per_1000_sessions"`
	HeapPer1000 float64 `json:"heap_inuse_bytes_per_1000_sessions"`
	// UpstreamSessions is the number of sessions the upstream saw
	// initialized while the memory part opened its client sessions.
	UpstreamSessions int64 `json:"upstream_sessions_opened"`
	Errors           int   `json:"errors"`
}

// SessionThroughput is one way of calling in the throughput part.
type SessionThroughput struct {
	Calls       int           `json:"calls"`
	Errors      int           `json:"errors"`
	Throughput  float64       `json:"calls_per_second"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	ClientSides int           `json:"client_sessions"`
	// UpstreamSessions is the number of sessions the upstream saw
	// initialized from before this part's client sessions opened to the
	// end of its calls.
	UpstreamSessions int64    `json:"upstream_sessions_opened"`
	ErrorSamples     []string `json:"error_samples,omitempty"`
}

// RunSessions starts the echo upstream in this process (counting the
// sessions initialized on it) and mcpgate in a child process (so that its
// memory is its own), then measures: Callers callers on one shared /mcp
// session, then each caller on its own /mcp session, back to back; then
// opens Sessions client sessions at once, each making one call, and reports
// mcpgate's memory growth per 1 000 and the upstream sessions opened.
func RunSessions(ctx context.Context, o SessionOptions) (rep *SessionReport, err error) {
	if o.Callers < 1 || o.Calls < o.Callers || o.Sessions < 1 || o.CallTimeout <= 0 {
		return nil, errors.New("sessions: the callers, the calls (at least one per caller), the sessions and the call timeout must be more than 0")
	}
	credential := "Bearer bench-sessions-credential"
	up, initialized, err := startCountingEchoServer(credential)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, up.Close()) }()
	gw, err := startChildGateway(ctx, auth.AlgHS256)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gw.Close()) }()
	tool, err := register(ctx, gw, "bench", up.URL, credential, false)
	if err != nil {
		return nil, err
	}
	endpoint, token := gw.baseURL()+"/mcp", "Bearer "+gw.token()
	hc := newHTTPClient(o.Sessions)
	defer hc.CloseIdleConnections()
	rep = &SessionReport{Callers: o.Callers, Sessions: o.Sessions}

	// Memory first, on a mcpgate that has served nothing yet: after the
	// throughput part its resident set holds that part's garbage, which
	// new sessions would reuse unseen. Sessions client sessions are held
	// open at once, each having made one call.
	rss0, heap0, err := gatewayMemory(ctx, gw.baseURL())
	if err != nil {
		return nil, err
	}
	before := initialized.Load()
	held := make([]*upstream.Client, o.Sessions)
	firsts := make([]time.Duration, o.Sessions)
	var (
		next   atomic.Int64
		failed errorLog
		wg     sync.WaitGroup
	)
	for range o.Callers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < o.Sessions; i = int(next.Add(1)) - 1 {
				c, err := dialSession(ctx, hc, endpoint, token)
				if err != nil {
					failed.add(err)
					continue
				}
				held[i] = c
				start := time.Now()
				if err := callEcho(ctx, c, tool, token, uint64(i), o.CallTimeout); err != nil {
					failed.add(err)
					continue
				}
				firsts[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	rss1, heap1, err := gatewayMemory(ctx, gw.baseURL())
	closeAll(held)
	if err != nil {
		return nil, err
	}
	rep.UpstreamSessions = initialized.Load() - before
	rep.RSSPer1000 = (rss1 - rss0) * 1000 / float64(o.Sessions)
	rep.HeapPer1000 = (heap1 - heap0) * 1000 / float64(o.Sessions)
	var ok []time.Duration
	for _, d := range firsts {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	s := summarize(ok, 0)
	rep.FirstCallP50, rep.FirstCallP99 = s.P50, s.P99
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "sessions: %d sessions held: RSS +%.1f MiB per 1000, %d upstream sessions opened\n", o.Sessions, rep.RSSPer1000/(1<<20), rep.UpstreamSessions)
		for _, m := range failed.samples() {
			fmt.Fprintf(o.Progress, "sessions: failed: %s\n", m)
		}
	}

	// Throughput: the same calls on one shared session, then on one
	// session per caller. Upstream sessions are counted from before the
	// client sessions open: mcpgate may open an upstream session at a
	// client's initialize or at its first call.
	before = initialized.Load()
	shared, err := dialSession(ctx, hc, endpoint, token)
	if err != nil {
		return nil, fmt.Errorf("sessions: the shared session: %w", err)
	}
	sharedSessions := make([]*upstream.Client, o.Callers)
	for i := range sharedSessions {
		sharedSessions[i] = shared
	}
	rep.Shared = measureSessions(ctx, sharedSessions, tool, token, o)
	rep.Shared.UpstreamSessions = initialized.Load() - before
	rep.Shared.ClientSides = 1
	_ = shared.Close()
	before = initialized.Load()
	own := make([]*upstream.Client, o.Callers)
	for i := range own {
		if own[i], err = dialSession(ctx, hc, endpoint, token); err != nil {
			closeAll(own)
			return nil, fmt.Errorf("sessions: session %d of %d: %w", i+1, o.Callers, err)
		}
	}
	rep.Own = measureSessions(ctx, own, tool, token, o)
	rep.Own.UpstreamSessions = initialized.Load() - before
	rep.Own.ClientSides = o.Callers
	closeAll(own)
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "sessions: %d callers: shared session %.0f calls/s, own sessions %.0f calls/s\n", o.Callers, rep.Shared.Throughput, rep.Own.Throughput)
	}

	rep.Errors = rep.Shared.Errors + rep.Own.Errors + failed.count
	return rep, nil
}

// measureSessions makes o.Calls calls, caller i on sessions[i], and
// returns the figures.
func measureSessions(ctx context.Context, sessions []*upstream.Client, tool, token string, o SessionOptions) SessionThroughput {
	var (
		next atomic.Int64
		errs errorLog
		wg   sync.WaitGroup
	)
	lats := make([][]time.Duration, len(sessions))
	start := time.Now()
	for i, c := range sessions {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(o.Calls); n = next.Add(1) {
				t0 := time.Now()
				if err := callEcho(ctx, c, tool, token, uint64(n), o.CallTimeout); err != nil {
					errs.add(err)
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	s := summarize(all, wall)
	return SessionThroughput{Calls: o.Calls, Errors: errs.count, Throughput: float64(o.Calls) / wall.Seconds(),
		P50: s.P50, P99: s.P99, ErrorSamples: errs.samples()}
}

// dialSession opens one client session on mcpgate's /mcp with mcpgate's
// own upstream client (the harness's client code), on a shared HTTP client.
func dialSession(ctx context.Context, hc *http.Client, endpoint, token string) (*upstream.Client, error) {
	return upstream.Connect(ctx, upstream.Options{URL: endpoint, HTTPClient: hc, ClientName: "mcpgate-bench", ClientVersion: "1", SessionOnly: true,
		Headers: upstream.FixedHeaders(http.Header{"Authorization": {token}})})
}

// callEcho makes echo call seq on c and checks its answer.
func callEcho(ctx context.Context, c *upstream.Client, tool, token string, seq uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := newEchoRequest(tool, seq)
	if err != nil {
		return err
	}
	resp, err := c.Call(ctx, req, requestHeaders(token, seq), nil)
	if err != nil {
		return err
	}
	return checkEcho(resp, seq)
}

func closeAll(cs []*upstream.Client) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// gatewayMemory reads mcpgate's resident set and Go heap in use, in bytes,
// from its /metrics.
func gatewayMemory(ctx context.Context, base string) (rss, heap float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("mcpgate's /metrics: %w", err)
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for name, into := range map[string]*float64{"process_resident_memory_bytes ": &rss, "go_memstats_heap_inuse_bytes ": &heap} {
			if v, ok := strings.CutPrefix(line, name); ok {
				if _, err := fmt.Sscan(v, into); err != nil {
					return 0, 0, fmt.Errorf("mcpgate's /metrics: %q: %w", line, err)
				}
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("mcpgate's /metrics: %w", err)
	}
	if found != 2 {
		return 0, 0, errors.New("mcpgate's /metrics has no process_resident_memory_bytes or go_memstats_heap_inuse_bytes")
	}
	return rss, heap, nil
}

// startCountingEchoServer is startEchoServer's upstream, in this process,
// that also counts the sessions initialized on it (notifications/initialized).
func startCountingEchoServer(credential string) (*echoServer, *atomic.Int64, error) {
	var initialized atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-echo", Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(context.Context, *mcp.InitializedRequest) { initialized.Add(1) },
	})
	addEchoTool(srv, credential)
	e, err := serveEcho(srv, nil)
	if err != nil {
		return nil, nil, err
	}
	return e, &initialized, nil
}

// WriteText prints the sessions report for people.
func (r *SessionReport) WriteText(w io.Writer) error {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	var b strings.Builder
	fmt.Fprintf(&b, "sessions scenario: %d concurrent callers through /mcp\n", r.Callers)
	fmt.Fprintf(&b, "  %-16s %8s %9s %9s %12s %18s %7s\n", "", "calls", "p50", "p99", "calls/s", "upstream sessions", "errors")
	for _, t := range []struct {
		name string
		SessionThroughput
	}{{"one shared", r.Shared}, {"one per caller", r.Own}} {
		fmt.Fprintf(&b, "  %-16s %8d %9s %9s %12.0f %18d %7d\n", t.name, t.Calls, ms(t.P50), ms(t.P99), t.Throughput, t.UpstreamSessions, t.Errors)
	}
	if r.Shared.Throughput > 0 {
		fmt.Fprintf(&b, "  own/shared throughput: %.2f\n", r.Own.Throughput/r.Shared.Throughput)
	}
	fmt.Fprintf(&b, "%d client sessions held open, one call each:\n", r.Sessions)
	fmt.Fprintf(&b, "  mcpgate RSS +%.1f MiB per 1000 sessions (Go heap in use +%.1f MiB per 1000)\n", r.RSSPer1000/(1<<20), r.HeapPer1000/(1<<20))
	fmt.Fprintf(&b, "  upstream sessions opened: %d\n", r.UpstreamSessions)
	fmt.Fprintf(&b, "  first call on a new session: p50 %s, p99 %s\n", ms(r.FirstCallP50), ms(r.FirstCallP99))
	fmt.Fprintf(&b, "errors: %d\n", r.Errors)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *SessionReport) failedCalls() int { return r.Errors }

// WriteJSON prints the sessions report as JSON.
func (r *SessionReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
