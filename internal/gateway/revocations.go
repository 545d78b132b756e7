package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/store"
)

// revocations keeps the verifier's list of revoked tokens equal to the
// store's: read at start, again on every KindRevocation event (this
// instance's and the others'), on a bus resync, and every ttl in case the
// bus missed one (as the global list's GLOBAL_CONFIG_CACHE_TTL). It is the
// admin API's admin.Revocations.
type revocations struct {
	store  *store.Store
	bus    bus.Bus
	list   *auth.RevocationList
	logger *slog.Logger
	stop   chan struct{}
	done   chan struct{}
}

// startRevocations reads the revocations into list and keeps them fresh
// until close.
func startRevocations(ctx context.Context, st *store.Store, b bus.Bus, list *auth.RevocationList, ttl time.Duration, logger *slog.Logger) (*revocations, error) {
	r := &revocations{store: st, bus: b, list: list, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.reload(ctx); err != nil {
		return nil, err
	}
	b.Subscribe(func(e bus.Event) {
		if e.Kind != bus.KindRevocation && e.Kind != bus.KindResync {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		defer cancel()
		if err := r.reload(ctx); err != nil {
			logger.Warn("could not read the token revocations after a change; read again within the cache TTL", "err", err)
		}
	})
	if ttl <= 0 {
		ttl = time.Minute
	}
	go r.refresh(ttl)
	return r, nil
}

func (r *revocations) refresh(ttl time.Duration) {
	defer close(r.done)
	t := time.NewTicker(ttl)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
			if err := r.reload(ctx); err != nil {
				r.logger.Warn("could not re-read the token revocations", "err", err)
			}
			cancel()
		}
	}
}

// reload puts the stored revocations in force.
func (r *revocations) reload(ctx context.Context) error {
	stored, err := r.store.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("read token revocations: %w", err)
	}
	list := make([]auth.Revocation, 0, len(stored))
	for _, s := range stored {
		if s.Kind == store.RevokeTokenID {
			list = append(list, auth.Revocation{TokenID: s.Value})
		} else {
			list = append(list, auth.Revocation{Issuer: s.Issuer, Subject: s.Value, IssuedUpTo: s.RevokedAt})
		}
	}
	r.list.Replace(list)
	return nil
}

func (r *revocations) close() {
	close(r.stop)
	<-r.done
}

// List returns the stored revocations.
func (r *revocations) List(ctx context.Context) ([]store.Revocation, error) {
	return r.store.Revocations(ctx)
}

// Revoke stores rv and tells every instance, this one first: when it
// returns, this instance refuses the token.
func (r *revocations) Revoke(ctx context.Context, rv store.Revocation) (store.Revocation, error) {
	stored, err := r.store.AddRevocation(ctx, rv)
	if err != nil {
		return store.Revocation{}, err
	}
	r.publish(ctx)
	return stored, nil
}

// Lift deletes the revocation id and tells every instance.
func (r *revocations) Lift(ctx context.Context, id string) error {
	if err := r.store.DeleteRevocation(ctx, id); err != nil {
		return err
	}
	r.publish(ctx)
	return nil
}

// publish tells the instances, this one included, to read the revocations
// again. With the bus down this instance still does (Publish delivers to
// its own subscribers), and the others within their TTL.
func (r *revocations) publish(ctx context.Context) {
	if err := r.bus.Publish(ctx, bus.Event{Kind: bus.KindRevocation}); err != nil {
		r.logger.Warn("could not tell the other instances of a token revocation; they read it within the cache TTL or when the bus is back", "err", err)
	}
}
