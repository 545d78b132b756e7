package frontdoor

import (
	"sync"
	"time"
)

// endedSessions remembers, for a while, why mcpgate itself ended sessions
// (their relay upstream was disabled or deleted, or their client opened
// too many), so that the client's next request on one is told why along
// with its 404, not only that the session is gone. It holds at most max
// reasons, each for ttl, and tells a reason only to the scope and client
// the session belonged to.
type endedSessions struct {
	max int
	ttl time.Duration

	mu   sync.Mutex
	byID map[string]endedSession
}

type endedSession struct {
	scope, principal string
	reason           string
	at               time.Time
}

// note remembers why session id, of scope and principal, ended.
func (e *endedSessions) note(id, scope, principal, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byID == nil {
		e.byID = map[string]endedSession{}
	}
	now := time.Now()
	if len(e.byID) >= e.max {
		e.expireLocked(now)
	}
	for victim := range e.byID { // still full: forget any one
		if len(e.byID) < e.max {
			break
		}
		delete(e.byID, victim)
	}
	e.byID[id] = endedSession{scope: scope, principal: principal, reason: reason, at: now}
}

// why returns why session id ended, if mcpgate ended it lately and asker
// is of the session's scope and client.
func (e *endedSessions) why(id, scope, principal string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.byID[id]
	if !ok || s.scope != scope || s.principal != principal || time.Since(s.at) > e.ttl {
		return "", false
	}
	return s.reason, true
}

// expire forgets the reasons older than ttl.
func (e *endedSessions) expire(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked(now)
}

func (e *endedSessions) expireLocked(now time.Time) {
	for id, s := range e.byID {
		if now.Sub(s.at) > e.ttl {
			delete(e.byID, id)
		}
	}
}
