package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisChannel is the Redis channel every instance publishes on and
// subscribes to. Redis's pub/sub ignores the database number, so every
// mcpgate on one Redis shares it.
const redisChannel = "mcpgate:bus"

// NewRedis returns a bus over Redis's PUBLISH/SUBSCRIBE on one channel.
// url is the REDIS_URL setting (redis://[:password@]host:port/db, or
// rediss:// for TLS). It fails when it cannot connect and subscribe within
// ctx (and 10 s), so that start-up says what is wrong. logger receives the
// bus's own messages (connection lost, connection back); nil discards them.
func NewRedis(ctx context.Context, url string, logger *slog.Logger) (Bus, error) {
	b, err := newRedis(ctx, url, logger, idleCheck)
	if err != nil {
		return nil, err // not a nil *remote in a non-nil Bus
	}
	return b, nil
}

// newRedis is NewRedis checking a connection silent for idle.
func newRedis(ctx context.Context, url string, logger *slog.Logger, idle time.Duration) (*remote, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// The bus reconnects on its own schedule and says so once; go-redis's
	// own retries of a PUBLISH to a Redis that is down (three commands, five
	// dials each, by default) would only make Publish slower to report it.
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	t := &redisTransport{client: redis.NewClient(opt), idle: idle}
	b, err := startRemote(ctx, newInstanceID(), "Redis", t, logger)
	if err != nil {
		_ = t.close()
		return nil, fmt.Errorf("REDIS_URL: subscribe on Redis at %s: %w", opt.Addr, err)
	}
	return b, nil
}

type redisTransport struct {
	client *redis.Client
	idle   time.Duration // see idleCheck
}

func (t *redisTransport) publish(ctx context.Context, payload []byte) error {
	return t.client.Publish(ctx, redisChannel, payload).Err()
}

func (t *redisTransport) close() error { return t.client.Close() }

// listen opens a connection, subscribes and waits for Redis to confirm it,
// so that what is published from then on reaches this instance.
func (t *redisTransport) listen(ctx context.Context) (listener, error) {
	ps := t.client.Subscribe(ctx) // no channel yet: connects nowhere
	// go-redis does not watch ctx while it reads; closing does.
	unwatch := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer unwatch()
	fail := func(err error) (listener, error) {
		_ = ps.Close()
		return nil, err
	}
	if err := ps.Subscribe(ctx, redisChannel); err != nil {
		return fail(err)
	}
	msg, err := ps.ReceiveTimeout(ctx, connectTimeout)
	if err != nil {
		return fail(err)
	}
	if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "subscribe" {
		return fail(fmt.Errorf("Redis answered SUBSCRIBE with %v", msg))
	}
	return &redisListener{ps: ps, idle: t.idle}, nil
}

// redisListener is a subscribed connection. go-redis would reconnect it by
// itself, silently; the bus instead drops it at the first error and
// subscribes again, so that it knows when events may have been lost.
type redisListener struct {
	ps   *redis.PubSub
	idle time.Duration
}

func (l *redisListener) close() { _ = l.ps.Close() }

func (l *redisListener) receive(ctx context.Context, deliver func(payload string)) error {
	unwatch := context.AfterFunc(ctx, l.close)
	defer unwatch()
	pinged := false // a PING is waiting for its PONG
	for {
		msg, err := l.ps.ReceiveTimeout(ctx, l.idle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var netErr net.Error
		switch {
		case err == nil:
		case errors.As(err, &netErr) && netErr.Timeout() && !pinged:
			if err := l.ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		case errors.As(err, &netErr) && netErr.Timeout():
			return fmt.Errorf("no answer to PING in %s", l.idle)
		default:
			return err
		}
		pinged = false // anything that arrives shows the connection works
		switch msg := msg.(type) {
		case *redis.Message:
			deliver(msg.Payload)
		case *redis.Subscription:
			if msg.Kind != "subscribe" {
				return fmt.Errorf("no longer subscribed (%s)", msg.Kind)
			}
		}
	}
}
