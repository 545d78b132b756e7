package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

func TestLocalRunsEveryHandlerInOrderBeforePublishReturns(t *testing.T) {
	b := NewLocal()
	defer b.Close()
	var seen []string // only the bus's goroutine appends, and Publish waits for it
	for _, name := range []string{"first", "second"} {
		b.Subscribe(func(e Event) { seen = append(seen, name+":"+e.ID) })
	}
	for _, id := range []string{"a", "b"} {
		if err := b.Publish(t.Context(), Event{Kind: KindUpstream, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"first:a", "second:a", "first:b", "second:b"}
	if !slices.Equal(seen, want) {
		t.Errorf("handlers saw %v, want %v", seen, want)
	}
	if !b.Connected() {
		t.Error("a local bus is always connected")
	}
}

func TestPublishRejectsMalformedEvents(t *testing.T) {
	b := NewLocal()
	defer b.Close()
	got := newRecorder()
	b.Subscribe(got.handle)
	for _, e := range []Event{
		{Kind: "globl"},
		{Kind: ""},
		{Kind: KindUpstream},  // which upstream?
		{Kind: KindCatalogue}, // which upstream?
	} {
		if err := b.Publish(t.Context(), e); err == nil {
			t.Errorf("Publish(%+v) = nil, want an error", e)
		}
	}
	if err := b.Publish(t.Context(), Event{Kind: KindGlobal, Origin: "someone else"}); err != nil {
		t.Fatal(err)
	}
	events := got.from(b.InstanceID())
	if len(events) != 1 || events[0].Kind != KindGlobal {
		t.Errorf("delivered %v, want only the global event, with this instance as its origin", events)
	}
}

// Two instances on one backend: what either publishes reaches both, in the
// order it was published, naming who published it, with the record version
// it carries; and it reaches the
// other quickly (the p50 and p99 are logged; the goal is a p99 of
// 100 ms end to end).
func TestEveryInstanceReceivesEveryEventInOrder(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			a, b := startInstance(t, be.open), startInstance(t, be.open)
			origins := []string{a.InstanceID(), b.InstanceID()}
			const n = 200
			latencies := make([]time.Duration, 0, n)
			for i := range n {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				start := time.Now()
				from.publish(t, Event{Kind: KindUpstream, ID: strconv.Itoa(i), Version: int64(i + 1)})
				got := to.received.waitFor(t, 5*time.Second, i+1, origins...)
				latencies = append(latencies, got[i].at.Sub(start))
			}
			for _, in := range []*instance{a, b} {
				got := in.received.from(origins...)
				if len(got) != n {
					t.Fatalf("%s received %d events, want %d", in.InstanceID(), len(got), n)
				}
				for i, e := range got {
					want := Event{Kind: KindUpstream, ID: strconv.Itoa(i), Version: int64(i + 1), Origin: origins[i%2]}
					if e.Event != want {
						t.Fatalf("%s: event %d is %+v, want %+v", in.InstanceID(), i, e.Event, want)
					}
				}
			}
			p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
			t.Logf("%s: delivery to the other instance over %d events: p50 %s, p99 %s, max %s",
				be.name, n, p50, p99, slices.Max(latencies))
			// Far above the target, so as not to fail on a loaded machine,
			// but low enough to catch polling or a lost wake-up.
			if p99 > 500*time.Millisecond {
				t.Errorf("p99 delivery latency %s, want well under 100 ms", p99)
			}
		})
	}
}

func TestBurstArrivesInOrder(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			a, b := startInstance(t, be.open), startInstance(t, be.open)
			const n = 100
			for i := range n {
				a.publish(t, Event{Kind: KindCatalogue, ID: strconv.Itoa(i)})
			}
			got := b.received.waitFor(t, 10*time.Second, n, a.InstanceID())
			for i, e := range got {
				if e.ID != strconv.Itoa(i) {
					t.Fatalf("event %d has ID %q: out of order", i, e.ID)
				}
			}
		})
	}
}

// Publish returns once this instance's subscribers have the event, so the
// change is in force here (the admin API's next read sees it), whatever the
// network does.
func TestPublishDeliversHereBeforeReturning(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			a := startInstance(t, be.open)
			a.publish(t, Event{Kind: KindGlobal})
			if got := a.received.from(a.InstanceID()); len(got) != 1 || got[0].Kind != KindGlobal {
				t.Fatalf("after Publish returned, the subscriber had %v, want the global event", got)
			}
			// Its own event comes back from the backend too; the bus must
			// not deliver it twice.
			b := startInstance(t, be.open)
			a.publish(t, Event{Kind: KindUpstream, ID: "marker"})
			b.received.waitFor(t, 5*time.Second, 1, a.InstanceID())
			time.Sleep(50 * time.Millisecond) // the echo took as long to reach a
			if got := a.received.from(a.InstanceID()); len(got) != 2 {
				t.Errorf("a's subscriber got %d events, want 2: %v", len(got), got)
			}
		})
	}
}

