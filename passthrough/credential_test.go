package passthrough

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestParseSettingsRefusesReservedHeaderNames: AUTH_HEADER_NAME and
// PROXY_USER_HEADER cannot name a header the engine treats in its own way;
// start-up stops with a *SettingError naming the setting (spec §1, §2.2, D4).
// AUTH_HEADER_NAME=X-Upstream-Authorization would otherwise send every
// client's mcpgate token to every upstream as its Authorization.
func TestParseSettingsRefusesReservedHeaderNames(t *testing.T) {
	tests := []struct {
		env     map[string]string
		setting string // the one the error must name
		says    string
	}{
		{map[string]string{EnvAuthHeaderName: "X-Upstream-Authorization"}, EnvAuthHeaderName, "X-Upstream-Authorization"},
		{map[string]string{EnvAuthHeaderName: "x-upstream-AUTHORIZATION"}, EnvAuthHeaderName, "sent to upstreams"},
		{map[string]string{EnvAuthHeaderName: "X-Upstream-Authorization-Crm"}, EnvAuthHeaderName, "reserved"},
		{map[string]string{EnvAuthHeaderName: "Mcp-Session-Id"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "mcp-protocol-version"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "Mcp-Method"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "Mcp-Name"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "Mcp-Param-Region"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "X-Mcp-Session-Id"}, EnvAuthHeaderName, "MCP per-hop"},
		{map[string]string{EnvAuthHeaderName: "Host"}, EnvAuthHeaderName, "HTTP connection"},
		{map[string]string{EnvAuthHeaderName: "Accept"}, EnvAuthHeaderName, "its own use"},
		{map[string]string{EnvAuthHeaderName: "X-Authenticated-User"}, EnvAuthHeaderName, "PROXY_USER_HEADER"},
		{map[string]string{EnvAuthHeaderName: "x-identity", EnvProxyUserHeader: "X-Identity"}, EnvAuthHeaderName, "PROXY_USER_HEADER"},
		{map[string]string{EnvProxyUserHeader: "X-Upstream-Authorization"}, EnvProxyUserHeader, "X-Upstream-Authorization"},
		{map[string]string{EnvProxyUserHeader: "X-Upstream-Authorization-Crm"}, EnvProxyUserHeader, "reserved"},
		{map[string]string{EnvProxyUserHeader: "Mcp-Session-Id"}, EnvProxyUserHeader, "MCP per-hop"},
		{map[string]string{EnvProxyUserHeader: "authorization"}, EnvProxyUserHeader, "Authorization"},
		{map[string]string{EnvProxyUserHeader: "Content-Length"}, EnvProxyUserHeader, "HTTP connection"},
	}
	for _, tt := range tests {
		t.Run(tt.setting+"="+tt.env[tt.setting], func(t *testing.T) {
			_, err := ParseSettings(env(tt.env))
			var se *SettingError
			if !errors.As(err, &se) || se.Name != tt.setting {
				t.Fatalf("error = %v, want a SettingError naming %s", err, tt.setting)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.setting) || !strings.Contains(msg, tt.says) {
				t.Errorf("message %q should name %s and say %q", msg, tt.setting, tt.says)
			}
		})
	}
	// Names of their own are fine, and so are the defaults.
	for _, ok := range []map[string]string{
		nil,
		{EnvAuthHeaderName: "X-Api-Key", EnvProxyUserHeader: "X-Identity"},
		{EnvAuthHeaderName: "X-Upstream-Authorizations"}, // not of the family
	} {
		if _, err := ParseSettings(env(ok)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

// TestClientCredentialNeverForwardedUnderAnotherName: when mcpgate
// authenticates clients, the value of its credential header reaches no
// upstream under any name: not through X-Upstream-Authorization, not through
// the auth_type none rule, not through an allowlisted header; with or without
// the Bearer scheme (spec §2.2-2.3, D4). Each is skipped with a decision that
// says why. With client authentication off the same request is forwarded.
func TestClientCredentialNeverForwardedUnderAnotherName(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.mcpgate.sig"
	tests := []struct {
		name      string
		authName  string // AUTH_HEADER_NAME
		request   []string
		allowlist []string
		upstream  Upstream
		skipped   map[string]Reason
		wantOff   map[string]string // forwarded with client authentication off
	}{
		{
			name:     "X-Upstream-Authorization repeating the token",
			authName: "Authorization",
			request:  []string{"Authorization", "Bearer " + token, "X-Upstream-Authorization", "Bearer " + token},
			upstream: Upstream{AuthType: AuthNone},
			skipped:  map[string]Reason{"X-Upstream-Authorization": ReasonClientCredentialValue},
			wantOff:  map[string]string{"Authorization": "Bearer " + token},
		},
		{
			name:     "X-Upstream-Authorization with the bare token",
			authName: "Authorization",
			request:  []string{"Authorization", "Bearer " + token, "X-Upstream-Authorization", token},
			upstream: Upstream{AuthType: AuthBearer},
			skipped:  map[string]Reason{"X-Upstream-Authorization": ReasonClientCredentialValue},
			wantOff:  map[string]string{"Authorization": token},
		},
		{
			name:      "allowlisted headers carrying the token in any form",
			authName:  "Authorization",
			request:   []string{"Authorization", "Bearer " + token, "X-Tenant-Id", token, "X-Copy", "bearer   " + token, "X-Trace-Id", " Bearer " + token + " "},
			allowlist: []string{"X-Tenant-Id", "X-Copy", "X-Trace-Id"},
			upstream:  Upstream{AuthType: AuthHeaders},
			skipped: map[string]Reason{"X-Tenant-Id": ReasonClientCredentialValue, "X-Copy": ReasonClientCredentialValue,
				"X-Trace-Id": ReasonClientCredentialValue},
			wantOff: map[string]string{"X-Tenant-Id": token, "X-Copy": "bearer   " + token, "X-Trace-Id": "Bearer " + token},
		},
		{
			name:      "a custom AUTH_HEADER_NAME: its value as Authorization to an auth_type none upstream",
			authName:  "X-Api-Key",
			request:   []string{"X-Api-Key", token, "Authorization", "Bearer " + token, "X-Tenant-Id", token},
			allowlist: []string{"X-Tenant-Id", "X-Api-Key"},
			upstream:  Upstream{AuthType: AuthNone},
			skipped: map[string]Reason{"Authorization": ReasonClientCredentialValue, "X-Tenant-Id": ReasonClientCredentialValue,
				"X-Api-Key": ReasonClientCredential},
			wantOff: map[string]string{"Authorization": "Bearer " + token, "X-Tenant-Id": token, "X-Api-Key": token},
		},
		{
			name:      "a WebSocket upgrade's token, offered as the subprotocol bearer.<token>",
			authName:  "Authorization",
			request:   []string{"Sec-WebSocket-Protocol", "mcp, bearer." + token, "X-Tenant-Id", token, "X-Upstream-Authorization", "Bearer " + token},
			allowlist: []string{"X-Tenant-Id"},
			upstream:  Upstream{AuthType: AuthNone},
			skipped:   map[string]Reason{"X-Tenant-Id": ReasonClientCredentialValue, "X-Upstream-Authorization": ReasonClientCredentialValue},
			wantOff:   map[string]string{"X-Tenant-Id": token, "Authorization": "Bearer " + token},
		},
		{
			// The engine's own defence, for Settings built without
			// ParseSettings: the credential header is X-Upstream-Authorization.
			name:     "AUTH_HEADER_NAME=X-Upstream-Authorization, not checked at start-up",
			authName: "X-Upstream-Authorization",
			request:  []string{"X-Upstream-Authorization", "Bearer " + token},
			upstream: Upstream{AuthType: AuthNone},
			skipped:  map[string]Reason{"X-Upstream-Authorization": ReasonClientCredentialValue},
			wantOff:  map[string]string{"Authorization": "Bearer " + token},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, on := range []bool{true, false} {
				p := NewPolicy(settingsOn(func(s *Settings) {
					s.AuthHeaderName, s.AuthenticatesClients, s.EnableOverwriteBaseHeaders = tt.authName, on, true
				}))
				res := p.Compute(Call{Request: hdr(tt.request...), Base: []Header{{"Content-Type", "application/json"}},
					Allowlist: p.Compile(tt.allowlist), Upstream: tt.upstream})
				if !on {
					for name, want := range tt.wantOff {
						if got, _ := res.Get(name); got != want {
							t.Errorf("authentication off: %s = %q, want %q", name, got, want)
						}
					}
					continue
				}
				for _, h := range res.Headers {
					if strings.Contains(h.Value, token) {
						t.Errorf("forwarded %s: %q, mcpgate's credential", h.Name, h.Value)
					}
				}
				for name, r := range tt.skipped {
					if d := decisionFor(t, res, name); d.Action != Skipped || d.Reason != r {
						t.Errorf("%s: %s %s, want skipped %s", name, d.Action, d.Reason, r)
					}
				}
			}
		})
	}
}

// TestClientCredentialValueKeepsOtherHeaders: only a header carrying the
// credential is withheld; a value that merely contains the token, another
// token, or the credential's name spelt as a value still goes.
// TestClientCredentialInsideAnotherValueIsWithheld: a token long enough not
// to occur by chance is withheld wherever it appears in a value, not only
// as the whole value (D4).
func TestClientCredentialInsideAnotherValueIsWithheld(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	p := NewPolicy(settingsOn())
	req := hdr("Authorization", "Bearer "+token, "X-A", "Token "+token, "X-B", "JWT "+token, "X-C", "access_token="+token,
		"X-D", token+", x", "X-E", "Bearer "+token+";", "X-Upstream-Authorization", "Token "+token, "X-F", "kept")
	names := []string{"X-A", "X-B", "X-C", "X-D", "X-E", "X-F"}
	res := p.Compute(Call{Request: req, Allowlist: p.Compile(names)})
	if got, want := headerMap(res.Headers), map[string]string{"X-F": "kept"}; !mapsEqual(got, want) {
		t.Errorf("forwarded %v, want %v", got, want)
	}
	for _, name := range append(names[:5], "X-Upstream-Authorization") {
		if d := decisionFor(t, res, name); d.Reason != ReasonClientCredentialValue {
			t.Errorf("%s: decision %+v, want skipped with %s", name, d, ReasonClientCredentialValue)
		}
	}
	for name, vals := range p.CaptureSession(req).Header() {
		if strings.Contains(vals[0], token) {
			t.Errorf("a session keeps %s = %q", name, vals[0])
		}
	}
}

// TestClientCredentialValueKeepsOtherHeaders: a short credential is matched
// whole, so values that merely contain it still go.
func TestClientCredentialValueKeepsOtherHeaders(t *testing.T) {
	p := NewPolicy(settingsOn())
	req := hdr("Authorization", "Bearer tok", "X-A", "tok2", "X-B", "Bearer other", "X-C", "Basic tok", "X-D", "Bearer")
	res := p.Compute(Call{Request: req, Allowlist: p.Compile([]string{"X-A", "X-B", "X-C", "X-D"})})
	want := map[string]string{"X-A": "tok2", "X-B": "Bearer other", "X-C": "Basic tok", "X-D": "Bearer"}
	if got := headerMap(res.Headers); !mapsEqual(got, want) {
		t.Errorf("forwarded %v, want %v", got, want)
	}
}

func TestSubprotocolToken(t *testing.T) {
	for _, tt := range []struct {
		values []string
		want   string
	}{
		{[]string{"mcp, bearer.tok"}, "tok"},
		{[]string{"mcp", " bearer.first ,bearer.second"}, "first"},
		{[]string{"mcp,,bearer."}, ""},
		{[]string{"Bearer.tok"}, ""}, // subprotocol names are case-sensitive
		{nil, ""},
	} {
		if got := SubprotocolToken(http.Header{"Sec-Websocket-Protocol": tt.values}); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.values, got, tt.want)
		}
	}
}

