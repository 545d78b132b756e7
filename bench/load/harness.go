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
	// RPC adds mcpgate's /rpc as a third path.
	RPC bool
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
}

// DefaultOptions are the figures of issue 3.
func DefaultOptions() Options {
	return Options{Sequential: 2000, Concurrent: 20000, Callers: 32, Warmup: 200, Limit: 60 * time.Second,
		RPC: true, CallTimeout: 10 * time.Second}
}

func (o Options) validate() error {
	switch {
	case o.Sequential < 1 || o.Concurrent < 1:
		return errors.New("the call counts must be 1 or more")
	case o.Callers < 1:
		return errors.New("the concurrency must be 1 or more")
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
	var gw *runningGateway
	pprof.Do(ctx, pprof.Labels("role", "mcpgate"), func(ctx context.Context) { gw, err = startGateway(ctx) })
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gw.Close()) }()
	tool, err := gw.register(ctx, "bench", up.url(), credential)
	if err != nil {
		return nil, err
	}

	type namedPath struct {
		name string
		path
	}
	var paths []namedPath
	defer func() {
		for _, p := range paths {
			if cerr := p.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close %s: %w", p.name, cerr))
			}
		}
	}()
	pprof.Do(ctx, pprof.Labels("role", "client"), func(ctx context.Context) {
		var direct, viaGateway *mcpPath
		if direct, err = dialMCP(ctx, up.url(), "echo", credential, o.Callers); err != nil {
			err = fmt.Errorf("direct: %w", err)
			return
		}
		paths = append(paths, namedPath{pathDirect, direct})
		clientToken := "Bearer " + gw.Token
		if viaGateway, err = dialMCP(ctx, gw.URL+"/mcp", tool, clientToken, o.Callers); err != nil {
			err = fmt.Errorf("mcpgate: %w", err)
			return
		}
		paths = append(paths, namedPath{pathMCPGate, viaGateway})
		if o.RPC {
			paths = append(paths, namedPath{pathRPC, &rpcPath{hc: newHTTPClient(o.Callers), url: gw.URL + "/rpc", tool: tool, credential: clientToken}})
		}
	})
	if err != nil {
		return nil, err
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
		for _, p := range paths {
			if ctx.Err() != nil {
				rep.finish()
				return rep, ctx.Err()
			}
			runtime.GC() // each measurement starts without the previous one's garbage
			var res Result
			pprof.Do(ctx, pprof.Labels("role", "client", "path", p.name), func(ctx context.Context) {
				res = measure(ctx, p.path, &seq, sc, o, func() connCount {
					return connCount{Upstream: up.accepted(), Gateway: gw.Accepted.Load()}
				})
			})
			res.Scenario, res.Path = sc.name, p.name
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

// measure runs o.Warmup unmeasured calls, then sc.calls measured ones, with
// sc.callers callers, stopping early at o.Limit. conns tells the new
// connections apart from those the warm-up opened.
func measure(ctx context.Context, p path, seq *atomic.Uint64, sc scenario, o Options, conns func() connCount) Result {
	var errs errorLog
	wctx, cancel := context.WithTimeout(ctx, o.Limit+o.CallTimeout)
	drive(wctx, p, seq, sc.callers, o.Warmup, time.Time{}, &errs)
	cancel()
	warmupErrors := errs.count

	mctx, cancel := context.WithTimeout(ctx, o.Limit+o.CallTimeout)
	defer cancel()
	before, gcBefore := conns(), gcCycles()
	start := time.Now()
	lats, attempted, stopped := drive(mctx, p, seq, sc.callers, sc.calls, start.Add(o.Limit), &errs)
	wall := time.Since(start)
	after := conns()
	res := summarize(lats, wall)
	res.GCCycles = gcCycles() - gcBefore
	res.NewConns = connCount{Upstream: after.Upstream - before.Upstream, Gateway: after.Gateway - before.Gateway}
	res.Calls, res.StoppedEarly = attempted, stopped
	res.Throughput = float64(attempted) / wall.Seconds()
	res.Errors, res.WarmupErrors, res.ErrorSamples = errs.count, warmupErrors, errs.samples()
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
