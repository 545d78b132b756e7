package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// The revisions the stateless scenario compares: a session (initialize,
// Mcp-Session-Id) and the stateless revision (no handshake, _meta on every
// request; MCP 2026-07-28).
const (
	sessionEra   = protocol.Version20251125
	statelessEra = protocol.Version20260728
)

// The stateless scenario's paths: the official go-sdk client at each
// revision, straight to its upstream and through mcpgate's /mcp.
const (
	pathSessionDirect    = "session direct"
	pathSessionMCPGate   = "session mcpgate"
	pathStatelessDirect  = "stateless direct"
	pathStatelessMCPGate = "stateless mcpgate"
)

// StatelessReport is what the stateless scenario (-stateless) measured.
type StatelessReport struct {
	Machine Machine
	Options Options
	Results []Result
	// Ratios are stateless/session, through mcpgate and directly, per
	// scenario: below 1 the stateless call is the cheaper.
	Ratios []Ratio
	// Missing says why the stateless path through mcpgate was not
	// measured ("" when it was).
	Missing string `json:",omitempty"`
}

// RunStateless measures the same echo calls made by the official go-sdk
// client (this program knows the protocol, not mcpgate's code) on two
// revisions, each against an upstream that speaks it: a 2025-11-25
// session against the go-sdk's stateful server, and 2026-07-28 stateless
// calls against its stateless server (StreamableHTTPOptions.Stateless,
// serving 2026-07-28 only) — each directly and through mcpgate's /mcp,
// sequential and concurrent, in interleaved rounds. mcpgate runs in a
// child process. A client that does not get the revision it asked for
// fails the run: when mcpgate does not serve 2026-07-28 (yet), the other
// paths are measured and reported, and the error says so.
func RunStateless(ctx context.Context, o Options) (rep *StatelessReport, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	credential := "Bearer " + rand.Text()
	session, err := startEchoServer(credential)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, session.Close()) }()
	stateless, err := startStatelessEchoServer(credential)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stateless.Close()) }()
	gw, err := startChildGateway(ctx, auth.AlgHS256)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gw.Close()) }()
	sessionTool, err := register(ctx, gw, "session", session.URL, credential, false)
	if err != nil {
		return nil, err
	}
	// Without the stateless path through mcpgate the others still run, so
	// that the run shows what it can; the run fails at its end.
	var missing error
	statelessTool, err := register(ctx, gw, "stateless", stateless.URL, credential, false)
	if err != nil {
		missing = fmt.Errorf("mcpgate does not serve %s upstreams yet: %w", statelessEra, err)
	}
	token := "Bearer " + gw.token()
	type planned struct {
		name, url, tool, credential, era string
	}
	plan := []planned{
		{pathSessionDirect, session.URL, "echo", credential, sessionEra},
		{pathSessionMCPGate, gw.baseURL() + "/mcp", sessionTool, token, sessionEra},
		{pathStatelessDirect, stateless.URL, "echo", credential, statelessEra},
		{pathStatelessMCPGate, gw.baseURL() + "/mcp", statelessTool, token, statelessEra},
	}
	paths, names := make([]path, 0, len(plan)), make([]string, 0, len(plan))
	defer func() {
		for _, p := range paths {
			err = errors.Join(err, p.close())
		}
	}()
	for _, p := range plan {
		if p.name == pathStatelessMCPGate && missing != nil {
			continue
		}
		sp, err := dialSDK(ctx, p.url, p.tool, p.credential, p.era, o.Callers)
		if err != nil && p.name == pathStatelessMCPGate {
			missing = fmt.Errorf("mcpgate does not serve %s clients yet: %w", statelessEra, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		paths = append(paths, sp)
		names = append(names, p.name)
	}

	rep = &StatelessReport{Options: o, Machine: newReport(o).Machine}
	noConns := func() connCount { return connCount{} }
	var seq atomic.Uint64
	for _, sc := range []scenario{{"sequential", 1, o.Sequential}, {"concurrent", o.Callers, o.Concurrent}} {
		round := make([]*measurement, len(paths))
		for i, p := range paths {
			round[i] = &measurement{path: p}
			round[i].warmUp(ctx, &seq, sc, o)
		}
		for r := range o.Rounds {
			for _, m := range round {
				m.round(ctx, &seq, sc, o, r, noConns)
			}
		}
		for i, m := range round {
			res := m.result()
			res.Scenario, res.Path = sc.name, names[i]
			rep.Results = append(rep.Results, res)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "stateless: %s %s: p50 %s, %.0f calls/s, %d errors\n", sc.name, res.Path, micros(res.P50), res.Throughput, res.Errors)
			}
		}
	}
	rep.finish()
	if missing != nil {
		rep.Missing = missing.Error()
	}
	return rep, missing
}

