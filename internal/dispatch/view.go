package dispatch

import (
	"context"
	"sync"

	"github.com/mcpgate/mcpgate/internal/access"
)

// A view is the catalogue as one client may see it (ARCHITECTURE, "Catalogue
// vs views"): the index of only the upstreams its access grant covers. Every
// list, every lookup by name or URI (prefixed names, mcpgate://slug/ URIs,
// templates, resources a tool result linked to) and the relay's lookup by id
// go through the view of the request's client, so an upstream it may not use
// is, to it, an upstream that does not exist: lists leave it out and a call
// naming it gets the error of an unknown tool, resource, prompt or upstream.

// maxViews bounds the views kept for one index; distinct grants are as many
// as distinct combinations of matching rules.
const maxViews = 256

// viewCache keeps the views built from the index in force, by grant.
type viewCache struct {
	mu    sync.Mutex
	of    *Index
	byKey map[string]*Index
}

// view returns the catalogue the client of ctx may see: the whole index
// when it may use every upstream (and always without Config.Access).
func (d *Dispatcher) view(ctx context.Context) *Index {
	ix := d.cfg.Directory.Index()
	if d.cfg.Access == nil {
		return ix
	}
	g := d.cfg.Access(ctx)
	if g.All {
		return ix
	}
	return d.views.get(ix, g)
}

func (c *viewCache) get(ix *Index, g access.Grant) *Index {
	key := g.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.of != ix || len(c.byKey) >= maxViews {
		c.of, c.byKey = ix, map[string]*Index{}
	}
	if v, ok := c.byKey[key]; ok {
		return v
	}
	var routes []*Route
	for _, r := range ix.routes {
		if g.Allows(r.ID, r.Name) {
			routes = append(routes, r)
		}
	}
	v := NewIndex(routes, ix.sep)
	c.byKey[key] = v
	return v
}

// allowed reports whether the client of ctx may use upstream id.
func (d *Dispatcher) allowed(ctx context.Context, id string) bool {
	_, ok := d.view(ctx).Route(id)
	return ok
}

// MayUse reports whether the session's client may use the upstream with id
// and name under the access rules in force: whether a change of that
// upstream's lists concerns it.
func (fs *FederatedSession) MayUse(id, name string) bool {
	if fs.d.cfg.Access == nil {
		return true
	}
	return fs.d.cfg.Access(fs.client).Allows(id, name)
}
