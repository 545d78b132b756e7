package passthrough

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func settingsOn(mod ...func(*Settings)) Settings {
	s := DefaultSettings()
	s.EnableHeaderPassthrough = true
	for _, m := range mod {
		m(&s)
	}
	return s
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func decisionFor(t *testing.T, res Result, header string) Decision {
	t.Helper()
	for _, d := range res.Decisions {
		if d.Header == header {
			return d
		}
	}
	t.Fatalf("no decision for %s in %v", header, res.Decisions)
	return Decision{}
}

// TestComputeRules walks spec §2 rule by rule.
func TestComputeRules(t *testing.T) {
	tests := []struct {
		name      string
		settings  Settings
		request   http.Header
		base      []Header
		allowlist []string
		upstream  Upstream
		want      []Header
		decisions map[string]Reason // header -> reason, for the headers named
	}{
		{
			name:      "allowlisted headers are copied in allowlist order and spelling",
			settings:  settingsOn(),
			request:   hdr("x-trace-id", "t1", "X-TENANT-ID", "acme", "X-Other", "no"),
			base:      []Header{{"Content-Type", "application/json"}},
			allowlist: []string{"X-Tenant-ID", "x-trace-id"},
			want:      []Header{{"Content-Type", "application/json"}, {"X-Tenant-ID", "acme"}, {"x-trace-id", "t1"}},
			decisions: map[string]Reason{"X-Tenant-ID": ReasonAllowlisted, "x-trace-id": ReasonAllowlisted},
		},
		{
			name:      "the switch off copies nothing but says so for each entry",
			settings:  DefaultSettings(),
			request:   hdr("X-Tenant-Id", "acme"),
			allowlist: []string{"X-Tenant-Id"},
			want:      []Header{},
			decisions: map[string]Reason{"X-Tenant-Id": ReasonPassthroughDisabled},
		},
		{
			name:      "the last of repeated request values wins",
			settings:  settingsOn(),
			request:   hdr("X-Tenant-Id", "first", "x-tenant-id", "second"),
			allowlist: []string{"X-Tenant-Id"},
			want:      []Header{{"X-Tenant-Id", "second"}},
		},
		{
			name:      "absent and empty headers are skipped at debug level",
			settings:  settingsOn(),
			request:   hdr("X-Empty", ""),
			allowlist: []string{"X-Missing", "X-Empty"},
			want:      []Header{},
			decisions: map[string]Reason{"X-Missing": ReasonNotInRequest, "X-Empty": ReasonEmptyValue},
		},
		{
			name:      "values are sanitised and skipped when nothing is left",
			settings:  settingsOn(),
			request:   hdr("X-A", " a\r\nb\x7f ", "X-B", "\x01\x02 "),
			allowlist: []string{"X-A", "X-B"},
			want:      []Header{{"X-A", "ab"}},
			decisions: map[string]Reason{"X-B": ReasonEmptyAfterSanitising},
		},
		{
			name:      "a name failing the strict rule is skipped, trailing newline included (D1)",
			settings:  settingsOn(),
			request:   hdr("X-A", "v"),
			allowlist: []string{"X-A\n", "X_A", "X-A"},
			want:      []Header{{"X-A", "v"}},
			decisions: map[string]Reason{"X-A\n": ReasonInvalidName, "X_A": ReasonInvalidName},
		},
		{
			name:      "a base header is kept unless overwriting is on",
			settings:  settingsOn(),
			request:   hdr("User-Agent", "client"),
			base:      []Header{{"User-Agent", "mcpgate"}},
			allowlist: []string{"user-agent"},
			want:      []Header{{"User-Agent", "mcpgate"}},
			decisions: map[string]Reason{"user-agent": ReasonBaseConflict},
		},
		{
			name:      "with overwriting on the allowlist spelling replaces the base header in place",
			settings:  settingsOn(func(s *Settings) { s.EnableOverwriteBaseHeaders = true }),
			request:   hdr("User-Agent", "client"),
			base:      []Header{{"User-Agent", "mcpgate"}, {"X-Static", "1"}},
			allowlist: []string{"user-agent"},
			want:      []Header{{"user-agent", "client"}, {"X-Static", "1"}},
			decisions: map[string]Reason{"user-agent": ReasonOverwroteBase},
		},
		{
			name:      "X-Upstream-Authorization replaces the base Authorization whatever its case, switch off too",
			settings:  DefaultSettings(),
			request:   hdr("X-Upstream-Authorization", "Bearer up\r\n"),
			base:      []Header{{"authorization", "Basic base"}},
			upstream:  Upstream{AuthType: AuthBasic},
			want:      []Header{{"Authorization", "Bearer up"}},
			decisions: map[string]Reason{"X-Upstream-Authorization": ReasonUpstreamAuthorization},
		},
		{
			name:      "an X-Upstream-Authorization that sanitises to nothing still stops the none rule",
			settings:  settingsOn(func(s *Settings) { s.AuthenticatesClients = false }),
			request:   hdr("X-Upstream-Authorization", "\r\n", "Authorization", "Bearer client"),
			upstream:  Upstream{AuthType: AuthNone},
			want:      []Header{},
			decisions: map[string]Reason{"X-Upstream-Authorization": ReasonEmptyAfterSanitising},
		},
		{
			name:      "the none rule withholds the client Authorization when mcpgate authenticates with it (D4)",
			settings:  DefaultSettings(),
			request:   hdr("Authorization", "Bearer client"),
			upstream:  Upstream{AuthType: AuthNone},
			want:      []Header{},
			decisions: map[string]Reason{"Authorization": ReasonOwnAuthorization},
		},
		{
			name:      "the none rule forwards Authorization when clients authenticate with another header",
			settings:  settingsOn(func(s *Settings) { s.AuthHeaderName = "X-Api-Key" }),
			request:   hdr("Authorization", "Bearer for-upstream", "X-Api-Key", "mcpgate-secret"),
			upstream:  Upstream{AuthType: AuthNone},
			allowlist: []string{"X-Api-Key"},
			want:      []Header{{"Authorization", "Bearer for-upstream"}},
			decisions: map[string]Reason{"Authorization": ReasonClientAuthorization, "X-Api-Key": ReasonClientCredential},
		},
		{
			name:      "the none rule never replaces a base Authorization",
			settings:  settingsOn(func(s *Settings) { s.AuthenticatesClients = false }),
			request:   hdr("Authorization", "Bearer client"),
			base:      []Header{{"Authorization", "Bearer static"}},
			upstream:  Upstream{AuthType: AuthNone},
			want:      []Header{{"Authorization", "Bearer static"}},
			decisions: map[string]Reason{"Authorization": ReasonBaseAuthorizationIsSet},
		},
		{
			name:      "basic and bearer upstreams never get an allowlisted Authorization",
			settings:  settingsOn(func(s *Settings) { s.AuthenticatesClients = false }),
			request:   hdr("Authorization", "Bearer client"),
			upstream:  Upstream{Name: "crm", AuthType: AuthBearer},
			allowlist: []string{"Authorization"},
			want:      []Header{},
			decisions: map[string]Reason{"Authorization": ReasonUpstreamAuthConflict},
		},
		{
			name:      "token exchange upstreams ignore every client credential",
			settings:  settingsOn(func(s *Settings) { s.AuthenticatesClients = false; s.EnableOverwriteBaseHeaders = true }),
			request:   hdr("X-Upstream-Authorization", "Bearer attacker", "Authorization", "Bearer client"),
			base:      []Header{{"Authorization", "Bearer exchanged"}},
			upstream:  Upstream{AuthType: AuthOAuth, TokenExchange: true},
			allowlist: []string{"Authorization"},
			want:      []Header{{"Authorization", "Bearer exchanged"}},
			decisions: map[string]Reason{"X-Upstream-Authorization": ReasonTokenExchange, "Authorization": ReasonTokenExchange},
		},
		{
			name:      "allowlist entries differing only in case leave one header, the later (D3)",
			settings:  settingsOn(),
			request:   hdr("X-Tenant-Id", "acme"),
			allowlist: []string{"X-Tenant-Id", "x-tenant-id"},
			want:      []Header{{"x-tenant-id", "acme"}},
			decisions: map[string]Reason{"X-Tenant-Id": ReasonReplacedByLaterEntry, "x-tenant-id": ReasonAllowlisted},
		},
		{
			name:     "a base that repeats a name in another case is reduced to the later one",
			settings: settingsOn(),
			base:     []Header{{"X-Static", "1"}, {"x-static", "2"}},
			request:  hdr(),
			want:     []Header{{"x-static", "2"}},
		},
		{
			name:      "MCP per-hop headers are never forwarded (D11)",
			settings:  settingsOn(),
			request:   hdr("Mcp-Session-Id", "s", "Mcp-Protocol-Version", "2025-06-18", "Mcp-Param-Region", "eu"),
			allowlist: []string{"Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Param-Region"},
			want:      []Header{},
			decisions: map[string]Reason{"Mcp-Session-Id": ReasonMCPHeader, "MCP-Protocol-Version": ReasonMCPHeader, "Mcp-Param-Region": ReasonMCPHeader},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy(tt.settings)
			var allow *Allowlist
			if tt.allowlist != nil {
				allow = p.Compile(tt.allowlist)
			}
			base := slices.Clone(tt.base)
			res := p.Compute(Call{Request: tt.request, Base: base, Allowlist: allow, Upstream: tt.upstream})
			if !slices.Equal(res.Headers, tt.want) {
				t.Errorf("headers = %v, want %v", res.Headers, tt.want)
			}
			if !slices.Equal(base, tt.base) {
				t.Errorf("base headers modified: %v", base)
			}
			for h, r := range tt.decisions {
				if d := decisionFor(t, res, h); d.Reason != r {
					t.Errorf("%s: reason %s, want %s (%s)", h, d.Reason, r, res.Message(d))
				}
			}
			if got, want := len(res.Decisions), len(tt.allowlist); got < want {
				t.Errorf("%d decisions, want at least one per allowlist entry (%d)", got, want)
			}
		})
	}
}

