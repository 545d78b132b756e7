package frontdoor

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ClientLimit bounds the sessions one client holds at once on this
// instance, across every front door that shares it (MAX_SESSIONS_PER_CLIENT),
// so that one client cannot take all the sessions mcpgate holds and lock
// the others out. A client is who StreamableConfig.Principal or
// StreamConfig.Principal names; every unauthenticated client is the same
// one ("").
//
// When a client at its limit opens another session, its own least recently
// used session without a call in flight is ended to make room, never
// another client's; when every one of its sessions has a call in flight,
// the new one is refused with 429. A nil *ClientLimit limits nothing.
type ClientLimit struct {
	max int

	mu     sync.Mutex
	leases map[string]map[*lease]struct{} // by principal
}

// NewClientLimit returns a limit of max sessions per client; max 0 or less
// returns nil, no limit.
func NewClientLimit(max int) *ClientLimit {
	if max <= 0 {
		return nil
	}
	return &ClientLimit{max: max, leases: map[string]map[*lease]struct{}{}}
}

// lease is one session's place in its client's limit. Its front door
// notes when the session is used and while it has calls in flight, and
// releases it when the session ends. A nil *lease does nothing.
type lease struct {
	limit     *ClientLimit
	principal string
	lastUsed  atomic.Int64 // unix nanoseconds
	busy      atomic.Int32 // calls in flight, and 1 while the session opens
	// evict ends the session for the reason given; called outside every
	// lock of the limit's.
	evict    func(reason string)
	released bool // guarded by limit.mu
}

// admit gives a session that principal opens its place, ending the
// principal's least recently used idle session when it is at the limit.
// The lease starts busy (the session is opening: it must not be the one
// to make room); its front door calls done once the session is open. evict
// ends the session when another of the same client needs its place.
func (c *ClientLimit) admit(principal string, evict func(reason string)) (*lease, error) {
	if c == nil {
		return nil, nil
	}
	l := &lease{limit: c, principal: principal, evict: evict}
	l.touch()
	l.begin()
	c.mu.Lock()
	mine := c.leases[principal]
	var victim *lease
	if len(mine) >= c.max {
		for o := range mine {
			if o.busy.Load() == 0 && (victim == nil || o.lastUsed.Load() < victim.lastUsed.Load()) {
				victim = o
			}
		}
		if victim == nil {
			c.mu.Unlock()
			return nil, &OpenError{Status: http.StatusTooManyRequests, Err: fmt.Errorf(
				"too many sessions for this client: it holds %d, the most one client may hold (MAX_SESSIONS_PER_CLIENT), and each has a call in flight; end one (DELETE it, or close its stream) and try again", c.max)}
		}
		c.releaseLocked(victim)
	}
	if mine == nil {
		mine = map[*lease]struct{}{}
		c.leases[principal] = mine
	}
	mine[l] = struct{}{}
	c.mu.Unlock()
	if victim != nil {
		// Short: a WebSocket close frame carries at most 123 bytes of reason.
		victim.evict(fmt.Sprintf("its client opened more than %d sessions (MAX_SESSIONS_PER_CLIENT); this was its least recently used", c.max))
	}
	return l, nil
}

func (c *ClientLimit) releaseLocked(l *lease) {
	if l.released {
		return
	}
	l.released = true
	delete(c.leases[l.principal], l)
	if len(c.leases[l.principal]) == 0 {
		delete(c.leases, l.principal)
	}
}

// touch notes that the session was used now.
func (l *lease) touch() {
	if l != nil {
		l.lastUsed.Store(time.Now().UnixNano())
	}
}

// begin and done bracket a call in flight: a busy session is not ended to
// make room.
func (l *lease) begin() {
	if l != nil {
		l.busy.Add(1)
	}
}

func (l *lease) done() {
	if l != nil {
		l.busy.Add(-1)
	}
}

// release gives the session's place back; later calls do nothing.
func (l *lease) release() {
	if l == nil {
		return
	}
	l.limit.mu.Lock()
	defer l.limit.mu.Unlock()
	l.limit.releaseLocked(l)
}

// openStatus is the HTTP status to refuse a new session with: an
// OpenError's own, else 503.
func openStatus(err error) int {
	var oe *OpenError
	if errors.As(err, &oe) {
		return oe.Status
	}
	return http.StatusServiceUnavailable
}
