package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcpgate/mcpgate/internal/dispatch"
)

// checkPrefixes refuses name when its prefix (slug and
// GATEWAY_TOOL_NAME_SEPARATOR) begins another upstream's prefix, or is
// begun by it: then "a" + "-" + "b-x" and "a-b" + "-" + "x" are one
// federated name, and the index could serve only one of the two tools.
// That is the only way two prefixed names of different upstreams can be
// equal, since slugs are unique. id is the upstream being renamed, "" for a
// new one. Two concurrent registrations can still both pass; the index then
// keeps one and reports the conflict (see reportConflicts).
func (r *Registry) checkPrefixes(ctx context.Context, id, name string) error {
	s := slug(name)
	if s == "" {
		return nil // validate has refused it
	}
	recs, err := r.cfg.Store.ListUpstreams(ctx)
	if err != nil {
		return fmt.Errorf("check the name against the other upstreams: %w", err)
	}
	sep := r.cfg.ToolNameSeparator
	for _, o := range recs {
		if o.ID == id || o.Slug == s { // an equal slug: the store refuses it
			continue
		}
		short, long := s, o.Slug
		if len(long) < len(short) {
			short, long = long, short
		}
		if !strings.HasPrefix(long+sep, short+sep) {
			continue
		}
		full := long + sep + "x"
		return &FieldError{"name", fmt.Sprintf("gives the prefix %q, which clashes with upstream %q (id %s, prefix %q): "+
			"a tool %q of %q and a tool \"x\" of %q would both be %q; choose a name whose prefix neither begins nor is begun by another's "+
			"(GATEWAY_TOOL_NAME_SEPARATOR is %q)",
			s+sep, o.Name, o.ID, o.Slug+sep, full[len(short+sep):], short, long, full, sep)}
	}
	return nil
}

// Conflict is a federated name one upstream's tool or prompt shares with
// another upstream's, so that only one of the two is served. GET
// /gateways/{id} lists them under "conflicts".
type Conflict struct {
	Kind string `json:"kind"` // tool or prompt
	Name string `json:"name"` // the federated name
	// Upstream and UpstreamID name the other upstream.
	Upstream   string `json:"upstream"`
	UpstreamID string `json:"upstream_id"`
	// Served says whether this upstream's item is the one served under
	// Name (upstreams are taken in slug order; the first keeps it).
	Served bool `json:"served"`
}

// conflictsOf returns the conflicts of upstream id in ix.
func conflictsOf(ix *dispatch.Index, id string) []Conflict {
	var out []Conflict
	for _, c := range ix.Conflicts() {
		switch id {
		case c.Kept.ID:
			out = append(out, Conflict{Kind: c.Kind, Name: c.Name, Upstream: c.Dropped.Name, UpstreamID: c.Dropped.ID, Served: true})
		case c.Dropped.ID:
			out = append(out, Conflict{Kind: c.Kind, Name: c.Name, Upstream: c.Kept.Name, UpstreamID: c.Kept.ID})
		}
	}
	return out
}

// reportConflicts logs a WARN for each conflict of next that prev did not
// have, naming both upstreams: a conflict is never silent, and one that
// lasts is not logged again on every refresh.
func (r *Registry) reportConflicts(prev, next *dispatch.Index) {
	type key struct{ kind, name, kept, dropped string }
	seen := map[key]bool{}
	if prev != nil {
		for _, c := range prev.Conflicts() {
			seen[key{c.Kind, c.Name, c.Kept.ID, c.Dropped.ID}] = true
		}
	}
	for _, c := range next.Conflicts() {
		if seen[key{c.Kind, c.Name, c.Kept.ID, c.Dropped.ID}] {
			continue
		}
		r.cfg.Logger.Warn("two upstreams offer the same federated name: only the first is served",
			"kind", c.Kind, "name", c.Name, "served_from", c.Kept.Name, "served_from_id", c.Kept.ID,
			"left_out_from", c.Dropped.Name, "left_out_from_id", c.Dropped.ID,
			"fix", "rename one of the two upstreams (PUT /gateways/{id} with a name whose prefix neither begins nor is begun by the other's)")
	}
}
