package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// scrape reads m's metrics over HTTP, as Prometheus does.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestMethodLabelsAreBounded: a method label is one MCP defines, or
// "other": a client sending made-up method names (to an unauthenticated
// /metrics' mcpgate) cannot add a series per name.
func TestMethodLabelsAreBounded(t *testing.T) {
	m := New()
	for _, method := range []string{"tools/call", "made-up/1", "made-up/2", `x"} evil{`, strings.Repeat("a", 10000)} {
		m.Request(method, "", false)
		m.UpstreamLatency("up", method, time.Millisecond)
	}
	out := scrape(t, m)
	for _, want := range []string{
		`mcpgate_requests_total{method="tools/call",outcome="error",upstream=""} 1`,
		`mcpgate_requests_total{method="other",outcome="error",upstream=""} 4`,
		`mcpgate_upstream_request_duration_seconds_count{method="other",upstream="up"} 4`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the metrics", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		for _, leaked := range []string{"made-up", "evil", "aaaa"} {
			if strings.Contains(line, leaked) {
				t.Errorf("a client's method name became a label: %.120s", line)
			}
		}
	}
}

func TestKnownMethods(t *testing.T) {
	for method, known := range map[string]bool{
		"initialize": true, "tools/call": true, "notifications/tools/list_changed": true, "tasks/get": true,
		"": false, "tools/Call": false, "tools/call ": false, "rpc.discover": false,
	} {
		if got := MethodLabel(method); (got == method) != known {
			t.Errorf("MethodLabel(%q) = %q; known %v", method, got, known)
		}
	}
}