// Errors is the number of failed calls in the whole run.
func (r *StatelessReport) Errors() int { return countErrors(r.Results) }

func (r *StatelessReport) failedCalls() int { return r.Errors() }

// find returns the measurement of path in scenario, if it has latencies.
func (r *StatelessReport) find(scenario, path string) (Result, bool) {
	for _, res := range r.Results {
		if res.Scenario == scenario && res.Path == path && res.Succeeded > 0 {
			return res, true
		}
	}
	return Result{}, false
}

func (r *StatelessReport) finish() {
	for _, sc := range []string{"sequential", "concurrent"} {
		for _, pair := range [][2]string{{pathStatelessMCPGate, pathSessionMCPGate}, {pathStatelessDirect, pathSessionDirect}} {
			st, ok1 := r.find(sc, pair[0])
			se, ok2 := r.find(sc, pair[1])
			if !ok1 || !ok2 {
				continue
			}
			r.Ratios = append(r.Ratios, Ratio{Scenario: sc, Path: pair[0] + "/" + pair[1],
				P50: float64(st.P50) / float64(se.P50), P99: float64(st.P99) / float64(se.P99), Throughput: st.Throughput / se.Throughput})
		}
	}
}

// WriteText writes the table and the stateless/session ratios, in the
// style of the main report.
func (r *StatelessReport) WriteText(out io.Writer) error {
	w := new(bytes.Buffer)
	fmt.Fprintf(w, "mcpgate load, stateless scenario: tools/call of an echo tool on 127.0.0.1 by the go-sdk client, a %s session vs %s stateless calls, each against a go-sdk upstream of its revision; mcpgate in its own process\n", sessionEra, statelessEra)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs, GOMAXPROCS %d, %s %s/%s\n", m.CPUs, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch)
	fmt.Fprintf(w, "runs: sequential 1 caller × %d calls, concurrent %d callers × %d calls in all, per path, in %d interleaved rounds; %d warm-up calls per path and scenario\n\n",
		r.Options.Sequential, r.Options.Callers, r.Options.Concurrent, r.Options.Rounds, r.Options.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tpath\tcalls\terrors\tp50\tp90\tp99\tmax\tcalls/s")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.0f\n", res.Scenario, res.Path, res.Calls, res.Errors,
			micros(res.P50), micros(res.P90), micros(res.P99), micros(res.Max), res.Throughput)
	}
	tw.Flush() // into a bytes.Buffer: cannot fail
	fmt.Fprintln(w)
	for _, ra := range r.Ratios {
		fmt.Fprintf(w, "%s: p50 %s = %.2fx, p99 = %.2fx, throughput = %.2fx\n", ra.Scenario, ra.Path, ra.P50, ra.P99, ra.Throughput)
	}
	// What mcpgate itself adds, per revision: the upstreams differ in cost
	// (the go-sdk's stateless server makes a session per request), which
	// the end-to-end ratio above includes.
	for _, sc := range []string{"sequential", "concurrent"} {
		var parts []string
		for _, era := range [][2]string{{"session", pathSessionDirect}, {"stateless", pathStatelessDirect}} {
			direct, ok1 := r.find(sc, era[1])
			through, ok2 := r.find(sc, era[0]+" mcpgate")
			if ok1 && ok2 {
				parts = append(parts, fmt.Sprintf("%s %+.0fµs", era[0], float64(through.P50-direct.P50)/float64(time.Microsecond)))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: p50 mcpgate adds over direct: %s\n", sc, strings.Join(parts, ", "))
		}
	}
	if r.Missing != "" {
		fmt.Fprintf(w, "not measured: %s: %s\n", pathStatelessMCPGate, r.Missing)
	}
	writeFailures(w, r.Results)
	_, err := out.Write(w.Bytes())
	return err
}

