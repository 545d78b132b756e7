package bus

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// The bus's tests run against a real Redis and a real PostgreSQL on
// 127.0.0.1: MCPGATE_TEST_REDIS_URL and MCPGATE_TEST_POSTGRES_URL (an
// administrator's URL; each test creates its own database there, and
// PostgreSQL's notifications stay within one database). scripts/redis.sh and
// scripts/postgres.sh start throwaway servers and print the lines that set
// them. The Redis restart test starts a Redis of its own, with the
// redis-server that scripts/redis.sh installs.

// backend makes buses on one Redis or one PostgreSQL database.
type backend struct {
	name string
	open func(ctx context.Context, logger *slog.Logger) (*remote, error)
}

// backends returns a backend of each kind, each its own (a fresh database;
// the Redis channel is shared, so tests look only at their buses' events).
func backends(t *testing.T) []backend {
	t.Helper()
	redisAt, postgresAt := testenv.RedisURL(t), testenv.PostgresDatabase(t, "mcpgate_bus")
	return []backend{
		{"Redis", func(ctx context.Context, logger *slog.Logger) (*remote, error) {
			return newRedis(ctx, redisAt, logger, idleCheck)
		}},
		{"PostgreSQL", func(ctx context.Context, logger *slog.Logger) (*remote, error) {
			return newPostgres(ctx, postgresAt, logger, idleCheck)
		}},
	}
}

// instance is one bus, as one mcpgate instance would have it, with what its
// subscriber received and what it logged.
type instance struct {
	*remote
	received *recorder
	log      *logBuffer
}

// startInstance opens a bus with open, subscribes a recorder to it, and
// closes it when the test ends.
func startInstance(t *testing.T, open func(ctx context.Context, logger *slog.Logger) (*remote, error)) *instance {
	t.Helper()
	log := &logBuffer{}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	b, err := open(ctx, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	in := &instance{remote: b, received: newRecorder(), log: log}
	b.Subscribe(in.received.handle)
	return in
}

// publish publishes e on in, failing the test on an error.
func (in *instance) publish(t *testing.T, e Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := in.Publish(ctx, e); err != nil {
		t.Fatalf("publish %v: %v", e, err)
	}
}

// received is an event as a subscriber got it.
type received struct {
	Event
	at time.Time
}

// recorder is a subscriber that keeps what it receives.
type recorder struct {
	mu      sync.Mutex
	events  []received
	arrived chan struct{} // has a value after an event arrived
}

func newRecorder() *recorder { return &recorder{arrived: make(chan struct{}, 1)} }

func (r *recorder) handle(e Event) {
	r.mu.Lock()
	r.events = append(r.events, received{e, time.Now()})
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// from returns what arrived from the given origins, in order.
func (r *recorder) from(origins ...string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, e := range r.events {
		if slices.Contains(origins, e.Origin) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits at most timeout for n events from the origins, and returns
// them, failing the test when fewer arrive.
func (r *recorder) waitFor(t *testing.T, timeout time.Duration, n int, origins ...string) []received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := r.from(origins...); len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline.C:
			got := r.from(origins...)
			t.Fatalf("%d of %d events from %v arrived within %s: %v", len(got), n, origins, timeout, got)
			return nil
		}
	}
}

// waitForEvent waits at most timeout for an event that match accepts, and
// returns it, failing the test when none arrives.
func (r *recorder) waitForEvent(t *testing.T, timeout time.Duration, what string, match func(received) bool) received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		events := slices.Clone(r.events)
		r.mu.Unlock()
		for _, e := range events {
			if match(e) {
				return e
			}
		}
		select {
		case <-r.arrived:
		case <-deadline.C:
			t.Fatalf("no %s within %s; got %v", what, timeout, events)
			return received{}
		}
	}
}

// logBuffer collects a logger's output.
type logBuffer struct{ testenv.LogBuffer }

// lines returns the logged lines that hold every one of words.
func (l *logBuffer) lines(words ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// postgresInts runs a query returning one integer column on its own
// connection to databaseURL.
func postgresInts(t *testing.T, databaseURL, query string, args ...any) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	ints, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return ints
}
