package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sessions on any instance, through Redis:
//
//   - RedisSessions keeps Streamable HTTP sessions where every instance
//     finds them (frontdoor.SharedSessions);
//   - RedisRouter carries a legacy SSE POST from the instance it landed on
//     to the one whose stream holds the session (frontdoor.SessionRouter).
//
// Both carry what the front door gives them as opaque bytes: the front door
// owns the encoding of its sessions and messages, and the bus, below it,
// knows nothing of its types.

const (
	sessionKeyPrefix  = "mcpgate:session:"       // + id → protocol version
	sessionsEnded     = "mcpgate:sessions:ended" // channel: ids of sessions ended by DELETE
	sseOwnerKeyPrefix = "mcpgate:sse:"           // + id → the holding instance's id
	instanceChannel   = "mcpgate:instance:"      // + instance id: messages routed to it
)

// RedisSessions is frontdoor.SharedSessions in Redis: one key per session,
// expiring when the session would, and a channel on which a DELETE on one
// instance tells the others to drop their copies.
type RedisSessions struct {
	c     *redis.Client
	ended *subscription // nil until Listen
}

// NewRedisSessions keeps sessions in c.
func NewRedisSessions(c *redis.Client) *RedisSessions { return &RedisSessions{c: c} }

// Listen hands forget the id of every session another instance ends, until
// Close. A message missed while Redis was away is caught later: renewing a
// session that is gone fails (Renew).
func (s *RedisSessions) Listen(ctx context.Context, forget func(id string)) error {
	sub, err := subscribe(ctx, s.c, sessionsEnded, forget)
	if err != nil {
		return fmt.Errorf("REDIS_URL: subscribe to ended sessions: %w", err)
	}
	s.ended = sub
	return nil
}

// Close stops listening.
func (s *RedisSessions) Close() error { return s.ended.close() }

// Renew extends a session that is still there (EXPIRE only touches an
// existing key, so an ended session is never brought back).
func (s *RedisSessions) Renew(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	return s.c.Expire(ctx, sessionKeyPrefix+id, ttl).Result()
}

// Save records a session's record for ttl.
func (s *RedisSessions) Save(ctx context.Context, id string, record []byte, ttl time.Duration) error {
	return s.c.Set(ctx, sessionKeyPrefix+id, record, ttl).Err()
}

// Load finds the record of a session any instance saved.
func (s *RedisSessions) Load(ctx context.Context, id string) ([]byte, bool, error) {
	v, err := s.c.Get(ctx, sessionKeyPrefix+id).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return v, true, nil
}

// Delete forgets a session and tells every instance to drop its copy.
func (s *RedisSessions) Delete(ctx context.Context, id string) error {
	if err := s.c.Del(ctx, sessionKeyPrefix+id).Err(); err != nil {
		return err
	}
	return s.c.Publish(ctx, sessionsEnded, id).Err()
}

// RedisRouter is frontdoor.SessionRouter through Redis: the instance holding
// a session's stream claims it under a key that expires unless renewed, and
// every instance listens on a channel of its own for the POSTs routed to it.
// A POST whose holder no longer listens (it stopped, or was killed) is
// refused at once: PUBLISH reaches no one.
type RedisRouter struct {
	c        *redis.Client
	instance string
	logger   *slog.Logger
	routed   *subscription // nil until Listen
}

// releaseScript deletes a claim only if this instance still holds it.
var releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0`)

// NewRedisRouter routes for instance through c. It claims and routes at
// once; Listen starts receiving what is routed here.
func NewRedisRouter(c *redis.Client, instance string, logger *slog.Logger) *RedisRouter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RedisRouter{c: c, instance: instance, logger: logger}
}

// Listen receives the messages routed to this instance and hands each to
// deliver, which reports whether it knew the message's session. Call it
// once; Close stops it.
func (r *RedisRouter) Listen(ctx context.Context, deliver func(message []byte) bool) error {
	sub, err := subscribe(ctx, r.c, instanceChannel+r.instance, func(payload string) {
		if !deliver([]byte(payload)) {
			r.logger.Info("a routed SSE message found its session gone")
		}
	})
	if err != nil {
		return fmt.Errorf("REDIS_URL: subscribe to this instance's session channel: %w", err)
	}
	r.routed = sub
	return nil
}

// Claim says this instance holds session id, for ttl.
func (r *RedisRouter) Claim(ctx context.Context, id string, ttl time.Duration) error {
	return r.c.Set(ctx, sseOwnerKeyPrefix+id, r.instance, ttl).Err()
}

// Release ends this instance's claim of session id.
func (r *RedisRouter) Release(ctx context.Context, id string) error {
	return releaseScript.Run(ctx, r.c, []string{sseOwnerKeyPrefix + id}, r.instance).Err()
}

// Route hands message to the instance holding session id: false when no
// instance claims it, or the one that does no longer listens.
func (r *RedisRouter) Route(ctx context.Context, id string, message []byte) (bool, error) {
	holder, err := r.c.Get(ctx, sseOwnerKeyPrefix+id).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, err
	}
	listeners, err := r.c.Publish(ctx, instanceChannel+holder, message).Result()
	if err != nil {
		return false, err
	}
	return listeners > 0, nil
}

// Close stops listening.
func (r *RedisRouter) Close() error { return r.routed.close() }

// subscription is one Redis channel read on a goroutine of its own, each
// message handed to handle, until close. go-redis resubscribes by itself
// when the connection comes back; what was published meanwhile is lost,
// which each user of a subscription allows for.
type subscription struct {
	sub *redis.PubSub
	wg  sync.WaitGroup
}

func subscribe(ctx context.Context, c *redis.Client, channel string, handle func(payload string)) (*subscription, error) {
	sub := c.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		_ = sub.Close()
		return nil, err
	}
	s := &subscription{sub: sub}
	ch := sub.Channel()
	s.wg.Go(func() {
		for msg := range ch { // closed by close
			handle(msg.Payload)
		}
	})
	return s, nil
}

// close stops the subscription and waits for its goroutine; a nil one is
// fine.
func (s *subscription) close() error {
	if s == nil {
		return nil
	}
	err := s.sub.Close()
	s.wg.Wait()
	return err
}
