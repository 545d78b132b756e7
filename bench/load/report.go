package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// targetP50Ratio is the load harness's target: sequential p50 through mcpgate at most
// this many times the direct p50.
const targetP50Ratio = 1.3

// Result is one path's measurement in one scenario. Latencies are of the
// calls that succeeded.
type Result struct {
	Scenario string
	Path     string
	// Calls is the number of measured calls made; fewer than asked when
	// StoppedEarly.
	Calls int
	// Errors counts the calls that failed or came back wrong, warm-up
	// included; WarmupErrors is the warm-up's share.
	Errors, WarmupErrors int
	// ErrorSamples are the first distinct error messages, with counts.
	ErrorSamples []string
	// Succeeded is the number of latencies the percentiles are taken from.
	Succeeded                int
	P50, P90, P99, Max, Mean time.Duration
	// Wall is the measured part's duration; Throughput is Calls per second
	// of it.
	Wall       time.Duration
	Throughput float64
	// StoppedEarly says the duration cap ended the measurement.
	StoppedEarly bool
	// NewConns counts the connections the upstream and the gateway
	// accepted during the measured calls (from any client, the gateway's
	// own upstream client included). Once warm, a path that reuses its
	// connections opens none.
	NewConns connCount
	// GCCycles counts the garbage collections of the harness's process
	// that finished during the scenario's measured rounds, every path's
	// together (they are interleaved). Clients, and mcpgate when it runs
	// in this process, share the heap.
	GCCycles uint64
}

// summarize takes the percentiles (nearest rank) of lats, which it sorts.
func summarize(lats []time.Duration, wall time.Duration) Result {
	r := Result{Wall: wall, Succeeded: len(lats)}
	if len(lats) == 0 {
		return r
	}
	slices.Sort(lats)
	rank := func(q float64) time.Duration {
		return lats[max(0, int(math.Ceil(q*float64(len(lats))))-1)]
	}
	var sum time.Duration
	for _, d := range lats {
		sum += d
	}
	r.P50, r.P90, r.P99, r.Max, r.Mean = rank(0.50), rank(0.90), rank(0.99), lats[len(lats)-1], sum/time.Duration(len(lats))
	return r
}

// Ratio compares a path through mcpgate with the direct path in one
// scenario: latency ratios above 1 and a throughput ratio below 1 are what
// mcpgate costs.
type Ratio struct {
	Scenario   string  `json:"scenario"`
	Path       string  `json:"path"`
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
	Throughput float64 `json:"throughput"`
}

// Target is the load harness's target and whether this run met it.
type Target struct {
	Description string  `json:"description"`
	Limit       float64 `json:"limit"`
	Measured    float64 `json:"measured"`
	Met         bool    `json:"met"`
}

// Machine describes where the run happened.
type Machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	GoVersion  string `json:"go_version"`
}

// Report is a run's outcome.
type Report struct {
	Machine Machine
	Options Options
	Results []Result
	Ratios  []Ratio
	// Target is nil when the sequential scenario has no latencies for both
	// direct and mcpgate.
	Target *Target
}

func newReport(o Options) *Report {
	return &Report{Options: o, Machine: Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(), GoVersion: runtime.Version()}}
}

func (r *Report) add(res Result) { r.Results = append(r.Results, res) }

// Errors is the number of failed calls in the whole run.
func (r *Report) Errors() int { return countErrors(r.Results) }

// writeFailures writes how many calls of results failed, and their error
// samples, when any did.
func writeFailures(w io.Writer, results []Result) {
	if n := countErrors(results); n > 0 {
		fmt.Fprintf(w, "\n%d calls failed:\n", n)
		for _, res := range results {
			for _, s := range res.ErrorSamples {
				fmt.Fprintf(w, "  %s/%s: %s\n", res.Scenario, res.Path, s)
			}
		}
	}
}

// countErrors is the number of failed calls in results.
func countErrors(results []Result) int {
	n := 0
	for _, res := range results {
		n += res.Errors
	}
	return n
}