// A quiet connection is checked (PING, or a PostgreSQL ping) and stays up.
func TestQuietConnectionStaysUp(t *testing.T) {
	redisAt, postgresAt := testenv.RedisURL(t), testenv.PostgresDatabase(t, "mcpgate_bus")
	const idle = 100 * time.Millisecond
	for _, be := range []backend{
		{"Redis", func(ctx context.Context, logger *slog.Logger) (*remote, error) {
			return newRedis(ctx, redisAt, logger, idle)
		}},
		{"PostgreSQL", func(ctx context.Context, logger *slog.Logger) (*remote, error) {
			return newPostgres(ctx, postgresAt, logger, idle)
		}},
	} {
		t.Run(be.name, func(t *testing.T) {
			a, b := startInstance(t, be.open), startInstance(t, be.open)
			time.Sleep(15 * idle)
			for _, in := range []*instance{a, b} {
				if warns := in.log.lines("level=WARN"); len(warns) > 0 {
					t.Errorf("%s warned on a quiet connection: %v", in.InstanceID(), warns)
				}
				if !in.Connected() {
					t.Errorf("%s is not connected", in.InstanceID())
				}
			}
			a.publish(t, Event{Kind: KindGlobal})
			b.received.waitFor(t, 5*time.Second, 1, a.InstanceID())
		})
	}
}

