package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mcpgate/mcpgate/internal/access"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/mcp/frontdoor"
	"github.com/mcpgate/mcpgate/internal/store"
)

// accessRules holds the per-client access rules in force: read from the
// store at start, replaced through the admin API, and read again when
// another instance changed them (bus.KindAccess) or events may have been
// missed (bus.KindResync). It is the admin API's admin.AccessRules.
type accessRules struct {
	store  *store.Store
	bus    bus.Bus
	deny   bool // ACCESS_DEFAULT=deny
	logger *slog.Logger
	policy atomic.Pointer[access.Policy]

	mu    sync.Mutex
	names map[string]string // upstream id -> name, for list changes of removed upstreams
}

func newAccessRules(ctx context.Context, st *store.Store, b bus.Bus, denyByDefault bool, logger *slog.Logger) (*accessRules, error) {
	a := &accessRules{store: st, bus: b, deny: denyByDefault, logger: logger}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	self := b.InstanceID()
	b.Subscribe(func(e bus.Event) {
		if (e.Kind != bus.KindAccess || e.Origin == self) && e.Kind != bus.KindResync {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		defer cancel()
		if err := a.load(ctx); err != nil {
			logger.Warn("could not read the access rules another instance changed; the previous ones stay in force", "err", err)
		}
	})
	return a, nil
}

// load reads the rules from the store.
func (a *accessRules) load(ctx context.Context) error {
	raw, err := a.store.AccessRules(ctx)
	if err != nil {
		return err
	}
	var rules []access.Rule
	if raw != nil {
		if err := json.Unmarshal(raw, &rules); err != nil {
			return fmt.Errorf("read access rules: %w", err)
		}
	}
	a.policy.Store(access.NewPolicy(rules, a.deny))
	return nil
}

// Policy returns the rules in force.
func (a *accessRules) Policy() *access.Policy { return a.policy.Load() }

// SetRules stores rules, puts them in force here and tells the other
// instances.
func (a *accessRules) SetRules(ctx context.Context, rules []access.Rule) error {
	raw, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("encode access rules: %w", err)
	}
	if err := a.store.SetAccessRules(ctx, raw); err != nil {
		return err
	}
	a.policy.Store(access.NewPolicy(rules, a.deny))
	if err := a.bus.Publish(ctx, bus.Event{Kind: bus.KindAccess}); err != nil {
		a.logger.Warn("could not tell the other instances that the access rules changed; they read them again when the bus is back", "err", err)
	}
	return nil
}

// grant is what the client of ctx may use (dispatch.Config.Access). With
// authentication on, a request without an identity may use nothing.
func (a *accessRules) grant(authRequired bool) func(context.Context) access.Grant {
	return func(ctx context.Context) access.Grant {
		id, ok := auth.IdentityOf(ctx)
		if !ok && authRequired {
			return access.Grant{}
		}
		return a.Policy().For(id, ok)
	}
}

// concerned says which client sessions a change of upstream id's lists
// concerns: those whose client may use it (a list_changed about another
// would tell the client that upstream exists). A removed upstream is
// judged by the name it had; open is AUTH_REQUIRED=false, where nobody is
// told apart and a session without a backend yet is told too.
func (a *accessRules) concerned(id string, removed bool, ix *dispatch.Index, open bool) func(frontdoor.Backend) bool {
	name := a.nameOf(id, removed, ix)
	return func(b frontdoor.Backend) bool {
		fs, ok := b.(*dispatch.FederatedSession)
		if !ok {
			return open
		}
		return fs.MayUse(id, name)
	}
}

// nameOf is upstream id's name as the index has it, or as the index had it
// when it was removed; it remembers the names it saw.
func (a *accessRules) nameOf(id string, removed bool, ix *dispatch.Index) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.names == nil {
		a.names = map[string]string{}
	}
	if r, ok := ix.Route(id); ok {
		a.names[id] = r.Name
	}
	name := a.names[id]
	if removed {
		delete(a.names, id)
	}
	return name
}
