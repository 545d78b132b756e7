package bus

import (
	"context"
	"sync"
)

// queueSize is how many received events may wait for slow handlers before
// the receiving goroutine waits too. Events are rare (configuration
// changes); this is plenty.
const queueSize = 256

// subscribers holds a bus's handlers and runs them, one event at a time, on
// the goroutine of run.
type subscribers struct {
	mu       sync.Mutex
	handlers []func(Event)
	queue    chan delivery
}

// delivery is one event waiting for the handlers; done, when not nil, is
// closed once they have run.
type delivery struct {
	event Event
	done  chan struct{}
}

func newSubscribers() *subscribers {
	return &subscribers{queue: make(chan delivery, queueSize)}
}

func (s *subscribers) add(handler func(Event)) {
	s.mu.Lock()
	s.handlers = append(s.handlers, handler)
	s.mu.Unlock()
}

// run hands queued events to the handlers until ctx ends.
func (s *subscribers) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-s.queue:
			s.mu.Lock()
			handlers := s.handlers
			s.mu.Unlock()
			for _, h := range handlers {
				h(d.event)
			}
			if d.done != nil {
				close(d.done)
			}
		}
	}
}

// deliver queues e without waiting for the handlers. It waits for room in
// the queue unless ctx (the bus's life) ends first.
func (s *subscribers) deliver(ctx context.Context, e Event) {
	select {
	case s.queue <- delivery{event: e}:
	case <-ctx.Done():
	}
}

// deliverAndWait queues e and waits until the handlers have run. It returns
// ErrClosed when the bus closes first (life ends), and ctx's error when the
// caller gives up.
func (s *subscribers) deliverAndWait(ctx, life context.Context, e Event) error {
	d := delivery{event: e, done: make(chan struct{})}
	select {
	case s.queue <- d:
	case <-life.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-d.done:
		return nil
	case <-life.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