// TestNeverForwardedSet sends every never-forwarded header, allowlisted and
// in the request, and checks none is forwarded and each says why (spec §2.3).
func TestNeverForwardedSet(t *testing.T) {
	want := map[string]Reason{
		"Content-Type": ReasonProtocolHeader, "Content-Length": ReasonProtocolHeader, "Host": ReasonProtocolHeader,
		"Transfer-Encoding": ReasonProtocolHeader, "Connection": ReasonProtocolHeader, "Keep-Alive": ReasonProtocolHeader,
		"Proxy-Connection": ReasonProtocolHeader, "TE": ReasonProtocolHeader, "Trailer": ReasonProtocolHeader,
		"Upgrade":           ReasonProtocolHeader,
		"Sec-Websocket-Key": ReasonProtocolHeader, "Sec-Websocket-Version": ReasonProtocolHeader,
		"Sec-Websocket-Extensions": ReasonProtocolHeader, "Sec-Websocket-Protocol": ReasonProtocolHeader,
		"Sec-Websocket-Accept": ReasonProtocolHeader,
		"Mcp-Session-Id":       ReasonMCPHeader, "Mcp-Protocol-Version": ReasonMCPHeader, "Mcp-Method": ReasonMCPHeader,
		"Mcp-Name": ReasonMCPHeader, "Mcp-Param-Anything": ReasonMCPHeader, "X-Mcp-Session-Id": ReasonMCPHeader,
		"X-Authenticated-User": ReasonInternalHeader, "Accept": ReasonInternalHeader, "Last-Event-Id": ReasonInternalHeader,
		"X-Mcpgate-Anything": ReasonInternalHeader, "X-Forwarded-Internally": ReasonInternalHeader,
		"X-Contextforge-Auth-Context": ReasonInternalHeader,
		"Authorization":               ReasonClientCredential,
	}
	s := settingsOn(func(s *Settings) { s.EnableOverwriteBaseHeaders = true })
	p := NewPolicy(s)
	req := http.Header{}
	var names []string
	for name := range want {
		req.Set(name, "attacker")
		names = append(names, strings.ToUpper(name)) // the check ignores case
	}
	for _, up := range []Upstream{{AuthType: AuthHeaders}, {AuthType: AuthNone}, {}} {
		res := p.Compute(Call{Request: req, Allowlist: p.Compile(names), Upstream: up})
		if len(res.Headers) != 0 {
			t.Errorf("%+v: forwarded %v, want nothing", up, res.Headers)
		}
		for name, r := range want {
			if d := decisionFor(t, res, strings.ToUpper(name)); d.Action != Skipped || d.Reason != r {
				t.Errorf("%s: %s %s, want skipped %s", name, d.Action, d.Reason, r)
			}
		}
	}
	// A custom PROXY_USER_HEADER joins the set.
	custom := NewPolicy(settingsOn(func(s *Settings) { s.ProxyUserHeader = "X-Identity" }))
	if custom.NeverForwarded("x-identity") != ReasonInternalHeader {
		t.Error("custom PROXY_USER_HEADER is forwardable")
	}
}

