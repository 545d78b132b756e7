// Command load measures tools/call latency and throughput through mcpgate
// and directly to the same upstream, in one run.
//
// It starts, in this one process and on 127.0.0.1, an upstream MCP server
// (the go-sdk's, with an echo tool) and a real mcpgate in front of it
// (SQLite, client authentication, sealed upstream credentials, header
// passthrough on), registers the upstream through the admin API, and calls
// the tool with the same client code on each path:
//
//   - direct: mcpgate's upstream client (Streamable HTTP) to the upstream;
//   - mcpgate: the same client to mcpgate's /mcp;
//   - rpc: plain JSON-RPC POSTs to mcpgate's /rpc (-rpc=false leaves it out).
//
// Two scenarios run on each path, back to back: sequential (one caller) and
// concurrent (-concurrency callers). It prints p50, p90, p99 and max latency,
// calls per second, and the ratios mcpgate/direct; every answer is checked,
// and a run with any failed or wrong call exits 1.
//
// Usage:
//
//	go run ./bench/load [-n 2000] [-concurrent-n 20000] [-concurrency 32] [-warmup 200] [-duration 60s] [-json] [-cpuprofile FILE]
//	go run ./bench/load -sessions [-concurrency 32] [-concurrent-n 20000] [-session-count 1000] [-json]
//	go run ./bench/load -stateless [-n 2000] [-concurrent-n 20000] [-concurrency 32] [-warmup 200] [-json]
//
// With -sessions it runs the sessions scenario instead (sessions.go): the
// -concurrency callers on one shared /mcp session, then each on a /mcp
// session of its own, with the upstream sessions each way opened; then
// -session-count client sessions held open at once, each making one call,
// with mcpgate's memory growth per 1 000 sessions and the upstream sessions
// they opened. mcpgate runs in a child process there, so that its memory
// is its own.
//
// With -stateless it runs the stateless scenario instead (stateless.go):
// the official go-sdk client makes the same calls as a 2025-11-25 session
// against a stateful go-sdk upstream and as MCP 2026-07-28 stateless calls
// against a stateless one, each directly and through mcpgate's /mcp (in a
// child process), and prints the stateless/session ratios. While mcpgate
// does not serve 2026-07-28 it measures the other paths and fails saying so.
//
// docs/benchmarks.md explains the figures and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
)

func main() {
	if role, ok := os.LookupEnv(envChild); ok {
		os.Exit(serveChild(role))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: 0 when every call succeeded, 1 when some failed, 2
// when the run could not be made.
func run(args []string, stdout, stderr io.Writer) int {
	o := DefaultOptions()
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Sequential, "n", o.Sequential, "measured calls of the sequential scenario, per path")
	fs.IntVar(&o.Concurrent, "concurrent-n", o.Concurrent, "measured calls of the concurrent scenario, per path, all callers together")
	fs.IntVar(&o.Callers, "concurrency", o.Callers, "callers of the concurrent scenario")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "turns the paths take in each scenario, each making its calls in that many interleaved rounds")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "unmeasured calls per path before each scenario")
	fs.DurationVar(&o.Limit, "duration", o.Limit, "cap on each path's measurement in each scenario; it stops early when reached")
	fs.BoolVar(&o.RPC, "rpc", o.RPC, "also measure mcpgate's /rpc")
	fs.BoolVar(&o.IdentityAssertion, "identity-assertion", false, "register the upstream with identity_assertion: every call through mcpgate carries a signed identity assertion")
	fs.BoolVar(&o.Reference, "reference", o.Reference, "also measure the reference hops: a bare net/http reverse proxy and a TCP relay in front of the upstream")
	fs.BoolVar(&o.GatewayProcess, "gateway-process", false, "run mcpgate in a child process of its own, as in production (false: in this process, beside the callers)")
	fs.BoolVar(&o.UpstreamProcess, "upstream-process", true, "run the upstream in a child process of its own, as in production (false: in this process, sharing its garbage collector)")
	fs.StringVar(&o.ClientTokens, "client-token", o.ClientTokens, "the client token's algorithm: HS256 (minted with the gateway's secret) or RS256, ES256, EdDSA (an identity provider's, verified with its JWKS on 127.0.0.1)")
	stateless := fs.Bool("stateless", false, "run the stateless scenario instead: the same calls by the go-sdk client as a 2025-11-25 session and as 2026-07-28 stateless calls, directly and through mcpgate, with the stateless/session ratios")
	sessions := fs.Bool("sessions", false, "run the sessions scenario instead: shared vs own /mcp sessions, and memory per 1 000 client sessions")
	sessionCount := fs.Int("session-count", DefaultSessionOptions().Sessions, "client sessions the sessions scenario holds open at once")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the scenarios to `file` (see go tool pprof -tagfocus role=mcpgate)")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the whole run to `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "load: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *sessions {
		return runSessions(SessionOptions{Callers: o.Callers, Calls: o.Concurrent, Sessions: *sessionCount, CallTimeout: o.CallTimeout}, *asJSON, stdout, stderr)
	}
	if *stateless {
		return runStateless(o, *asJSON, stdout, stderr)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "load: %v\n", err)
			return 2
		}
		defer f.Close()
		o.CPUProfile = f
	}
	if !*asJSON {
		o.Progress = stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, o)
	if rep != nil {
		write := rep.WriteText
		if *asJSON {
			write = rep.WriteJSON
		}
		if werr := write(stdout); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if *memProfile != "" {
		if perr := writeAllocs(*memProfile); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	case rep.Errors() > 0:
		fmt.Fprintf(stderr, "load: %d calls failed\n", rep.Errors())
		return 1
	}
	return 0
}

// scenarioReport is what -sessions and -stateless print.
type scenarioReport interface {
	WriteText(io.Writer) error
	WriteJSON(io.Writer) error
	failedCalls() int
}

// runSessions is the command with -sessions.
func runSessions(o SessionOptions, asJSON bool, stdout, stderr io.Writer) int {
	if !asJSON {
		o.Progress = stderr
	}
	return runScenario(asJSON, stdout, stderr, func(ctx context.Context) (scenarioReport, error) { return asReport(RunSessions(ctx, o)) })
}

// runStateless is the command with -stateless.
func runStateless(o Options, asJSON bool, stdout, stderr io.Writer) int {
	if !asJSON {
		o.Progress = stderr
	}
	return runScenario(asJSON, stdout, stderr, func(ctx context.Context) (scenarioReport, error) { return asReport(RunStateless(ctx, o)) })
}

// asReport turns a scenario's (report, error) into runScenario's, a nil
// report into a nil interface.
func asReport[R interface {
	scenarioReport
	comparable
}](rep R, err error) (scenarioReport, error) {
	var none R
	if rep == none {
		return nil, err
	}
	return rep, err
}

// runScenario runs a scenario until an interrupt, prints its report (when
// there is one) and returns the command's exit status.
func runScenario(asJSON bool, stdout, stderr io.Writer, run func(context.Context) (scenarioReport, error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx)
	if rep != nil {
		write := rep.WriteText
		if asJSON {
			write = rep.WriteJSON
		}
		if werr := write(stdout); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "load: %v\n", err)
		return 2
	case rep.failedCalls() > 0:
		fmt.Fprintf(stderr, "load: %d calls failed\n", rep.failedCalls())
		return 1
	}
	return 0
}

func writeAllocs(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("allocation profile: %w", err)
	}
	return f.Close()
}
