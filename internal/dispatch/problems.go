package dispatch

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/mcpgate/mcpgate/passthrough"
)

// listProblems logs what is wrong with each upstream's effective allowlist
// — names that are invalid or never forwarded, names a later entry
// replaces (passthrough.Allowlist.Problems) — once per change of that list,
// not on every call that uses it: those decisions are the same on every
// call, and a long list of them would otherwise write its warnings again
// with every request. It is safe for concurrent use.
type listProblems struct {
	mu   sync.Mutex
	seen map[string]*seenList // by upstream ID
}

// seenList is the allowlist whose problems were last logged for an upstream.
type seenList struct {
	list     *passthrough.Allowlist // the compiled list last used, to skip comparing names
	names    []string
	problems map[passthrough.Decision]bool
}

// problemsOf returns the problems of allow, r's effective allowlist now, logging
// them first when the list's names differ from those last logged for r.
// record logs the decisions it returns at debug only.
func (d *Dispatcher) problemsOf(ctx context.Context, r *Route, allow *passthrough.Allowlist) map[passthrough.Decision]bool {
	if allow == nil {
		return nil
	}
	p := &d.problems
	p.mu.Lock()
	s := p.seen[r.ID]
	if s != nil && s.list == allow {
		p.mu.Unlock()
		return s.problems
	}
	names := allow.Names()
	if s != nil && slices.Equal(s.names, names) {
		s.list = allow // the global list, compiled again: nothing changed
		p.mu.Unlock()
		return s.problems
	}
	problems := allow.Problems()
	s = &seenList{list: allow, names: names, problems: make(map[passthrough.Decision]bool, len(problems))}
	for _, dec := range problems {
		s.problems[dec] = true
	}
	if p.seen == nil {
		p.seen = map[string]*seenList{}
	}
	p.seen[r.ID] = s
	// Forget upstreams that are gone, now and then: a list changes rarely.
	ix := d.cfg.Directory.Index()
	for id := range p.seen {
		if _, ok := ix.Route(id); !ok && id != r.ID {
			delete(p.seen, id)
		}
	}
	p.mu.Unlock()

	list := "global"
	if r.Allowlist != nil {
		list = "upstream"
	}
	for _, dec := range problems {
		d.cfg.Logger.Log(ctx, slog.LevelWarn, dec.Message(r.Upstream), "upstream", r.Name, "header", dec.Header,
			"action", dec.Action.String(), "reason", dec.Reason.String(), "list", list,
			"note", "logged once per change of the list")
	}
	return s.problems
}