// TestSessionWithholdsTheClientCredentialValue: a session opened with
// headers repeating the client's credential keeps none of its value, and its
// calls forward what a single request with the opening headers forwards,
// under every allowlist (spec §4, D4).
func TestSessionWithholdsTheClientCredentialValue(t *testing.T) {
	const token = "mcpgate-session-token"
	p := NewPolicy(settingsOn())
	opening := hdr("Authorization", "Bearer "+token, "X-Tenant-Id", token, "X-Upstream-Authorization", "Bearer "+token,
		"X-Trace-Id", "t1")
	kept := p.CaptureSession(opening).Header()
	for name, vals := range kept {
		if strings.Contains(vals[0], token) {
			t.Errorf("session keeps %s = %q", name, vals[0])
		}
	}
	for _, names := range [][]string{{"X-Tenant-Id", "X-Trace-Id"}, {"Authorization", "X-Upstream-Authorization"}, nil} {
		for _, up := range []Upstream{{AuthType: AuthNone}, {AuthType: AuthBearer}, {}} {
			a := p.Compile(names)
			direct := p.Compute(Call{Request: opening, Allowlist: a, Upstream: up})
			inSession := p.Compute(Call{Request: kept, Allowlist: a, Upstream: up})
			if !mapsEqual(headerMap(direct.Headers), headerMap(inSession.Headers)) {
				t.Errorf("allowlist %v, %+v: session forwards %v, the opening request %v", names, up, inSession.Headers, direct.Headers)
			}
			if v, ok := inSession.Get("X-Trace-Id"); len(names) > 0 && names[0] == "X-Tenant-Id" && (!ok || v != "t1") {
				t.Errorf("allowlist %v: X-Trace-Id = %q, want t1", names, v)
			}
		}
	}
}
