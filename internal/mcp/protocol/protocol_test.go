package protocol

import (
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

func TestNegotiate(t *testing.T) {
	tests := []struct{ requested, want string }{
		{Version20251125, Version20251125},
		{Version20250618, Version20250618},
		{Version20250326, Version20250326},
		{Version20241105, Version20241105},
		// MCP 2026-07-28 has no initialize: a client that sends one for
		// it has fallen back, and gets the newest handshake revision.
		{Version20260728, Version20251125},
		{"2099-01-01", LatestHandshake()},
		{"", LatestHandshake()},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.requested); got != tt.want {
			t.Errorf("Negotiate(%q) = %q, want %q", tt.requested, got, tt.want)
		}
	}
}

// TestVersionsNewestFirst: the list is ordered, so Latest is the newest,
// and mcpgate asks upstreams for one it accepts from them.
func TestVersionsNewestFirst(t *testing.T) {
	v := Versions()
	if !isDescending(v) {
		t.Errorf("Versions() = %v, not newest first", v)
	}
	if Latest() != v[0] || Latest() != Version20260728 {
		t.Errorf("Latest() = %q, want %q and %q", Latest(), v[0], Version20260728)
	}
	if h := HandshakeVersions(); !isDescending(h) || slices.Contains(h, Version20260728) || !slices.Equal(h, v[1:]) {
		t.Errorf("HandshakeVersions() = %v, want Versions() %v without %s", h, v, Version20260728)
	}
	if !Supported(UpstreamVersion) {
		t.Errorf("UpstreamVersion %q is not one of %v", UpstreamVersion, v)
	}
	v[0] = "changed"
	if Versions()[0] == "changed" {
		t.Error("Versions returns a shared slice")
	}
}

func isDescending(v []string) bool {
	for i := 1; i < len(v); i++ {
		if v[i-1] <= v[i] {
			return false
		}
	}
	return true
}

// TestHopHeadersAreThePassthroughEngines: the per-hop headers mcpgate
// reads and writes are on the engine's never-forwarded list (spec §2.3),
// so what a transport owns and what the engine refuses cannot disagree.
func TestHopHeadersAreThePassthroughEngines(t *testing.T) {
	p := passthrough.NewPolicy(passthrough.Settings{})
	for _, h := range append(HopHeaders(), HeaderSessionID, HeaderProtocolVersion, HeaderMethod, HeaderName, HeaderParamPrefix+"Region") {
		if !IsHopHeader(h) {
			t.Errorf("IsHopHeader(%q) = false", h)
		}
		if p.NeverForwarded(h) != passthrough.ReasonMCPHeader {
			t.Errorf("the passthrough engine would forward %q", h)
		}
	}
	if !slices.Equal(HopHeaders(), passthrough.MCPHopHeaders()) {
		t.Errorf("HopHeaders() = %v, the engine's = %v", HopHeaders(), passthrough.MCPHopHeaders())
	}
	for _, h := range []string{"Authorization", "X-Tenant", "Accept"} {
		if IsHopHeader(h) {
			t.Errorf("IsHopHeader(%q) = true", h)
		}
	}
}
