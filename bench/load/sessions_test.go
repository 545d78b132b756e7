package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSessionsScenarioSmall runs the sessions scenario with tiny counts: a
// real upstream, a real mcpgate in its own process. Every call succeeds,
// memory is read from mcpgate's /metrics, and the upstream sessions are
// those of per-client upstream sessions: one per client session that made
// a call (each of its own sessions; each held session), none opened on the
// shared session once it has one. Against the shared-session design the
// upstream sees no session opened for clients at all.
func TestSessionsScenarioSmall(t *testing.T) {
	o := SessionOptions{Callers: 4, Calls: 200, Sessions: 20, CallTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunSessions(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("the report:\n%s", out.String())
	if rep.Errors > 0 {
		t.Fatalf("%d calls failed; shared: %v, own: %v", rep.Errors, rep.Shared.ErrorSamples, rep.Own.ErrorSamples)
	}
	for _, p := range []SessionThroughput{rep.Shared, rep.Own} {
		if p.Calls != o.Calls || p.Throughput <= 0 || p.P50 <= 0 {
			t.Errorf("a throughput part made %d calls at %.0f calls/s, p50 %s; want %d calls measured", p.Calls, p.Throughput, p.P50, o.Calls)
		}
	}
	if rep.FirstCallP50 <= 0 || !strings.Contains(out.String(), "per 1000 sessions") {
		t.Errorf("no first-call latency or memory figure in the report")
	}
	if rep.Shared.UpstreamSessions > 1 {
		t.Errorf("%d callers on one shared client session opened %d upstream sessions; want at most 1", o.Callers, rep.Shared.UpstreamSessions)
	}
	if rep.Own.UpstreamSessions != int64(o.Callers) {
		t.Errorf("%d callers, each on a client session of its own, opened %d upstream sessions; want %d, one per client session", o.Callers, rep.Own.UpstreamSessions, o.Callers)
	}
	if rep.UpstreamSessions != int64(o.Sessions) {
		t.Errorf("%d client sessions held open, one call each, opened %d upstream sessions; want %d", o.Sessions, rep.UpstreamSessions, o.Sessions)
	}
}
