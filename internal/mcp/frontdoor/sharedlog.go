package frontdoor

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// sharingLog logs the failures of what is shared with other instances
// (SharedSessions, SessionRouter) at most once a minute: while Redis is
// away every session would otherwise log its own, and the bus already says
// once that it is down.
type sharingLog struct {
	logger *slog.Logger
	last   atomic.Int64 // unix nanoseconds of the last line
	quiet  atomic.Int64 // failures not logged since
}

const sharingLogEvery = time.Minute

func (l *sharingLog) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(sharingLogEvery) || !l.last.CompareAndSwap(last, now) {
		l.quiet.Add(1)
		return
	}
	l.logger.Warn(msg, "err", err, "unlogged_since_last", l.quiet.Swap(0))
}
