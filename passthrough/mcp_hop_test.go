package passthrough

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The MCP 2026-07-28 request headers (MCP-Protocol-Version, Mcp-Method,
// Mcp-Name, Mcp-Param-{name}) describe one hop's request: mcpgate's
// upstream transport builds its own from the body it sends. A client's,
// copied through an allowlist, would let a client make the headers an
// intermediary routes on disagree with the body the upstream executes, or
// be refused by the upstream as a header mismatch (-32020). So they are on
// the never-forwarded set (spec §2.3, deviation D11) however the allowlist
// names them and wherever it comes from.

// hopVectors are the 2026-07-28 per-hop headers, each as an allowlist may
// spell it, with the value a client sends.
var hopVectors = []struct{ allowlisted, value string }{
	{"MCP-Protocol-Version", "2026-07-28"},
	{"Mcp-Protocol-Version", "2026-07-28"},
	{"mcp-protocol-version", "2026-07-28"},
	{"Mcp-Method", "tools/call"},
	{"mcp-method", "tools/call"},
	{"MCP-METHOD", "tools/call"},
	{"Mcp-Name", "drop_table"},
	{"mcp-name", "drop_table"},
	{"MCP-NAME", "drop_table"},
	{"Mcp-Param-Region", "us-west1"},
	{"mcp-param-region", "us-west1"},
	{"MCP-PARAM-REGION", "us-west1"},
	{"Mcp-Param-Greeting", "=?base64?SGVsbG8sIOS4lueVjA==?="},
	{"mCp-PaRaM-dRy-RuN", "true"},
}

// hopAllowlistSources are the ways an allowlist reaches an upstream call
// (spec §3): the global list from the environment, from the database or
// merged, inherited by an upstream with no list of its own (null), and an
// upstream's own list.
func hopAllowlistSources(p *Policy, names []string) map[string]func(context.Context) (*Allowlist, error) {
	resolver := func(source Source, env, stored []string) func(context.Context) (*Allowlist, error) {
		s := p.Settings()
		s.Source, s.DefaultPassthroughHeaders = source, env
		q := NewPolicy(s)
		r := NewAllowlistResolver(q, (&countingLoader{list: StoredList{Exists: stored != nil, Names: stored}}).load, nil)
		return func(ctx context.Context) (*Allowlist, error) { return r.Effective(ctx, nil) }
	}
	return map[string]func(context.Context) (*Allowlist, error){
		"global from env":          resolver(SourceEnv, names, nil),
		"global from the database": resolver(SourceDB, []string{"X-Tenant-Id"}, names),
		"global merged":            resolver(SourceMerge, []string{"X-Tenant-Id"}, names),
		"upstream's own list": func(ctx context.Context) (*Allowlist, error) {
			r := NewAllowlistResolver(p, (&countingLoader{}).load, nil)
			return r.Effective(ctx, p.Compile(names))
		},
	}
}

// TestMCP20260728HeadersNeverForwarded: each 2026-07-28 per-hop header, in
// any case, allowlisted globally or per upstream, sent by the client in any
// case, is skipped with reason mcp_header and a message naming it, for
// every upstream auth type, even with ENABLE_OVERWRITE_BASE_HEADERS on;
// the allowlist's other names are forwarded as usual.
func TestMCP20260728HeadersNeverForwarded(t *testing.T) {
	p := NewPolicy(settingsOn(func(s *Settings) { s.EnableOverwriteBaseHeaders = true }))
	names := []string{"X-Tenant-Id"}
	for _, v := range hopVectors {
		names = append(names, v.allowlisted)
	}
	ctx := context.Background()
	for source, allowlist := range hopAllowlistSources(p, names) {
		list, err := allowlist(ctx)
		// merge keeps one spelling of names that differ only in case.
		if err != nil || list.Len() < 6 || list.Names()[0] != "X-Tenant-Id" {
			t.Fatalf("%s: allowlist %v, %v; want X-Tenant-Id and the per-hop names", source, list.Names(), err)
		}
		for _, spelled := range []func(string) string{http.CanonicalHeaderKey, strings.ToLower, strings.ToUpper} {
			req := hdr("X-Tenant-Id", "acme")
			for _, v := range hopVectors {
				// A raw key, as a hand-built header or an HTTP/2 peer may give.
				req[spelled(v.allowlisted)] = []string{v.value}
			}
			for _, up := range []Upstream{{Name: "u", AuthType: AuthNone}, {Name: "u", AuthType: AuthHeaders}, {Name: "u", AuthType: AuthBearer}, {}} {
				t.Run(fmt.Sprintf("%s/%s/%s", source, spelled("Mcp-Name"), up.AuthType), func(t *testing.T) {
					res := p.Compute(Call{Request: req, Allowlist: list, Upstream: up})
					if len(res.Headers) != 1 || res.Headers[0] != (Header{"X-Tenant-Id", "acme"}) {
						t.Errorf("headers = %v, want only X-Tenant-Id", res.Headers)
					}
					for _, n := range list.Names()[1:] {
						d := decisionFor(t, res, n)
						if d.Action != Skipped || d.Reason != ReasonMCPHeader || d.Reason.String() != "mcp_header" {
							t.Errorf("%s: %s %s, want skipped mcp_header", n, d.Action, d.Reason)
						}
						if msg := res.Message(d); !strings.Contains(msg, n) || !strings.Contains(msg, "per-hop") {
							t.Errorf("%s: message %q does not name it as per-hop", n, msg)
						}
					}
				})
			}
		}
	}
}

// TestMCP20260728HeadersKeepTheTransports: the upstream transport's own
// per-hop headers, given as base headers, survive a client that sends
// other values under allowlisted names, overwriting allowed or not: the
// upstream sees the headers that match the body mcpgate sends.
func TestMCP20260728HeadersKeepTheTransports(t *testing.T) {
	base := []Header{
		{"Mcp-Protocol-Version", "2026-07-28"}, {"Mcp-Method", "tools/call"},
		{"Mcp-Name", "execute_sql"}, {"Mcp-Param-Region", "us-west1"},
	}
	req := hdr("Mcp-Protocol-Version", "2025-06-18", "Mcp-Method", "tools/list", "Mcp-Name", "drop_table", "Mcp-Param-Region", "eu-west1")
	for _, overwrite := range []bool{false, true} {
		p := NewPolicy(settingsOn(func(s *Settings) { s.EnableOverwriteBaseHeaders = overwrite }))
		allow := p.Compile([]string{"mcp-protocol-version", "MCP-METHOD", "Mcp-Name", "mcp-param-region"})
		res := p.Compute(Call{Request: req, Base: base, Allowlist: allow, Upstream: Upstream{AuthType: AuthHeaders}})
		if fmt.Sprint(res.Headers) != fmt.Sprint(base) {
			t.Errorf("overwrite %v: headers = %v, want the transport's %v", overwrite, res.Headers, base)
		}
		for _, n := range allow.Names() {
			if d := decisionFor(t, res, n); d.Reason != ReasonMCPHeader {
				t.Errorf("overwrite %v: %s: %s, want mcp_header", overwrite, n, d.Reason)
			}
		}
	}
}
