package auth

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/passthrough"
)

// TestTokenFetchKeepsToTheEgressPolicy: with the gateway's upstream client,
// a token URL on an address the egress policy refuses gets no request (so
// never the client secret), and the error says only "not reachable"; a
// token endpoint that redirects, to anywhere, is not followed.
func TestTokenFetchKeepsToTheEgressPolicy(t *testing.T) {
	t.Run("refused address", func(t *testing.T) {
		ts := newTokenServer(t, nil)
		a := NewUpstreamAuth(passthrough.AuthOAuth, ts.credentials(), upstream.NewHTTPClient(egress.Policy{}, nil), nil)
		_, err := a.BaseHeaders(context.Background())
		if err == nil || !strings.HasSuffix(err.Error(), ": not reachable") || strings.Contains(err.Error(), testClientSecret) {
			t.Fatalf("BaseHeaders: %v, want only \"not reachable\"", err)
		}
		if n := ts.requests.Load(); n != 0 {
			t.Fatalf("the refused token endpoint got %d requests", n)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		target := newTokenServer(t, nil)
		redirecting := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			http.Redirect(w, r, target.URL+"/oauth/token", http.StatusTemporaryRedirect)
		})
		a := NewUpstreamAuth(passthrough.AuthOAuth, redirecting.credentials(), upstream.NewHTTPClient(egress.LocalPolicy(), nil), nil)
		if _, err := a.BaseHeaders(context.Background()); err == nil || !strings.Contains(err.Error(), "307") {
			t.Fatalf("BaseHeaders: %v, want the redirect refused", err)
		}
		if n := target.requests.Load(); n != 0 {
			t.Fatalf("the redirect target got %d token requests", n)
		}
	})
}

// TestTokenURLInMessagesHasNoQuery: the token URL in an error keeps scheme,
// host and path only; its query may hold a secret.
func TestTokenURLInMessagesHasNoQuery(t *testing.T) {
	ts := newTokenServer(t, nil)
	c := ts.credentials()
	c.OAuth.TokenURL += "?tenant_key=QUERY-SECRET"
	a := NewUpstreamAuth(passthrough.AuthOAuth, c, ts.Client(), nil)
	ts.Close()
	_, err := a.BaseHeaders(context.Background())
	if err == nil || strings.Contains(err.Error(), "QUERY-SECRET") || !strings.Contains(err.Error(), ts.URL+"/oauth/token") {
		t.Fatalf("BaseHeaders: %v, want the token URL without its query", err)
	}
}
