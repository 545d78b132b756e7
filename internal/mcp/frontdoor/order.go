package frontdoor

import (
	"context"
	"sync"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// arrivals keeps a session's client messages in the order they arrived, as
// far as the upstream must see it: the client's notifications and answers
// (to an upstream's requests) are handed on one after the other, in that
// order, and a request goes on only once every notification and answer
// that arrived before it has been handed on (the upstream accepted its
// POST, the frame was written) or has failed. A client that says
// notifications/roots/list_changed, answers the roots/list that follows
// and calls a tool then has the tool see the new roots, as it does
// directly; the client's messages arrive as concurrent POSTs (/mcp, /sse)
// or are handled on goroutines of their own (/sse, /ws), so without it a
// later request could overtake them on the way.
//
// Requests never wait for one another, and notes (notifications and
// answers) never wait for requests: a notifications/cancelled waits only
// for the notes before it, never for the calls it cancels. A note takes
// as long as its upstream takes to accept it, bounded by the upstream
// timeout, so a note that cannot be delivered holds what follows it that
// long at most.
//
// Stamp each POST or frame where it arrives, in arrival order (the POST
// handler, the read loop), never on a goroutine of its own. The zero value
// is ready to use. A POST is stamped once it has been read, so two POSTs a
// client has in flight together, on two connections served concurrently,
// are stamped in whichever order their handlers get there, not always the
// order they were sent: only a client that waits for the first's answer
// orders them (docs/federation.md, "Order").
type arrivals struct {
	mu      sync.Mutex
	next    uint64          // the number the next note gets
	handed  uint64          // every note numbered below it is done
	early   map[uint64]bool // notes done while one before them is not
	advance chan struct{}   // closed, and replaced, whenever handed grows
}

// arrival is where one POST or frame stands in its session's order.
type arrival struct {
	note  uint64 // the number of its notes, when hasNote
	after uint64 // its requests go on once every note below this is done
	// hasNote says it carries notes, which must be marked done (noteDone)
	// however their handling ends.
	hasNote bool
}

// arrive stamps a POST or frame that arrives now: hasNotes when it
// carries notifications or answers, which get their turn after every note
// that arrived before them. Its requests come after all of them, its own
// notes included.
func (o *arrivals) arrive(hasNotes bool) arrival {
	o.mu.Lock()
	defer o.mu.Unlock()
	a := arrival{note: o.next, hasNote: hasNotes}
	if hasNotes {
		o.next++
	}
	a.after = o.next
	return a
}

// turn waits until the notes that arrived before a's are done, or ctx
// ends.
func (o *arrivals) turn(ctx context.Context, a arrival) error {
	return o.waitFor(ctx, a.note)
}

// requests waits until every note that arrived before a's requests is
// done, or ctx ends.
func (o *arrivals) requests(ctx context.Context, a arrival) error {
	return o.waitFor(ctx, a.after)
}

// waitFor waits until every note numbered below n is done.
func (o *arrivals) waitFor(ctx context.Context, n uint64) error {
	for {
		o.mu.Lock()
		if o.handed >= n {
			o.mu.Unlock()
			return nil
		}
		if o.advance == nil {
			o.advance = make(chan struct{})
		}
		advance := o.advance
		o.mu.Unlock()
		select {
		case <-advance:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// noteDone marks a's notes done: handed on, failed, or given up. Called
// once for every arrival with notes, however its handling ends.
func (o *arrivals) noteDone(a arrival) {
	if !a.hasNote {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if a.note != o.handed {
		// Given up while waiting for its turn (its client went away): the
		// notes before it still hold what follows them.
		if o.early == nil {
			o.early = map[uint64]bool{}
		}
		o.early[a.note] = true
		return
	}
	o.handed++
	for o.early[o.handed] {
		delete(o.early, o.handed)
		o.handed++
	}
	if o.advance != nil {
		close(o.advance)
		o.advance = nil
	}
}

// splitNotes separates a POST's or frame's notes (notifications and
// answers) from its requests, each in the order they came. A batch's notes
// are handed on before its requests are handled (JSON-RPC 2.0 lets a
// server handle a batch's members in any order), so that a notification
// in a batch never waits for a call.
func splitNotes(msgs []jsonrpc.Message) (notes, requests []jsonrpc.Message) {
	for _, m := range msgs {
		if m.IsRequest() {
			requests = append(requests, m)
		} else {
			notes = append(notes, m)
		}
	}
	return notes, requests
}
