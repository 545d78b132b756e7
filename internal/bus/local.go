package bus

import (
	"context"
	"sync"
)

// local is the bus of a single instance: Publish hands the event to this
// instance's subscribers and to no one else.
type local struct {
	id          string
	subscribers *subscribers
	life        context.Context // ends at Close
	stop        context.CancelFunc
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// NewLocal returns the bus of an instance that runs alone. Close stops its
// goroutine.
func NewLocal() Bus {
	life, stop := context.WithCancel(context.Background())
	b := &local{id: newInstanceID(), subscribers: newSubscribers(), life: life, stop: stop}
	b.wg.Go(func() { b.subscribers.run(life) })
	return b
}

func (b *local) Publish(ctx context.Context, e Event) error {
	if b.life.Err() != nil {
		return ErrClosed
	}
	e, err := stamp(e, b.id)
	if err != nil {
		return err
	}
	return b.subscribers.deliverAndWait(ctx, b.life, e)
}

func (b *local) Subscribe(handler func(Event)) { b.subscribers.add(handler) }
func (b *local) Connected() bool               { return true }
func (b *local) InstanceID() string            { return b.id }

func (b *local) Close() error {
	b.closeOnce.Do(func() {
		b.stop()
		b.wg.Wait()
	})
	return nil
}