// WriteJSON writes the report as JSON (latencies in nanoseconds).
func (r *StatelessReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// startStatelessEchoServer is startEchoServer's upstream on the go-sdk's
// stateless Streamable HTTP handler, serving 2026-07-28 only: a server of
// the stateless revision, which has no initialize to fall back to.
func startStatelessEchoServer(credential string) (*echoServer, error) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-echo-stateless", Version: "1"},
		&mcp.ServerOptions{SupportedProtocolVersions: []string{statelessEra}})
	addEchoTool(srv, credential)
	return serveEcho(srv, &mcp.StreamableHTTPOptions{Stateless: true})
}

// sdkPath is one go-sdk client session (at 2026-07-28, a session only in
// the SDK's API: no handshake, no session id) calling the echo tool. Each
// call's headers are requestHeaders of its seq, set by the transport from
// the call's context.
type sdkPath struct {
	cs   *mcp.ClientSession
	hc   *http.Client
	tool string
}

type seqKey struct{}

// seqHeaders sets requestHeaders(credential, seq) on every request whose
// context carries a seq (the calls), and the credential alone on the others.
type seqHeaders struct {
	credential string
	next       http.RoundTripper
}

func (s seqHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if seq, ok := r.Context().Value(seqKey{}).(uint64); ok {
		for k, v := range requestHeaders(s.credential, seq) {
			r.Header[k] = v
		}
	} else {
		r.Header.Set("Authorization", s.credential)
	}
	return s.next.RoundTrip(r)
}

// dialSDK connects the go-sdk client to url asking for era, and fails when
// it got another revision (the go-sdk client falls back to initialize at
// 2025-11-25 when server/discover does not offer 2026-07-28).
func dialSDK(ctx context.Context, url, tool, credential, era string, callers int) (*sdkPath, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpgate-bench", Version: "1"}, nil)
	hc := newHTTPClient(callers)
	httpClient := &http.Client{Transport: seqHeaders{credential, hc.Transport}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: httpClient, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		hc.CloseIdleConnections()
		return nil, fmt.Errorf("connect at %s: %w", era, err)
	}
	if got := cs.InitializeResult().ProtocolVersion; got != era {
		_ = cs.Close()
		hc.CloseIdleConnections()
		return nil, fmt.Errorf("%s negotiated %s with a client asking for %s", url, got, era)
	}
	return &sdkPath{cs: cs, hc: hc, tool: tool}, nil
}

func (p *sdkPath) call(ctx context.Context, seq uint64) error {
	res, err := p.cs.CallTool(context.WithValue(ctx, seqKey{}, seq), &mcp.CallToolParams{Name: p.tool, Arguments: echoArgs{Text: echoText(seq)}})
	if err != nil {
		return err
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	got := strings.Join(text, "")
	switch {
	case res.IsError:
		return fmt.Errorf("the echo tool answered an error: %s", got)
	case got != echoText(seq):
		return fmt.Errorf("the echo tool answered %q, want %q", got, echoText(seq))
	}
	return nil
}

func (p *sdkPath) close() error {
	err := p.cs.Close()
	p.hc.CloseIdleConnections()
	return err
}
