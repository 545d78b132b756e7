package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/internal/admin"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/store"
)

// The identity assertion's keys (docs/identity-assertion.md): read from the
// store at start (the first one made if none), kept up to date by the bus
// (KindSigningKeys) and a periodic pass that also rotates and prunes them,
// and published at GET /.well-known/jwks.json.

// startAssertionKeys returns the key ring and starts its maintenance,
// which stop ends; nil keys when there is no AUTH_ENCRYPTION_SECRET to
// seal them with.
func startAssertionKeys(ctx context.Context, st *store.Store, sealer *auth.Sealer, c *cluster, s config.IdentityAssertion, logger *slog.Logger) (keys *auth.AssertionKeys, stop func(), err error) {
	if sealer == nil {
		logger.Info("AUTH_ENCRYPTION_SECRET is not set: mcpgate has no identity assertion signing key, so requests to upstreams registered with identity_assertion fail")
		return nil, func() {}, nil
	}
	keys, err = auth.NewAssertionKeys(ctx, auth.AssertionKeysConfig{
		Store: signingKeyStore{st}, Sealer: sealer, Issuer: s.Issuer, TTL: s.TTL, Rotation: s.KeyRotation, Lead: s.KeyLead,
		Logger: logger,
		Changed: func(ctx context.Context) {
			if err := c.bus.Publish(ctx, bus.Event{Kind: bus.KindSigningKeys}); err != nil {
				logger.Warn("could not tell the other instances of new signing keys; they read them within their next maintenance pass", "err", err)
			}
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("identity assertion signing keys (%s): %w", config.EnvDatabaseURL, err)
	}
	self := c.bus.InstanceID()
	c.bus.Subscribe(func(e bus.Event) {
		if (e.Kind != bus.KindSigningKeys || e.Origin == self) && e.Kind != bus.KindResync {
			return
		}
		rctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		defer cancel()
		if err := keys.Reload(rctx); err != nil {
			logger.Warn("could not read the identity assertion signing keys another instance changed; the next maintenance pass retries", "err", err)
		}
	})
	// Often enough that an instance that missed the bus still has a new
	// key before it signs (KeyLead), and rotates and prunes on time.
	interval := 30 * time.Second
	if s.KeyLead > 0 {
		interval = min(interval, max(s.KeyLead/2, time.Second))
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		keys.Run(life, interval)
	}()
	return keys, func() { cancel(); <-done }, nil
}

// jwksHandler serves the public keys (unauthenticated: they are public).
// Caches may keep the set for half the key lead, so that a new key is seen
// before it signs.
func jwksHandler(keys *auth.AssertionKeys, lead time.Duration) http.HandlerFunc {
	maxAge := strconv.Itoa(int((lead / 2).Seconds()))
	return func(w http.ResponseWriter, r *http.Request) {
		body := []byte(`{"keys":[]}`)
		if keys != nil {
			body = keys.JWKS()
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age="+maxAge)
		_, _ = w.Write(body)
	}
}

// signingKeyStore is the store as auth keeps its signing keys there.
type signingKeyStore struct{ st *store.Store }

func (s signingKeyStore) SigningKeys(ctx context.Context) ([]auth.SigningKeyRecord, error) {
	stored, err := s.st.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]auth.SigningKeyRecord, len(stored))
	for i, k := range stored {
		out[i] = auth.SigningKeyRecord(k)
	}
	return out, nil
}

func (s signingKeyStore) AddSigningKey(ctx context.Context, k auth.SigningKeyRecord, unless time.Time) (bool, error) {
	return s.st.AddSigningKey(ctx, store.SigningKey(k), unless)
}

func (s signingKeyStore) DeleteSigningKeys(ctx context.Context, ids []string) error {
	return s.st.DeleteSigningKeys(ctx, ids)
}

// rotator is keys as the admin API rotates them: a nil interface when
// there are none, so that the route says why.
func rotator(keys *auth.AssertionKeys) admin.KeyRotator {
	if keys == nil {
		return nil
	}
	return keys
}

// assertOwn is the registry's Config.AssertOwn: the requests mcpgate makes
// for itself to an upstream that asked for assertions (discovery) carry
// one too, with no client, so that such an upstream can refuse every
// request that did not come from mcpgate.
func assertOwn(keys *auth.AssertionKeys, header string) func(ctx context.Context, upstreamID, audience string, h http.Header) error {
	return func(_ context.Context, upstreamID, audience string, h http.Header) error {
		if keys == nil {
			return errors.New("the upstream asks for an identity assertion, and mcpgate has no signing key (set AUTH_ENCRYPTION_SECRET)")
		}
		token, err := keys.Sign(auth.Assertion{Audience: audience, UpstreamID: upstreamID})
		if err != nil {
			return fmt.Errorf("sign the identity assertion: %w", err)
		}
		h.Set(header, token)
		return nil
	}
}
