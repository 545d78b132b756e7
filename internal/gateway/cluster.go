package gateway

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/registry"
)

// cluster is what an instance shares with the others: the bus
// that carries changes, and with Redis, the sessions any instance can take
// over and the routing of legacy SSE messages to the instance holding the
// stream. A single instance (SQLite) has a local bus and nothing else.
type cluster struct {
	bus      bus.Bus
	redis    *redis.Client      // nil without REDIS_URL
	sessions *bus.RedisSessions // nil without REDIS_URL
	router   *bus.RedisRouter   // nil without REDIS_URL
}

// applyTimeout bounds applying one change another instance made.
const applyTimeout = 30 * time.Second

// joinCluster opens the bus the configuration calls for: Redis with
// REDIS_URL, PostgreSQL's LISTEN/NOTIFY on a PostgreSQL database, and a
// local one on SQLite.
func joinCluster(ctx context.Context, gc config.Gateway, logger *slog.Logger) (*cluster, error) {
	switch {
	case gc.RedisURL != "":
		opts, err := redis.ParseURL(gc.RedisURL)
		if err != nil {
			return nil, &StartupError{config.EnvRedisURL, "not a Redis URL: " + err.Error()}
		}
		b, err := bus.NewRedis(ctx, gc.RedisURL, logger)
		if err != nil {
			return nil, &StartupError{config.EnvRedisURL, err.Error()}
		}
		rc := redis.NewClient(opts)
		logger.Info("multi-instance mode: changes and sessions are shared through Redis", "instance", b.InstanceID())
		return &cluster{bus: b, redis: rc, sessions: bus.NewRedisSessions(rc),
			router: bus.NewRedisRouter(rc, b.InstanceID(), logger)}, nil
	case strings.HasPrefix(gc.DatabaseURL, "postgres://"), strings.HasPrefix(gc.DatabaseURL, "postgresql://"):
		b, err := bus.NewPostgres(ctx, gc.DatabaseURL, logger)
		if err != nil {
			return nil, &StartupError{config.EnvDatabaseURL, err.Error()}
		}
		logger.Info("changes are shared with other instances through PostgreSQL LISTEN/NOTIFY; sessions stay on the instance that opened them (set REDIS_URL to share them)", "instance", b.InstanceID())
		return &cluster{bus: b}, nil
	}
	return &cluster{bus: bus.NewLocal()}, nil
}

// publish is the registry's Config.Publish: a change stored through this
// instance goes to the others. When the bus is down, the others catch up
// by their TTL (GLOBAL_CONFIG_CACHE_TTL) or when the bus comes back.
func (c *cluster) publish(logger *slog.Logger) func(context.Context, registry.Change, string, int64) {
	return func(ctx context.Context, change registry.Change, id string, version int64) {
		if err := c.bus.Publish(ctx, bus.Event{Kind: bus.Kind(change), ID: id, Version: version}); err != nil {
			logger.Warn("could not tell the other instances of a change; they catch up by the cache TTL or when the bus is back",
				"change", string(change), "upstream_id", id, "err", err)
		}
	}
}

// applyTo makes reg apply the changes other instances publish, before this
// instance answers its next call. Its own changes it applied when it made
// them.
func (c *cluster) applyTo(reg *registry.Registry, logger *slog.Logger) {
	self := c.bus.InstanceID()
	c.bus.Subscribe(func(e bus.Event) {
		if e.Origin == self && e.Kind != bus.KindResync {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		defer cancel()
		var err error
		switch e.Kind {
		case bus.KindGlobal:
			reg.ApplyGlobal()
		case bus.KindUpstream:
			err = reg.ApplyUpstream(ctx, e.ID, e.Version)
		case bus.KindCatalogue:
			err = reg.ApplyCatalogue(ctx, e.ID)
		case bus.KindResync:
			logger.Info("re-reading the configuration: changes from other instances may have been missed", "from", e.Origin)
			err = reg.Resync(ctx)
		}
		if err != nil {
			logger.Warn("could not apply another instance's change; the cache TTL catches up", "change", string(e.Kind), "upstream_id", e.ID, "err", err)
		}
	})
}

// close releases what the cluster holds.
func (c *cluster) close() {
	if c == nil {
		return
	}
	if c.router != nil {
		_ = c.router.Close()
	}
	if c.sessions != nil {
		_ = c.sessions.Close()
	}
	_ = c.bus.Close()
	if c.redis != nil {
		_ = c.redis.Close()
	}
}
