package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mcpgate/mcpgate/internal/access"
	"github.com/mcpgate/mcpgate/internal/auth"
)

type fixedDirectory struct{ ix *Index }

func (f fixedDirectory) Index() *Index { return f.ix }

// BenchmarkView is what access control adds to every client message: the
// client's grant from its identity and the rules, and its view of the
// catalogue (built once per grant and index, then looked up). "open" is a
// client no rule names (ACCESS_DEFAULT allow), "restricted" one a rule
// limits to 2 of 20 upstreams, among 50 rules.
func BenchmarkView(b *testing.B) {
	var routes []*Route
	for i := range 20 {
		routes = append(routes, &Route{ID: fmt.Sprintf("id-%d", i), Name: fmt.Sprintf("up%d", i), Slug: fmt.Sprintf("up%d", i),
			Catalogue: Catalogue{Tools: []json.RawMessage{json.RawMessage(`{"name":"echo","inputSchema":{"type":"object"}}`)}}})
	}
	var rules []access.Rule
	for i := range 50 {
		rules = append(rules, access.Rule{Subject: fmt.Sprintf("agent-%d", i), Upstreams: []string{"up1", "id-2"}})
	}
	policy := access.NewPolicy(rules, false)
	d := New(Config{Directory: fixedDirectory{NewIndex(routes, "-")}, Access: func(ctx context.Context) access.Grant {
		id, ok := auth.IdentityOf(ctx)
		return policy.For(id, ok)
	}})
	for _, c := range []struct{ name, subject string }{{"open", "nobody"}, {"restricted", "agent-49"}} {
		ctx := auth.WithPrincipal(context.Background(), c.subject)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d.view(ctx) == nil {
					b.Fatal("no view")
				}
			}
		})
	}
}
