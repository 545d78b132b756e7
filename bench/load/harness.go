package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound a run. Every scenario runs every path with the same counts.
type Options struct {
	// Sequential is the number of measured calls of the sequential scenario
	// (one caller), per path.
	Sequential int
	// Concurrent is the number of measured calls of the concurrent scenario,
	// all callers together, per path.
	Concurrent int
	// Callers is the number of callers of the concurrent scenario.
	Callers int
	// Warmup is the number of unmeasured calls each path makes before each
	// scenario, by as many callers as the scenario has.
	Warmup int
	// Limit caps the measured part of one path in one scenario; a path that
	// reaches it stops early and says so.
	Limit time.Duration
	// RPC adds mcpgate's /rpc as a path.
	RPC bool
	// Reference adds the reference hops (floor.go) as paths: a bare
	// net/http reverse proxy and a TCP relay in front of the upstream.
	Reference bool
	// Rounds is the number of turns the paths take in each scenario; each
	// makes its calls in that many rounds, interleaved with the others'.
	Rounds int
	// CallTimeout bounds each call beyond Limit: a call still running then
	// fails, so a run always ends.
	CallTimeout time.Duration
	// CPUProfile, when set, receives a CPU profile of the scenarios (not of
	// the set-up). Samples carry the label role: mcpgate, upstream or
	// client; select mcpgate's with `go tool pprof -tagfocus role=mcpgate`.
	CPUProfile io.Writer
	// Progress, when set, receives a line as each measurement ends.
	Progress io.Writer
	// UpstreamProcess runs the upstream in a child process (this program,
	// re-executed), with a garbage collector of its own, as upstreams run in
	// production; otherwise it runs in this process.
	UpstreamProcess bool
	// GatewayProcess runs mcpgate in a child process, as it runs in
	// production; otherwise it runs in this process, beside the callers.
	GatewayProcess bool
	// ClientTokens is the algorithm of the client token: HS256 (mcpgate's
	// own, minted with its secret) or RS256, ES256 or EdDSA (an identity
	// provider's, verified with its JWKS).
	ClientTokens string
}

// DefaultOptions are the load harness's standard figures.
func DefaultOptions() Options {
	return Options{Sequential: 2000, Concurrent: 20000, Callers: 32, Warmup: 200, Limit: 60 * time.Second,
		Rounds: 20, RPC: true, Reference: true, CallTimeout: 10 * time.Second, ClientTokens: "HS256"}
}

func (o Options) validate() error {
	switch {
	case o.Sequential < 1 || o.Concurrent < 1:
		return errors.New("the call counts must be 1 or more")
	case o.Callers < 1:
		return errors.New("the concurrency must be 1 or more")
	case o.Rounds < 1 || o.Rounds > min(o.Sequential, o.Concurrent):
		return errors.New("the rounds must be from 1 to the smaller call count")
	case o.Warmup < 0:
		return errors.New("the warm-up must be 0 or more calls")
	case o.Limit <= 0 || o.CallTimeout <= 0:
		return errors.New("the duration cap and the call timeout must be more than 0")
	}
	return nil
}

// scenario is a way of calling: how many callers at once, how many calls.
type scenario struct {
	name    string
	callers int
	calls   int
}

