package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// TestMain lets the test binary serve as the harness's child processes, as
// the command does (main).
func TestMain(m *testing.M) {
	if role, ok := os.LookupEnv(envChild); ok {
		os.Exit(serveChild(role))
	}
	os.Exit(m.Run())
}

// TestHarnessSmall runs the whole harness with tiny counts: a real upstream,
// a real mcpgate, every path, both scenarios. Every call must succeed and
// every path must have latencies to compare.
func TestHarnessSmall(t *testing.T) {
	for _, tc := range []struct {
		name              string
		upstream, gateway bool
	}{{"one process", false, false}, {"upstream and mcpgate in processes of their own", true, true}} {
		t.Run(tc.name, func(t *testing.T) { testHarnessSmall(t, tc.upstream, tc.gateway) })
	}
}

func testHarnessSmall(t *testing.T, upstreamProcess, gatewayProcess bool) {
	o := DefaultOptions()
	o.UpstreamProcess, o.GatewayProcess = upstreamProcess, gatewayProcess
	o.Sequential, o.Concurrent, o.Callers, o.Warmup, o.Limit = 50, 200, 8, 10, 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Errors(); n > 0 {
		var out bytes.Buffer
		_ = rep.WriteText(&out)
		t.Fatalf("%d calls failed:\n%s", n, out.String())
	}
	want := map[string]int{"sequential": o.Sequential, "concurrent": o.Concurrent}
	if len(rep.Results) != 10 {
		t.Fatalf("got %d results, want 2 scenarios × 5 paths", len(rep.Results))
	}
	for _, res := range rep.Results {
		if res.Calls != want[res.Scenario] || res.Succeeded != res.Calls || res.StoppedEarly {
			t.Errorf("%s/%s: %d calls, %d succeeded, stopped early %v; want %d", res.Scenario, res.Path, res.Calls, res.Succeeded, res.StoppedEarly, want[res.Scenario])
		}
		if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.Throughput <= 0 {
			t.Errorf("%s/%s: p50 %v, p99 %v, max %v, %.0f calls/s", res.Scenario, res.Path, res.P50, res.P99, res.Max, res.Throughput)
		}
	}
	if len(rep.Ratios) != 8 || rep.Target == nil {
		t.Fatalf("ratios %+v, target %+v; want mcpgate, rpc, proxy and tcp against direct in both scenarios", rep.Ratios, rep.Target)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"sequential: p50 mcpgate/direct = ", "concurrent: p50 rpc/direct = ", "sequential: p50 tcp/direct = ", "sequential: p50 added over direct: mcpgate ", "target: "} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("the report lacks %q:\n%s", line, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Results []struct {
			Path string  `json:"path"`
			P50  float64 `json:"p50_us"`
		} `json:"results"`
		Errors int `json:"errors"`
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil || len(decoded.Results) != 10 || decoded.Results[0].P50 <= 0 {
		t.Errorf("JSON report: %v\n%s", err, js.String())
	}
}

// TestCheckEchoCatchesWrongAnswers: an answer counts only if it is the text
// this very call sent.
func TestCheckEchoCatchesWrongAnswers(t *testing.T) {
	const seq = 7
	for _, tc := range []struct {
		name   string
		resp   jsonrpc.Message
		wantOK bool
	}{
		{"the text sent", result(`{"content":[{"type":"text","text":"call-7"}]}`), true},
		{"another call's text", result(`{"content":[{"type":"text","text":"call-8"}]}`), false},
		{"a tool error", result(`{"content":[{"type":"text","text":"call-7"}],"isError":true}`), false},
		{"two items", result(`{"content":[{"type":"text","text":"call-7"},{"type":"text","text":"x"}]}`), false},
		{"no content", result(`{}`), false},
		{"not a tools/call result", result(`[1,2]`), false},
		{"a JSON-RPC error", jsonrpc.Message{Error: jsonrpc.Errorf(jsonrpc.CodeUpstreamError, "down")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkEcho(tc.resp, seq); (err == nil) != tc.wantOK {
				t.Errorf("checkEcho = %v, want ok %v", err, tc.wantOK)
			}
		})
	}
}

// TestUpstreamChecksWhatArrived: the upstream refuses a call whose
// allowlisted headers are missing, belong to another call, or lack its
// credential.
func TestUpstreamChecksWhatArrived(t *testing.T) {
	const credential = "Bearer upstream-secret"
	sent := requestHeaders(credential, 7)
	for _, tc := range []struct {
		name   string
		change func(http.Header)
		wantOK bool
	}{
		{"all of this call's headers", func(http.Header) {}, true},
		{"without X-Tenant-Id", func(h http.Header) { h.Del("X-Tenant-Id") }, false},
		{"another call's X-Request-Id", func(h http.Header) { h.Set("X-Request-Id", "req-8") }, false},
		{"the client's token instead of the credential", func(h http.Header) { h.Set("Authorization", "Bearer client-token") }, false},
		{"an X-Region nobody sent", func(h http.Header) { h.Set("X-Region", "eu") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sent.Clone()
			tc.change(h)
			if err := checkArrived(h, echoText(7), credential); (err == nil) != tc.wantOK {
				t.Errorf("checkArrived = %v, want ok %v", err, tc.wantOK)
			}
		})
	}
}

func result(raw string) jsonrpc.Message { return jsonrpc.Message{Result: json.RawMessage(raw)} }

// flakyPath fails every third call.
type flakyPath struct{ calls atomic.Int64 }

func (p *flakyPath) call(context.Context, uint64) error {
	if p.calls.Add(1)%3 == 0 {
		return errors.New("boom")
	}
	return nil
}

func (p *flakyPath) close() error { return nil }

// TestMeasureCountsEveryError: failed calls, warm-up included, are counted
// and named, and kept out of the latencies.
func TestMeasureCountsEveryError(t *testing.T) {
	o := DefaultOptions()
	o.Warmup, o.Rounds = 3, 4
	var seq atomic.Uint64
	m := &measurement{path: &flakyPath{}}
	sc := scenario{"concurrent", 4, 30}
	m.warmUp(context.Background(), &seq, sc, o)
	for r := range o.Rounds {
		m.round(context.Background(), &seq, sc, o, r, func() connCount { return connCount{} })
	}
	res := m.result()
	// 33 calls in all, every third one failing: 11, one of them in the
	// warm-up; 20 of the 30 measured ones, made in 4 rounds, succeed.
	if res.StoppedEarly || res.Calls != 30 || res.Errors != 11 || res.WarmupErrors != 1 || res.Succeeded != 20 {
		t.Errorf("calls %d, errors %d (warm-up %d), succeeded %d; want 30, 11 (1), 20", res.Calls, res.Errors, res.WarmupErrors, res.Succeeded)
	}
	if len(res.ErrorSamples) != 1 || res.ErrorSamples[0] != "11× boom" {
		t.Errorf("error samples %q", res.ErrorSamples)
	}
}

// TestRunRefusesBadFlags: a count of 0 is a usage error, not a run.
func TestRunRefusesBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "1 or more") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
