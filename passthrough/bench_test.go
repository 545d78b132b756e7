package passthrough

import (
	"net/http"
	"testing"
)

// realisticCall is the realistic benchmark case: 25 request headers as a
// browser-based MCP client behind a load balancer sends them, an 8-name
// allowlist (two names absent from the request, one never forwarded), three
// base headers and a bearer upstream.
func realisticCall(p *Policy) Call {
	req := http.Header{}
	for _, kv := range [][2]string{
		{"Host", "mcpgate.internal:4444"},
		{"User-Agent", "claude-desktop/1.4 (darwin)"},
		{"Accept", "application/json, text/event-stream"},
		{"Accept-Encoding", "gzip, deflate, br"},
		{"Accept-Language", "en-GB,en;q=0.9"},
		{"Content-Type", "application/json"},
		{"Content-Length", "214"},
		{"Connection", "keep-alive"},
		{"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJl"},
		{"Mcp-Session-Id", "5f1c2d9e-8a7b-4c3d-9e0f-1a2b3c4d5e6f"},
		{"Mcp-Protocol-Version", "2025-06-18"},
		{"X-Tenant-Id", "acme-corp"},
		{"X-Trace-Id", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"X-Request-Id", "req-7f3a9c"},
		{"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"Tracestate", "vendor=opaque"},
		{"X-Forwarded-For", "203.0.113.7, 10.0.0.2"},
		{"X-Forwarded-Proto", "https"},
		{"X-Real-Ip", "203.0.113.7"},
		{"Cookie", "session=abc; theme=dark"},
		{"Origin", "https://app.example.com"},
		{"Referer", "https://app.example.com/chat"},
		{"Sec-Fetch-Mode", "cors"},
		{"X-Correlation-Id", "corr-12345"},
		{"X-Upstream-Authorization", "Bearer upstream-token-for-crm"},
	} {
		req.Set(kv[0], kv[1])
	}
	return Call{
		Request: req,
		Base: []Header{
			{"Authorization", "Bearer stored-upstream-secret"},
			{"Content-Type", "application/json"},
			{"User-Agent", "mcpgate/0.1"},
		},
		Allowlist: p.Compile([]string{"X-Tenant-Id", "X-Trace-Id", "X-Request-Id", "Traceparent",
			"Tracestate", "X-Correlation-Id", "X-Region", "Authorization"}),
		Upstream: Upstream{Name: "crm", AuthType: AuthBearer},
	}
}

// BenchmarkCompute measures one realistic computation against a baseline that
// only copies the base headers, in the same run; compare their ns/op.
func BenchmarkCompute(b *testing.B) {
	p := NewPolicy(settingsOn())
	c := realisticCall(p)
	if n := len(p.Compute(c).Headers); n != 9 {
		b.Fatalf("realistic case forwards %d headers, want 9", n)
	}
	b.Run("baseline-copy-base", func(b *testing.B) {
		b.ReportAllocs()
		var sink []Header
		for b.Loop() {
			sink = append(make([]Header, 0, len(c.Base)), c.Base...)
		}
		_ = sink
	})
	b.Run("realistic", func(b *testing.B) {
		b.ReportAllocs()
		var sink Result
		for b.Loop() {
			sink = p.Compute(c)
		}
		_ = sink
	})
	b.Run("realistic-reused-result", func(b *testing.B) {
		b.ReportAllocs()
		var res Result
		for b.Loop() {
			p.ComputeInto(&res, c)
		}
	})
}

// BenchmarkCaptureSession measures keeping a session's opening headers,
// which happens once per session.
func BenchmarkCaptureSession(b *testing.B) {
	p := NewPolicy(settingsOn())
	c := realisticCall(p)
	b.ReportAllocs()
	for b.Loop() {
		_ = p.CaptureSession(c.Request)
	}
}

func BenchmarkSanitizeValue(b *testing.B) {
	for _, tc := range []struct{ name, v string }{
		{"clean", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"dirty", " Bearer abc\r\n\x01 "},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = SanitizeValue(tc.v)
			}
		})
	}
}