// Run starts an upstream and a gateway on loopback ports, registers the one
// with the other through the admin API, measures every scenario on every
// path, back to back (direct first), and stops everything it started.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	credential := "Bearer " + rand.Text() // mcpgate's credential for the upstream

	// Goroutines inherit profiler labels, so everything each part starts
	// (connections, sessions, its HTTP server's handlers) carries its role.
	var up upstreamServer
	if o.UpstreamProcess {
		up, err = startChildUpstream(ctx, credential)
	} else {
		pprof.Do(ctx, pprof.Labels("role", "upstream"), func(context.Context) { up, err = startEchoServer(credential) })
	}
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, up.Close()) }()
	var gw gatewayServer
	if o.GatewayProcess {
		gw, err = startChildGateway(ctx, o.ClientTokens)
	} else {
		pprof.Do(ctx, pprof.Labels("role", "mcpgate"), func(ctx context.Context) { gw, err = startGateway(ctx, o.ClientTokens) })
	}
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gw.Close()) }()
	tool, err := register(ctx, gw, "bench", up.url(), credential)
	if err != nil {
		return nil, err
	}

	type namedPath struct {
		name string
		path
	}
	var (
		paths []namedPath
		hops  []*referenceHop
	)
	defer func() { // the clients first: closing a session goes through its hop
		for _, p := range paths {
			if cerr := p.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close %s: %w", p.name, cerr))
			}
		}
		for _, h := range hops {
			err = errors.Join(err, h.Close())
		}
	}()
	pprof.Do(ctx, pprof.Labels("role", "client"), func(ctx context.Context) {
		var direct, viaGateway *mcpPath
		if direct, err = dialMCP(ctx, up.url(), "echo", credential, o.Callers); err != nil {
			err = fmt.Errorf("direct: %w", err)
			return
		}
		paths = append(paths, namedPath{pathDirect, direct})
		clientToken := "Bearer " + gw.token()
		if viaGateway, err = dialMCP(ctx, gw.baseURL()+"/mcp", tool, clientToken, o.Callers); err != nil {
			err = fmt.Errorf("mcpgate: %w", err)
			return
		}
		paths = append(paths, namedPath{pathMCPGate, viaGateway})
		if o.RPC {
			paths = append(paths, namedPath{pathRPC, &rpcPath{hc: newHTTPClient(o.Callers), url: gw.baseURL() + "/rpc", tool: tool, credential: clientToken}})
		}
	})
	if err != nil {
		return nil, err
	}
	if o.Reference {
		for _, ref := range []struct {
			name  string
			start func() (*referenceHop, error)
		}{
			{pathProxy, func() (*referenceHop, error) { return startReverseProxy(up.url(), o.Callers) }},
			{pathTCP, func() (*referenceHop, error) { return startTCPRelay(up.url()) }},
		} {
			var hop *referenceHop
			pprof.Do(ctx, pprof.Labels("role", "reference"), func(context.Context) { hop, err = ref.start() })
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref.name, err)
			}
			hops = append(hops, hop)
			var p *mcpPath
			pprof.Do(ctx, pprof.Labels("role", "client"), func(ctx context.Context) {
				p, err = dialMCP(ctx, hop.URL, "echo", credential, o.Callers)
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref.name, err)
			}
			paths = append(paths, namedPath{ref.name, p})
		}
	}

	if o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(o.CPUProfile); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep = newReport(o)
	var seq atomic.Uint64
	for _, sc := range []scenario{{"sequential", 1, o.Sequential}, {"concurrent", o.Callers, o.Concurrent}} {
		if ctx.Err() != nil {
			rep.finish()
			return rep, ctx.Err()
		}
		runtime.GC() // each scenario starts without the previous one's garbage
		ms := make([]*measurement, len(paths))
		for i, p := range paths {
			ms[i] = &measurement{path: p.path}
			pprof.Do(ctx, pprof.Labels("role", "client", "path", p.name), func(ctx context.Context) {
				ms[i].warmUp(ctx, &seq, sc, o)
			})
		}
		conns := func() connCount { return connCount{Upstream: up.accepted(), Gateway: gw.accepted()} }
		// The paths take turns, a round at a time, each round starting with
		// the next path: whatever else the machine does in a moment falls
		// on every path alike, so the ratios hold still from run to run.
		gcBefore := gcCycles()
		for round := range o.Rounds {
			for k := range paths {
				i := (round + k) % len(paths)
				pprof.Do(ctx, pprof.Labels("role", "client", "path", paths[i].name), func(ctx context.Context) {
					ms[i].round(ctx, &seq, sc, o, round, conns)
				})
			}
		}
		gcCycles := gcCycles() - gcBefore
		for i, p := range paths {
			res := ms[i].result()
			res.Scenario, res.Path, res.GCCycles = sc.name, p.name, gcCycles
			rep.add(res)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "%s %s: %d calls, %d errors, p50 %s, %.0f calls/s\n",
					sc.name, p.name, res.Calls, res.Errors, micros(res.P50), res.Throughput)
			}
		}
	}
	rep.finish()
	return rep, nil
}

