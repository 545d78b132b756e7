package pool

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// conn is one live discovery connection, as dispatch calls through it: it
// counts the calls in flight so that a replaced connection is closed only
// once they have finished.
type conn struct {
	client   *upstream.Client
	endpoint string
	// unreachable is told when a call found the upstream unreachable, so
	// that its worker checks at once rather than at the next refresh.
	unreachable func()

	mu       sync.Mutex
	inflight int
	draining bool
	isIdle   bool          // drained is closed
	drained  chan struct{} // closed once draining with nothing in flight
}

func newConn(c *upstream.Client, endpoint string, unreachable func()) *conn {
	return &conn{client: c, endpoint: endpoint, unreachable: unreachable, drained: make(chan struct{})}
}

// Call is dispatch.Caller's: the upstream client's Call, counted.
func (c *conn) Call(ctx context.Context, req jsonrpc.Message, headers http.Header, onNotification func(jsonrpc.Message)) (jsonrpc.Message, error) {
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight--
		c.settleLocked()
		c.mu.Unlock()
	}()
	resp, err := c.client.Call(ctx, req, headers, onNotification)
	if errors.Is(err, upstream.ErrUnreachable) && c.unreachable != nil {
		c.unreachable()
	}
	return resp, err
}

// idle marks c as draining and returns a channel closed once no call is in
// flight. A call that still arrives (it read the index before the swap)
// delays it; DrainTimeout bounds the wait.
func (c *conn) idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.settleLocked()
	return c.drained
}

// settleLocked closes drained once c is draining with no call in flight.
func (c *conn) settleLocked() {
	if c.draining && c.inflight == 0 && !c.isIdle {
		c.isIdle = true
		close(c.drained)
	}
}
