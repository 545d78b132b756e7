package passthrough

import (
	"net/http"
	"strings"
	"testing"
)

// TestSessionFollowsConfigurationAtCallTime: a header not allowlisted when
// the session opened is forwarded on the first call after it is allowlisted,
// and stops being forwarded as soon as it is removed (spec §4, D12).
func TestSessionFollowsConfigurationAtCallTime(t *testing.T) {
	p := NewPolicy(settingsOn())
	opening := hdr("X-Tenant-Id", "acme", "X-Region", "eu", "X-Upstream-Authorization", "Bearer up")
	session := p.CaptureSession(opening)

	for _, allow := range [][]string{{"X-Tenant-Id"}, {"X-Tenant-Id", "X-Region"}, {}} {
		a := p.Compile(allow)
		got := p.Compute(Call{Request: session.Header(), Allowlist: a})
		want := p.Compute(Call{Request: opening, Allowlist: a})
		if !mapsEqual(headerMap(got.Headers), headerMap(want.Headers)) {
			t.Errorf("allowlist %v: session forwards %v, /rpc with the opening headers %v", allow, got.Headers, want.Headers)
		}
		if v, _ := got.Get("Authorization"); v != "Bearer up" {
			t.Errorf("allowlist %v: X-Upstream-Authorization lost (%q)", allow, v)
		}
	}
}

// TestSessionDropsNeverForwardedHeaders: nothing of the never-forwarded set
// is kept, whatever later configuration says.
func TestSessionDropsNeverForwardedHeaders(t *testing.T) {
	p := NewPolicy(settingsOn())
	opening := hdr("Authorization", "Bearer mcpgate-token", "Host", "evil", "Mcp-Session-Id", "s1",
		"X-Authenticated-User", "admin", "Content-Type", "text/plain", "Bad_Name", "x", "X-Ok", "ok")
	kept := p.CaptureSession(opening).Header()
	if len(kept) != 1 || kept.Get("X-Ok") != "ok" {
		t.Errorf("kept %v, want only X-Ok", kept)
	}
}

// TestSessionDropsTheWebSocketHandshake: a WebSocket session keeps none of
// its upgrade's handshake headers, least of all the client token a browser
// sends as the subprotocol bearer.<token> (D4).
func TestSessionDropsTheWebSocketHandshake(t *testing.T) {
	p := NewPolicy(settingsOn())
	opening := hdr("Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Extensions", "permessage-deflate",
		"Sec-WebSocket-Protocol", "mcp, bearer.mcpgate-token", "X-Tenant-Id", "acme")
	kept := p.CaptureSession(opening).Header()
	if len(kept) != 1 || kept.Get("X-Tenant-Id") != "acme" {
		t.Errorf("kept %v, want only X-Tenant-Id", kept)
	}
}

// TestSessionKeepsSanitisedValues: no raw value is kept, yet a value that
// sanitises to nothing still counts as present.
func TestSessionKeepsSanitisedValues(t *testing.T) {
	p := NewPolicy(settingsOn(func(s *Settings) { s.AuthenticatesClients = false }))
	opening := hdr("X-A", "a\r\nb", "X-Upstream-Authorization", "\r\n", "Authorization", "Bearer client")
	kept := p.CaptureSession(opening).Header()
	for name, vals := range kept {
		if strings.ContainsAny(vals[0], "\r\n") {
			t.Errorf("%s kept raw: %q", name, vals[0])
		}
	}
	// The empty X-Upstream-Authorization still blocks the none rule.
	up := Upstream{AuthType: AuthNone}
	direct := p.Compute(Call{Request: opening, Upstream: up})
	inSession := p.Compute(Call{Request: kept, Upstream: up})
	if !mapsEqual(headerMap(direct.Headers), headerMap(inSession.Headers)) || len(direct.Headers) != 0 {
		t.Errorf("session %v, direct %v; want both empty", inSession.Headers, direct.Headers)
	}
}

func TestSessionDoesNotAliasTheRequest(t *testing.T) {
	p := NewPolicy(settingsOn())
	opening := http.Header{"X-A": {"1"}}
	kept := p.CaptureSession(opening).Header()
	opening["X-A"][0] = "changed"
	if kept.Get("X-A") != "1" {
		t.Error("session headers change with the request")
	}
}