// Issue 5: when Redis goes away, Publish fails, the bus says so once (not
// at each attempt), and when Redis is back it subscribes again, says so
// once, and tells its subscribers to resync.
func TestRedisRestart(t *testing.T) {
	server := testenv.StartRedisServer(t) // its own: stopping the shared one would disturb other tests
	open := func(ctx context.Context, logger *slog.Logger) (*remote, error) {
		return newRedis(ctx, server.URL(), logger, idleCheck)
	}
	a, b := startInstance(t, open), startInstance(t, open)
	a.publish(t, Event{Kind: KindGlobal})
	b.received.waitFor(t, 5*time.Second, 1, a.InstanceID())

	server.Stop()
	testenv.WaitFor(t, 5*time.Second, "both to see Redis gone", func() bool { return !a.Connected() && !b.Connected() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	err := a.Publish(ctx, Event{Kind: KindUpstream, ID: "while-down"})
	cancel()
	if err == nil {
		t.Fatal("Publish with Redis down returned nil, want an error")
	}
	t.Logf("Publish with Redis down: %v", err)
	// Let it retry a few times (100, 200, 400 ms…).
	testenv.WaitFor(t, 5*time.Second, "three failed reconnections", func() bool {
		return len(a.log.lines("reconnection failed")) >= 3
	})

	restarted := time.Now()
	server.Start()
	for _, in := range []*instance{a, b} {
		in.received.waitForEvent(t, 15*time.Second, "resync", func(e received) bool {
			return e.Kind == KindResync && e.Origin == in.InstanceID() && e.at.After(restarted)
		})
		if !in.Connected() {
			t.Errorf("%s: Connected() is false after the resync", in.InstanceID())
		}
		warns := in.log.lines("level=WARN")
		if len(warns) != 1 || !strings.Contains(warns[0], "lost the connection to Redis") {
			t.Errorf("%s: want one warning for the outage, got %d: %v", in.InstanceID(), len(warns), warns)
		}
		if infos := in.log.lines("level=INFO", "reconnected to Redis"); len(infos) != 1 {
			t.Errorf("%s: want one info line for the reconnection, got %v", in.InstanceID(), infos)
		}
	}

	a.publish(t, Event{Kind: KindUpstream, ID: "after"})
	b.received.waitForEvent(t, 5*time.Second, "the event published after the restart", func(e received) bool {
		return e.ID == "after" && e.Origin == a.InstanceID()
	})
}

// Issue 5: when PostgreSQL drops the listening connection, the bus listens
// again on a new one and tells its subscribers to resync.
func TestPostgresListenerKilled(t *testing.T) {
	db := testenv.PostgresDatabase(t, "mcpgate_bus")
	open := func(ctx context.Context, logger *slog.Logger) (*remote, error) {
		return newPostgres(ctx, db, logger, idleCheck)
	}
	a, b := startInstance(t, open), startInstance(t, open)
	pid := listenerPID(t, db, a.InstanceID())

	killed := time.Now()
	testenv.PostgresExec(t, db, "SELECT pg_terminate_backend($1)", pid)
	a.received.waitForEvent(t, 10*time.Second, "resync", func(e received) bool {
		return e.Kind == KindResync && e.Origin == a.InstanceID() && e.at.After(killed)
	})
	if warns := a.log.lines("level=WARN"); len(warns) != 1 || !strings.Contains(warns[0], "lost the connection to PostgreSQL") {
		t.Errorf("want one warning for the lost connection, got %v", warns)
	}
	if infos := a.log.lines("level=INFO", "reconnected to PostgreSQL"); len(infos) != 1 {
		t.Errorf("want one info line for the reconnection, got %v", infos)
	}
	if !a.Connected() {
		t.Error("Connected() is false after the resync")
	}
	if again := listenerPID(t, db, a.InstanceID()); again == pid {
		t.Errorf("the listener's pid is still %d", pid)
	}

	b.publish(t, Event{Kind: KindUpstream, ID: "after"})
	a.received.waitForEvent(t, 5*time.Second, "the event published after the reconnection", func(e received) bool {
		return e.ID == "after" && e.Origin == b.InstanceID()
	})
	if got := b.received.from(b.InstanceID()); slices.ContainsFunc(got, func(e received) bool { return e.Kind == KindResync }) {
		t.Errorf("b resynced, though its connection was not touched: %v", got)
	}
}

// listenerPID returns the pid of the backend serving instance's listening
// connection.
func listenerPID(t *testing.T, databaseURL, instance string) int {
	t.Helper()
	pids := postgresInts(t, databaseURL,
		"SELECT pid FROM pg_stat_activity WHERE application_name = $1", ListenerApplicationName+instance)
	if len(pids) != 1 {
		t.Fatalf("want one listening connection for %s, found pids %v", instance, pids)
	}
	return pids[0]
}

// Start-up must say what is wrong: the setting's name and the address.
func TestUnreachableBackendFailsAtStart(t *testing.T) {
	closed := testenv.FreePort(t) // nothing listens there
	for _, c := range []struct {
		name, setting string
		open          func(ctx context.Context) (Bus, error)
		mentions      string
	}{
		{"Redis down", "REDIS_URL", func(ctx context.Context) (Bus, error) {
			return NewRedis(ctx, fmt.Sprintf("redis://127.0.0.1:%d/0", closed), nil)
		}, fmt.Sprintf("127.0.0.1:%d", closed)},
		{"Redis URL", "REDIS_URL", func(ctx context.Context) (Bus, error) {
			return NewRedis(ctx, "http://127.0.0.1/", nil)
		}, "scheme"},
		{"PostgreSQL down", "DATABASE_URL", func(ctx context.Context) (Bus, error) {
			return NewPostgres(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", closed), nil)
		}, fmt.Sprintf("127.0.0.1:%d", closed)},
		{"PostgreSQL URL", "DATABASE_URL", func(ctx context.Context) (Bus, error) {
			return NewPostgres(ctx, "postgres://127.0.0.1:notaport/x", nil)
		}, "port"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			b, err := c.open(ctx)
			if err == nil {
				b.Close()
				t.Fatal("no error")
			}
			if b != nil {
				t.Errorf("returned a bus (%T) with the error", b)
			}
			t.Logf("%v (after %s)", err, time.Since(start).Round(time.Millisecond))
			if !strings.HasPrefix(err.Error(), c.setting+": ") || !strings.Contains(err.Error(), c.mentions) {
				t.Errorf("error %q does not start with %s or does not mention %q", err, c.setting, c.mentions)
			}
		})
	}
}

// Close stops every goroutine the bus started, whatever state it is in, and
// may be called again; Publish then fails with ErrClosed.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	redisAt, postgresAt := testenv.RedisURL(t), testenv.PostgresDatabase(t, "mcpgate_bus")
	opens := map[string]func(ctx context.Context) (Bus, error){
		"local":      func(context.Context) (Bus, error) { return NewLocal(), nil },
		"Redis":      func(ctx context.Context) (Bus, error) { return NewRedis(ctx, redisAt, nil) },
		"PostgreSQL": func(ctx context.Context) (Bus, error) { return NewPostgres(ctx, postgresAt, nil) },
	}
	baseline := runtime.NumGoroutine()
	for _, name := range []string{"local", "Redis", "PostgreSQL"} {
		b, err := opens[name](t.Context())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := newRecorder()
		b.Subscribe(got.handle)
		if err := b.Publish(t.Context(), Event{Kind: KindGlobal}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond) // so that Close finds the listener waiting for the next event
		start := time.Now()
		if err := b.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: Close took %s", name, took)
		}
		if err := b.Close(); err != nil {
			t.Errorf("%s: second Close: %v", name, err)
		}
		if err := b.Publish(t.Context(), Event{Kind: KindGlobal}); !errors.Is(err, ErrClosed) {
			t.Errorf("%s: Publish after Close = %v, want ErrClosed", name, err)
		}
		if name != "local" && b.Connected() {
			t.Errorf("%s: Connected() after Close", name)
		}
	}
	// A start that fails leaves nothing running either.
	if _, err := NewRedis(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)), nil); err == nil {
		t.Fatal("NewRedis on a closed port succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines 5 s after Close, %d before the buses:\n%s", runtime.NumGoroutine(), baseline, dump.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// percentile returns the p-th percentile of ds by nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	sorted := slices.Sorted(slices.Values(ds))
	rank := int(math.Ceil(float64(p) / 100 * float64(len(sorted))))
	return sorted[max(rank-1, 0)]
}