func TestReasonCodesAreStableAndDistinct(t *testing.T) {
	seen := map[string]Reason{}
	for _, r := range Reasons() {
		code := r.String()
		if code == "unknown" || strings.ContainsAny(code, " -ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Errorf("reason %d has code %q, want snake_case", r, code)
		}
		if prev, ok := seen[code]; ok {
			t.Errorf("reasons %d and %d share code %q", prev, r, code)
		}
		seen[code] = r
		msg := Decision{Header: "X-Probe", Reason: r, Action: Skipped}.Message(Upstream{Name: "crm", AuthType: AuthBasic})
		if msg == "" || strings.Contains(msg, "%!") {
			t.Errorf("reason %s: bad message %q", code, msg)
		}
	}
	if len(seen) != int(lastReason) {
		t.Errorf("%d codes for %d reasons", len(seen), lastReason)
	}
}

// TestOwnAuthorizationWithheldWithoutWarning: the client's Authorization,
// withheld from an auth_type none upstream because mcpgate authenticated the
// client with it (spec §2.2, D4), is how every authenticated client calls:
// a debug decision, not a warning on every call. The same header put on the
// allowlist is a configuration problem (spec §2.3): a warning.
func TestOwnAuthorizationWithheldWithoutWarning(t *testing.T) {
	p := NewPolicy(settingsOn())
	req := http.Header{"Authorization": {"Bearer client-token-of-mcpgate"}}
	res := p.Compute(Call{Request: req, Upstream: Upstream{Name: "crm", AuthType: AuthNone}})
	if len(res.Headers) != 0 {
		t.Fatalf("forwarded %v, want nothing", res.Headers)
	}
	var d Decision
	for _, x := range res.Decisions {
		if x.Header == "Authorization" {
			d = x
		}
	}
	if d.Reason != ReasonOwnAuthorization || d.Reason.Level() != slog.LevelDebug {
		t.Errorf("decision %v at level %v, want %v at debug", d.Reason, d.Reason.Level(), ReasonOwnAuthorization)
	}
	res = p.Compute(Call{Request: req, Allowlist: p.Compile([]string{"Authorization"}), Upstream: Upstream{Name: "crm", AuthType: AuthNone}})
	warned := false
	for _, x := range res.Decisions {
		if x.Header == "Authorization" && x.Reason == ReasonClientCredential && x.Reason.Level() == slog.LevelWarn {
			warned = true
		}
	}
	if !warned {
		t.Errorf("an allowlisted AUTH_HEADER_NAME header: decisions %v, want a %v warning", res.Decisions, ReasonClientCredential)
	}
}

func TestResultAccessors(t *testing.T) {
	res := Result{Headers: []Header{{"x-tenant-ID", "acme"}}}
	if v, ok := res.Get("X-Tenant-Id"); !ok || v != "acme" {
		t.Errorf("Get = %q, %v", v, ok)
	}
	h := res.HTTPHeader()
	if got := h["x-tenant-ID"]; len(got) != 1 || got[0] != "acme" {
		t.Errorf("HTTPHeader kept %v, want the decided spelling", h)
	}
}
