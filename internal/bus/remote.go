package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The reconnection schedule of a networked bus: the wait between
// two attempts doubles from minBackoff to maxBackoff, and goes back to
// minBackoff once a connection has lasted stableAfter, so that a flapping
// connection does not reconnect (and log) ten times a second.
const (
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
	stableAfter = 30 * time.Second
)

// connectTimeout bounds one attempt to connect and subscribe, start-up's
// included (where the caller's ctx may bound it sooner).
const connectTimeout = 10 * time.Second

// idleCheck is how long a listening connection may stay silent before the
// bus checks it with a ping: a peer that vanished without closing the
// connection is noticed within two of these.
const idleCheck = 15 * time.Second

// transport is a backend of a networked bus.
type transport interface {
	// listen makes a listening connection, subscribed to the bus's channel.
	listen(ctx context.Context) (listener, error)
	// publish sends one payload to every listening connection.
	publish(ctx context.Context, payload []byte) error
	// close releases what the transport holds; its listeners are closed.
	close() error
}

// listener is one listening connection.
type listener interface {
	// receive hands each payload that arrives to deliver until the
	// connection fails, which it returns, or ctx ends.
	receive(ctx context.Context, deliver func(payload string)) error
	close()
}

// remote is a bus over a transport. One goroutine (supervise) owns the
// listening connection, delivers what it receives and reconnects; another
// runs the handlers.
type remote struct {
	id          string
	backend     string // "Redis" or "PostgreSQL", for messages
	transport   transport
	logger      *slog.Logger
	subscribers *subscribers
	connected   atomic.Bool

	life      context.Context // ends at Close
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// startRemote makes the first listening connection, failing with that
// error when it cannot, and then starts the bus's goroutines.
func startRemote(ctx context.Context, id, backend string, t transport, logger *slog.Logger) (*remote, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	attempt, cancel := context.WithTimeout(ctx, connectTimeout)
	l, err := t.listen(attempt)
	cancel()
	if err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.Background())
	b := &remote{
		id:          id,
		backend:     backend,
		transport:   t,
		logger:      logger.With("bus", backend, "instance", id),
		subscribers: newSubscribers(),
		life:        life,
		stop:        stop,
	}
	b.connected.Store(true)
	b.wg.Go(func() { b.subscribers.run(life) })
	b.wg.Go(func() { b.supervise(l) })
	return b, nil
}

func (b *remote) Publish(ctx context.Context, e Event) error {
	if b.life.Err() != nil {
		return ErrClosed
	}
	e, err := stamp(e, b.id)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bus: encode event: %w", err)
	}
	// The others first, since they wait for the network; then this
	// instance, whether or not the others could be told.
	sent := b.transport.publish(ctx, payload)
	if sent != nil {
		sent = fmt.Errorf("bus: publish %s event on %s: %w", e.Kind, b.backend, sent)
	}
	return errors.Join(sent, b.subscribers.deliverAndWait(ctx, b.life, e))
}

func (b *remote) Subscribe(handler func(Event)) { b.subscribers.add(handler) }
func (b *remote) Connected() bool               { return b.connected.Load() }
func (b *remote) InstanceID() string            { return b.id }

func (b *remote) Close() error {
	b.closeOnce.Do(func() {
		b.stop()
		b.wg.Wait()
		b.connected.Store(false)
		b.closeErr = b.transport.close()
	})
	return b.closeErr
}

// receive delivers one payload from the backend.
func (b *remote) receive(payload string) {
	var e Event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		b.logger.Warn("bus: ignored a message that is not an event", "error", err)
		return
	}
	if !e.Kind.known() {
		// From a newer instance, perhaps: nothing here caches what it names.
		b.logger.Debug("bus: ignored an event of an unknown kind", "kind", e.Kind, "origin", e.Origin)
		return
	}
	if e.Origin == b.id {
		return // Publish delivered it here already
	}
	b.subscribers.deliver(b.life, e)
}

// supervise receives on l until it fails, then reconnects with backoff,
// and again, until Close. An outage is logged once when it starts and once
// when it ends, however many attempts it takes; after it, the subscribers
// get a KindResync event, since events published meanwhile are lost.
func (b *remote) supervise(l listener) {
	backoff := minBackoff
	for {
		upSince := time.Now()
		err := l.receive(b.life, b.receive)
		l.close()
		if b.life.Err() != nil {
			return
		}
		b.connected.Store(false)
		lost := time.Now()
		if lost.Sub(upSince) >= stableAfter {
			backoff = minBackoff
		}
		b.logger.Warn("bus: lost the connection to "+b.backend+"; reconnecting (events published meanwhile are missed; caches fall back on their TTL until then)",
			"error", err)
		for {
			if !sleep(b.life, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			attempt, cancel := context.WithTimeout(b.life, connectTimeout)
			l, err = b.transport.listen(attempt)
			cancel()
			if err == nil {
				break
			}
			if b.life.Err() != nil {
				return
			}
			b.logger.Debug("bus: reconnection failed", "error", err, "next_in", backoff)
		}
		b.connected.Store(true)
		b.logger.Info("bus: reconnected to "+b.backend+"; subscribers resync",
			"down_for", time.Since(lost).Round(time.Millisecond))
		b.subscribers.deliver(b.life, Event{Kind: KindResync, Origin: b.id})
	}
}

// jitter spreads reconnections of many instances over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2)
}

// sleep waits d, or less when ctx ends; it reports whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