// result returns the measurement of path in scenario, if any.
func (r *Report) result(scenario, path string) (Result, bool) {
	i := slices.IndexFunc(r.Results, func(res Result) bool { return res.Scenario == scenario && res.Path == path })
	if i < 0 {
		return Result{}, false
	}
	return r.Results[i], true
}

// finish computes the ratios and the target.
func (r *Report) finish() {
	for _, res := range r.Results {
		if res.Path == pathDirect {
			continue
		}
		direct, ok := r.result(res.Scenario, pathDirect)
		if !ok || direct.Succeeded == 0 || res.Succeeded == 0 {
			continue
		}
		r.Ratios = append(r.Ratios, Ratio{Scenario: res.Scenario, Path: res.Path,
			P50: float64(res.P50) / float64(direct.P50), P99: float64(res.P99) / float64(direct.P99),
			Throughput: res.Throughput / direct.Throughput})
	}
	for _, ra := range r.Ratios {
		if ra.Scenario == "sequential" && ra.Path == pathMCPGate {
			r.Target = &Target{Description: "sequential p50 mcpgate/direct at most 1.3x", Limit: targetP50Ratio,
				Measured: ra.P50, Met: ra.P50 <= targetP50Ratio}
		}
	}
}

// WriteText writes the table, the ratios, the target and any errors.
func (r *Report) WriteText(out io.Writer) error {
	w := new(bytes.Buffer)
	m := r.Machine
	cpu := ""
	if m.CPUModel != "" {
		cpu = " (" + m.CPUModel + ")"
	}
	where := func(own bool) string {
		if own {
			return "its own process"
		}
		return "the harness's process"
	}
	fmt.Fprintf(w, "mcpgate load: tools/call of an echo tool on 127.0.0.1; the upstream in %s, mcpgate in %s; %s client token\n",
		where(r.Options.UpstreamProcess), where(r.Options.GatewayProcess), r.Options.ClientTokens)
	fmt.Fprintf(w, "machine: %d CPUs%s, GOMAXPROCS %d, %s %s/%s\n", m.CPUs, cpu, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch)
	fmt.Fprintf(w, "runs: sequential 1 caller × %d calls, concurrent %d callers × %d calls in all, per path, in %d interleaved rounds; %d warm-up calls per path and scenario; cap %s each\n\n",
		r.Options.Sequential, r.Options.Callers, r.Options.Concurrent, r.Options.Rounds, r.Options.Warmup, r.Options.Limit)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tpath\tcalls\terrors\tp50\tp90\tp99\tmax\tcalls/s\tnew conns up/gw")
	for _, res := range r.Results {
		note := ""
		if res.StoppedEarly {
			note = "  (stopped at the cap)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.0f\t%d/%d%s\n", res.Scenario, res.Path, res.Calls, res.Errors,
			micros(res.P50), micros(res.P90), micros(res.P99), micros(res.Max), res.Throughput,
			res.NewConns.Upstream, res.NewConns.Gateway, note)
	}
	tw.Flush() // into a bytes.Buffer: cannot fail
	fmt.Fprintln(w)
	for _, ra := range r.Ratios {
		fmt.Fprintf(w, "%s: p50 %s/direct = %.2fx, p99 = %.2fx, throughput = %.2fx\n", ra.Scenario, ra.Path, ra.P50, ra.P99, ra.Throughput)
	}
	for _, sc := range []string{"sequential", "concurrent"} {
		if hop := r.hopCosts(sc); hop != "" {
			fmt.Fprintf(w, "%s: p50 added over direct: %s\n", sc, hop)
		}
	}
	if t := r.Target; t != nil {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "target: sequential p50 mcpgate/direct <= %.2fx: %s (%.2fx)\n", t.Limit, verdict, t.Measured)
	}
	writeFailures(w, r.Results)
	_, err := out.Write(w.Bytes())
	return err
}