// connCount is how many connections the upstream and the gateway have
// accepted so far.
type connCount struct{ Upstream, Gateway int64 }

// measurement is one path's part of a scenario, gathered over its rounds.
type measurement struct {
	path         path
	errs         errorLog
	warmupErrors int
	lats         []time.Duration
	attempted    int
	wall         time.Duration
	stopped      bool
	want         int // calls the scenario asks of the path
	newConns     connCount
}

// warmUp makes o.Warmup unmeasured calls with sc.callers callers, so that
// connections and sessions are open before anything is measured.
func (m *measurement) warmUp(ctx context.Context, seq *atomic.Uint64, sc scenario, o Options) {
	wctx, cancel := context.WithTimeout(ctx, o.Limit+o.CallTimeout)
	defer cancel()
	drive(wctx, m.path, seq, sc.callers, o.Warmup, time.Time{}, &m.errs)
	m.warmupErrors = m.errs.count
}

// round makes round number r's share of sc.calls, unless the path has
// already used up o.Limit. conns tells the connections the round opened.
func (m *measurement) round(ctx context.Context, seq *atomic.Uint64, sc scenario, o Options, r int, conns func() connCount) {
	m.want = sc.calls
	n := sc.calls*(r+1)/o.Rounds - sc.calls*r/o.Rounds
	if m.stopped || n == 0 {
		return
	}
	left := o.Limit - m.wall
	mctx, cancel := context.WithTimeout(ctx, left+o.CallTimeout)
	defer cancel()
	before := conns()
	start := time.Now()
	lats, attempted, stopped := drive(mctx, m.path, seq, sc.callers, n, start.Add(left), &m.errs)
	m.wall += time.Since(start)
	after := conns()
	m.lats = append(m.lats, lats...)
	m.attempted += attempted
	m.stopped = stopped || m.wall >= o.Limit
	m.newConns.Upstream += after.Upstream - before.Upstream
	m.newConns.Gateway += after.Gateway - before.Gateway
}

func (m *measurement) result() Result {
	res := summarize(m.lats, m.wall)
	res.NewConns = m.newConns
	res.Calls, res.StoppedEarly = m.attempted, m.attempted < m.want
	res.Throughput = float64(m.attempted) / m.wall.Seconds()
	res.Errors, res.WarmupErrors, res.ErrorSamples = m.errs.count, m.warmupErrors, m.errs.samples()
	return res
}

// drive makes n calls of p with callers callers, none started after
// deadline (the zero time: no deadline), and returns the latencies of those
// that succeeded, how many were made, and whether the deadline stopped it.
func drive(ctx context.Context, p path, seq *atomic.Uint64, callers, n int, deadline time.Time, errs *errorLog) (lats []time.Duration, attempted int, stopped bool) {
	var (
		next      atomic.Int64
		made      atomic.Int64
		truncated atomic.Bool
		wg        sync.WaitGroup
	)
	perCaller := make([][]time.Duration, callers)
	for i := range perCaller {
		wg.Go(func() {
			mine := make([]time.Duration, 0, n/callers+1)
			for next.Add(1) <= int64(n) {
				if ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
					truncated.Store(true)
					break
				}
				s := seq.Add(1)
				made.Add(1)
				t0 := time.Now()
				err := p.call(ctx, s)
				d := time.Since(t0)
				if err != nil {
					errs.add(err)
					continue
				}
				mine = append(mine, d)
			}
			perCaller[i] = mine
		})
	}
	wg.Wait()
	return slices.Concat(perCaller...), int(made.Load()), truncated.Load()
}

// gcCycles is the number of garbage collections the process has finished.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// errorLog counts errors and keeps the first few distinct messages.
type errorLog struct {
	mu       sync.Mutex
	count    int
	messages map[string]int
	order    []string
}

const maxErrorMessages = 5

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	msg := err.Error()
	if _, seen := l.messages[msg]; !seen {
		if len(l.order) == maxErrorMessages {
			return
		}
		if l.messages == nil {
			l.messages = map[string]int{}
		}
		l.order = append(l.order, msg)
	}
	l.messages[msg]++
}

func (l *errorLog) samples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.order {
		out = append(out, fmt.Sprintf("%d× %s", l.messages[m], m))
	}
	return out
}
