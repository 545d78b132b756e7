package frontdoor

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ClientLimit bounds the sessions one client holds at once on this
// instance, across every front door that shares it (MAX_SESSIONS_PER_CLIENT),
// so that one client cannot take all the sessions mcpgate holds and lock
// the others out. A client is who StreamableConfig.Principal or
// StreamConfig.Principal names. Unauthenticated clients (principal "", as
// with AUTH_REQUIRED=false) are not limited here: they are one principal
// for many people, and a per-client cap would be a global cap far below
// MaxSessions; only MaxSessions bounds them.
//
// When a client at its limit opens another session, one of its own
// sessions without a call in flight is ended to make room, never another
// client's: the least recently used of those without an open stream (a
// GET stream, an SSE stream, a WebSocket), else the least recently used.
// When every one of its sessions has a call in flight, the new one is
// refused with 429. A nil *ClientLimit limits nothing.
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
// takes a call on it (begin) as it looks the session up for the call, and
// notes while the session has a stream open, and releases it when the
// session ends. A nil *lease does nothing.
type lease struct {
	limit     *ClientLimit
	principal string
	lastUsed  atomic.Int64 // unix nanoseconds
	// busy counts the calls in flight, and 1 while the session opens;
	// evicting (-1) once admit has picked the session to make room: begin
	// then refuses, so that no call starts on a session being ended.
	busy    atomic.Int32
	streams atomic.Int32 // streams open: such a session is ended to make room last
	// evict ends the session for the reason given; called outside every
	// lock of the limit's.
	evict    func(reason string)
	released bool // guarded by limit.mu
}

// evicting is lease.busy of a session picked to make room.
const evicting = -1

// admit gives a session that principal opens its place, ending one of the
// principal's idle sessions when it is at the limit (see ClientLimit). The
// lease starts busy (the session is opening: it must not be the one to make
// room); its front door calls done once the session is open. evict ends the
// session when another of the same client needs its place. The anonymous
// principal "" gets no lease: it is not limited per client.
func (c *ClientLimit) admit(principal string, evict func(reason string)) (*lease, error) {
	if c == nil || principal == "" {
		return nil, nil
	}
	l := &lease{limit: c, principal: principal, evict: evict}
	l.touch()
	l.busy.Store(1)
	c.mu.Lock()
	mine := c.leases[principal]
	var victim *lease
	if len(mine) >= c.max {
		if victim = pickVictim(mine); victim == nil {
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
		victim.evict(c.evictReason())
	}
	return l, nil
}

// pickVictim marks and returns the session of mine to end to make room:
// without a call in flight, preferring one without an open stream, least
// recently used first; nil when each has a call in flight. Marking is a
// compare-and-swap of busy from 0 to evicting, so a call that begins at
// the same moment either wins (and the session is not picked) or is
// refused. The caller holds c.mu.
func pickVictim(mine map[*lease]struct{}) *lease {
	candidates := make([]*lease, 0, len(mine))
	for o := range mine {
		if o.busy.Load() == 0 {
			candidates = append(candidates, o)
		}
	}
	slices.SortFunc(candidates, func(a, b *lease) int {
		if as, bs := a.streams.Load() > 0, b.streams.Load() > 0; as != bs {
			if as {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.lastUsed.Load(), b.lastUsed.Load())
	})
	for _, o := range candidates {
		if o.busy.CompareAndSwap(0, evicting) {
			return o
		}
	}
	return nil
}

// evictReason is what a client is told of a session ended to make room.
// Short: a WebSocket close frame carries at most 123 bytes of reason.
func (c *ClientLimit) evictReason() string {
	return fmt.Sprintf("its client opened more than %d sessions (MAX_SESSIONS_PER_CLIENT); this was its least recently used", c.max)
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

// begin starts a call on the session: a session with a call in flight is
// not ended to make room. It returns an error, saying why, when the
// session is being ended to make room; the call must not start then.
func (l *lease) begin() error {
	if l == nil {
		return nil
	}
	for {
		n := l.busy.Load()
		if n == evicting {
			return errors.New(l.limit.evictReason())
		}
		if l.busy.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// done ends a call begin started.
func (l *lease) done() {
	if l != nil {
		l.busy.Add(-1)
	}
}

// streamOpened and streamClosed bracket an open stream of the session.
func (l *lease) streamOpened() {
	if l != nil {
		l.streams.Add(1)
	}
}

func (l *lease) streamClosed() {
	if l != nil {
		l.streams.Add(-1)
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
