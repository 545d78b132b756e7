package pool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// reconnectAfter is how many failed attempts on an existing connection make
// the worker open a fresh one: the upstream may have come back as a new
// process that the old connection cannot reach any more.
const reconnectAfter = 3

// signal is a channel closed at most once.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// worker owns one upstream's connection. Its goroutine (run) does every
// connect and listing of that upstream, one at a time.
type worker struct {
	p      *Pool
	ctx    context.Context // ends when the worker must stop
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	wake   chan struct{} // one slot: the target changed or a listing was asked for

	mu        sync.Mutex
	t         Target
	connected *signal // fired once reported on t's endpoint
	queued    *signal // a listing asked for and not yet started; nil when none
}

func newWorker(p *Pool, t Target) *worker {
	ctx, cancel := context.WithCancel(p.life)
	return &worker{p: p, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		t: t, connected: newSignal()}
}

// version is the record version the worker follows.
func (w *worker) version() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t.Version
}

// poke wakes run without blocking; a wake already pending covers this one.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// set is Pool.Set for an upstream the worker already has.
func (w *worker) set(t Target) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.Version < w.t.Version {
		return closedChan // older than what we follow: never replaces it
	}
	moved := t.endpoint() != w.t.endpoint()
	w.t = t
	if !moved {
		return closedChan
	}
	w.connected.fire() // whoever waited for the old endpoint waits no more
	w.connected = newSignal()
	w.poke()
	return w.connected.ch
}

// refresh is Pool.Refresh: one queued listing, shared by every request made
// while it waits.
func (w *worker) refresh() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queued == nil {
		w.queued = newSignal()
	}
	w.poke()
	return w.queued.ch
}

// stop ends the worker and waits for it.
func (w *worker) stop() {
	w.cancel()
	<-w.done
}

// onNotification reacts to the upstream's own notifications on the
// discovery session: a list change asks for a listing on this same session,
// never a new session.
func (w *worker) onNotification(m jsonrpc.Message) {
	switch m.Method {
	case "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed":
		w.refresh()
	}
}

// run is the worker's goroutine.
func (w *worker) run() {
	var cur *conn
	defer func() {
		if cur != nil {
			_ = cur.client.Close() // removed: its calls end with it
		}
		w.mu.Lock()
		w.connected.fire()
		if w.queued != nil {
			w.queued.fire()
		}
		w.mu.Unlock()
		close(w.done)
	}()
	failures := 0
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	retryDue, first := false, true
	for {
		if !first {
			var retryC <-chan time.Time
			if retry != nil {
				retryC = retry.C
			}
			select {
			case <-w.ctx.Done():
				return
			case <-w.wake:
			case <-retryC:
				retry, retryDue = nil, true
			}
		}
		first = false
		if w.ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		t, connected, listed := w.t, w.connected, w.queued
		w.queued = nil
		w.mu.Unlock()
		connect := cur == nil || cur.endpoint != t.endpoint() || (retryDue && failures >= reconnectAfter)
		if !connect && listed == nil && !retryDue {
			continue
		}
		retryDue = false
		if retry != nil { // this attempt replaces the one planned
			retry.Stop()
			retry = nil
		}

		// A reading is as new as the moment it began: a listing that
		// started before a change may still answer from before it.
		res := Result{At: time.Now()}
		if connect {
			next, cat, err := w.open(t)
			switch {
			case err == nil:
				if cur != nil {
					w.p.drain(cur) // built first, swapped in, the old one drains
				}
				cur = next
				res.Caller, res.Catalogue = next, cat
			case cur != nil && cur.endpoint != t.endpoint():
				w.p.drain(cur) // the record no longer points there
				cur = nil
				res.Err = err
			default:
				res.Err = err
			}
		} else {
			ctx, cancel := context.WithTimeout(w.ctx, w.p.cfg.ConnectTimeout)
			cat, err := w.list(ctx, cur.client)
			cancel()
			res.Caller, res.Catalogue, res.Err = cur, cat, err
			if err != nil {
				res.Caller = nil
			}
		}
		if c, ok := res.Caller.(*conn); ok && c != nil {
			res.ProtocolVersion = c.client.ProtocolVersion()
		}
		if res.Err != nil {
			if w.ctx.Err() != nil {
				// Stopped meanwhile: the failure is ours, not the
				// upstream's, and nothing is reported.
				connected.fire()
				if listed != nil {
					listed.fire()
				}
				return
			}
			failures++
			retry = time.NewTimer(w.backoff(failures))
			w.p.cfg.Logger.Warn("upstream unavailable; retrying", "upstream", t.Name, "upstream_id", t.ID,
				"retry_in", w.backoff(failures).String(), "err", res.Err)
		} else {
			failures = 0
		}
		w.report(res, t)
		connected.fire()
		if listed != nil {
			listed.fire()
		}
	}
}

// backoff is the wait after the n-th failure in a row: MinBackoff, doubling,
// at most MaxBackoff.
func (w *worker) backoff(n int) time.Duration {
	d := w.p.cfg.MinBackoff
	for i := 1; i < n && d < w.p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.p.cfg.MaxBackoff)
}

// report hands res to the pool's owner, unless the worker was removed or
// its target moved to another endpoint meanwhile (the next attempt reports
// for that one).
func (w *worker) report(res Result, used Target) {
	w.mu.Lock()
	now := w.t
	w.mu.Unlock()
	if now.endpoint() != used.endpoint() || w.ctx.Err() != nil || !w.p.current(w) {
		return
	}
	res.ID, res.Version = now.ID, now.Version
	w.p.cfg.OnResult(res)
}

// open connects to t and lists its catalogue.
func (w *worker) open(t Target) (*conn, dispatch.Catalogue, error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.p.cfg.ConnectTimeout)
	defer cancel()
	c, err := w.p.discover(ctx, t, w.headers, w.onNotification)
	if err != nil {
		return nil, dispatch.Catalogue{}, err
	}
	cat, err := w.list(ctx, c)
	if err != nil {
		_ = c.Close()
		return nil, cat, err
	}
	return newConn(c, t.endpoint(), func() { w.refresh() }), cat, nil
}

// headers are the base headers of the record the worker follows now: a
// change of credentials applies on the existing connection.
func (w *worker) headers(ctx context.Context) (http.Header, error) {
	w.mu.Lock()
	t := w.t
	w.mu.Unlock()
	return t.Headers(ctx)
}

// list reads c's catalogue with the current target's base headers. A token
// the upstream refused is dropped, so that the next attempt fetches one.
func (w *worker) list(ctx context.Context, c *upstream.Client) (dispatch.Catalogue, error) {
	w.mu.Lock()
	t := w.t
	w.mu.Unlock()
	base, err := t.Headers(ctx)
	if err != nil {
		return dispatch.Catalogue{}, fmt.Errorf("credentials: %w", err)
	}
	cat, err := listCatalogue(ctx, c, base)
	var se *upstream.StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized && t.Invalidate != nil {
		t.Invalidate()
	}
	return cat, err
}
