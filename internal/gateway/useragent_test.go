package gateway

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestOneUserAgentReachesTheUpstream: an allowlisted User-Agent, however the
// allowlist spells it, is the one User-Agent the upstream receives; without
// one the upstream receives mcpgate/<version> alone (spec §2.4), on both
// upstream transports. The upstream's Go server would list a second
// User-Agent line as a second value. The database plays no part, so SQLite
// only.
func TestOneUserAgentReachesTheUpstream(t *testing.T) {
	for _, transport := range []string{"STREAMABLEHTTP", "SSE"} {
		for _, allow := range []string{"user-agent", "USER-AGENT", "User-Agent", "X-Tenant-Id"} {
			t.Run(transport+"/"+allow, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				if transport == "SSE" {
					up = mcptest.NewSSE(t)
				}
				gw := startGateway(t, "sqlite:///"+filepath.Join(t.TempDir(), "mcpgate.db"), map[string]string{
					"DEFAULT_PASSTHROUGH_HEADERS": allow, "PASSTHROUGH_HEADERS_SOURCE": "env",
				})
				gw.register(map[string]any{"name": "crm", "url": up.URL, "transport": transport})
				if res := gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "hi"}},
					"User-Agent", "client-agent/7"); res.Error != nil {
					t.Fatalf("tools/call: %+v", res.Error)
				}
				want := []string{"mcpgate/test"} // the version startGateway passes to New
				if allow != "X-Tenant-Id" {
					want = []string{"client-agent/7"}
				}
				if got := upstreamSaw(t, up, "tools/call").Values("User-Agent"); !slices.Equal(got, want) {
					t.Errorf("tools/call User-Agent = %q, want %q", got, want)
				}
				// The first initialize is discovery's, mcpgate's own session;
				// the client's own upstream session opens with its headers
				// (spec §5), so with the allowlisted one.
				var initializes [][]string
				for _, r := range up.Requests() {
					if r.JSONRPCMethod == "initialize" {
						initializes = append(initializes, r.Header.Values("User-Agent"))
					}
				}
				if len(initializes) != 2 || !slices.Equal(initializes[0], []string{"mcpgate/test"}) || !slices.Equal(initializes[1], want) {
					t.Errorf("initialize User-Agents = %q, want mcpgate/test (discovery) then %q (the client's session)", initializes, want)
				}
			})
		}
	}
}
