package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
)

// BenchmarkRequireScopes measures what MCP_REQUIRED_SCOPES adds to every
// MCP request that passes: the endpoint lookup and the scope check.
func BenchmarkRequireScopes(b *testing.B) {
	p := &protectedResource{cfg: config.Resource{URL: "https://gw.example.com", RequiredScopes: []string{"mcp:tools"}}}
	h := p.requireScopes(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodPost, "/gateways/0a1b2c3d/mcp", nil)
	req = req.WithContext(auth.WithIdentity(req.Context(), auth.Identity{Subject: "s", Scopes: []string{"openid", "profile", "mcp:tools"}}))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