// hopCosts says, for scenario, how much each path adds to the direct p50
// ("mcpgate +140µs, proxy +150µs, ..."); "" without a direct measurement.
func (r *Report) hopCosts(scenario string) string {
	direct, ok := r.result(scenario, pathDirect)
	if !ok || direct.Succeeded == 0 {
		return ""
	}
	var parts []string
	for _, res := range r.Results {
		if res.Scenario == scenario && res.Path != pathDirect && res.Succeeded > 0 {
			parts = append(parts, fmt.Sprintf("%s %+.0fµs", res.Path, float64(res.P50-direct.P50)/float64(time.Microsecond)))
		}
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes the report as one JSON object; latencies are in
// microseconds.
func (r *Report) WriteJSON(w io.Writer) error {
	type result struct {
		Scenario     string   `json:"scenario"`
		Path         string   `json:"path"`
		Calls        int      `json:"calls"`
		Errors       int      `json:"errors"`
		WarmupErrors int      `json:"warmup_errors"`
		ErrorSamples []string `json:"error_samples,omitempty"`
		P50          float64  `json:"p50_us"`
		P90          float64  `json:"p90_us"`
		P99          float64  `json:"p99_us"`
		Max          float64  `json:"max_us"`
		Mean         float64  `json:"mean_us"`
		Throughput   float64  `json:"calls_per_second"`
		Wall         float64  `json:"wall_seconds"`
		StoppedEarly bool     `json:"stopped_early"`
		NewConns     struct {
			Upstream int64 `json:"upstream"`
			Gateway  int64 `json:"gateway"`
		} `json:"new_connections"`
		GCCycles uint64 `json:"gc_cycles"`
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	out := struct {
		Machine Machine `json:"machine"`
		Options struct {
			Sequential int    `json:"sequential_calls"`
			Concurrent int    `json:"concurrent_calls"`
			Callers    int    `json:"concurrency"`
			Warmup     int    `json:"warmup_calls"`
			Limit      string `json:"duration_cap"`
			Rounds     int    `json:"rounds"`
			RPC        bool   `json:"rpc"`
			Reference  bool   `json:"reference"`
			Upstream   bool   `json:"upstream_process"`
			Gateway    bool   `json:"gateway_process"`
			Token      string `json:"client_token"`
		} `json:"options"`
		Results []result `json:"results"`
		Ratios  []Ratio  `json:"ratios"`
		Target  *Target  `json:"target"`
		Errors  int      `json:"errors"`
	}{Machine: r.Machine, Ratios: r.Ratios, Target: r.Target, Errors: r.Errors(), Results: []result{}}
	o := r.Options
	out.Options.Sequential, out.Options.Concurrent, out.Options.Callers = o.Sequential, o.Concurrent, o.Callers
	out.Options.Warmup, out.Options.Limit, out.Options.Rounds, out.Options.RPC = o.Warmup, o.Limit.String(), o.Rounds, o.RPC
	out.Options.Reference, out.Options.Upstream, out.Options.Gateway = o.Reference, o.UpstreamProcess, o.GatewayProcess
	out.Options.Token = o.ClientTokens
	for _, res := range r.Results {
		j := result{Scenario: res.Scenario, Path: res.Path, Calls: res.Calls, Errors: res.Errors,
			WarmupErrors: res.WarmupErrors, ErrorSamples: res.ErrorSamples, P50: us(res.P50), P90: us(res.P90), P99: us(res.P99),
			Max: us(res.Max), Mean: us(res.Mean), Throughput: res.Throughput, Wall: res.Wall.Seconds(), StoppedEarly: res.StoppedEarly,
			GCCycles: res.GCCycles}
		j.NewConns.Upstream, j.NewConns.Gateway = res.NewConns.Upstream, res.NewConns.Gateway
		out.Results = append(out.Results, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// micros formats d in microseconds, always, so columns compare at a glance.
func micros(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

// cpuModel is the processor's name on Linux; "" elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
