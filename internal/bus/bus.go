// Package bus carries change notifications between mcpgate instances.
//
// Several instances share one database. Each caches what it read
// from it (the allowlists of spec §3, the upstreams, their catalogues), so a
// change written through one instance must reach every other one before its
// next call (deviation D10); the caches' TTL is only the safety net. An
// instance that changes something publishes an [Event] saying what changed;
// every instance, the publishing one included, hands it to its subscribers,
// which drop what they cached and read it again.
//
// Three buses: [NewLocal] for a single instance, [NewPostgres] over
// PostgreSQL's LISTEN/NOTIFY, and [NewRedis] over Redis's PUBLISH/SUBSCRIBE.
// When a networked bus loses its connection, it says so once, reconnects
// with a bounded backoff and then hands its subscribers a [KindResync]
// event, since events published meanwhile may have been missed.
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// Kind says what changed.
type Kind string

const (
	// KindGlobal: the global passthrough list changed.
	KindGlobal Kind = "global"
	// KindUpstream: an upstream was created, changed (its list, credentials,
	// URL…) or deleted; Event.ID names it.
	KindUpstream Kind = "upstream"
	// KindCatalogue: an upstream's catalogue (tools, resources, prompts) was
	// read again; Event.ID names the upstream.
	KindCatalogue Kind = "catalogue"
	// KindRevocation: a client token or a subject's tokens were revoked, or
	// a revocation lifted: read the revocations again.
	KindRevocation Kind = "revocation"
	// KindResync: events may have been missed (the bus reconnected): read
	// everything again. A bus delivers it to its own subscribers; anyone may
	// also publish it.
	KindResync Kind = "resync"
)

// known reports whether k is one of the kinds above.
func (k Kind) known() bool {
	switch k {
	case KindGlobal, KindUpstream, KindCatalogue, KindResync, KindRevocation:
		return true
	}
	return false
}

// Event is one change notification, sent between instances as JSON.
type Event struct {
	Kind Kind `json:"kind"`
	// ID names the upstream for KindUpstream and KindCatalogue.
	ID string `json:"id,omitempty"`
	// Version is the upstream record's store version the change made, for
	// KindUpstream and KindCatalogue (0 when unknown, and for a deleted
	// upstream): an instance that already has it, or a newer one, skips
	// the event, so an older record never replaces a newer one.
	Version int64 `json:"version,omitempty"`
	// Origin is the id of the instance that published the event (the bus
	// sets it), or of the instance itself for a KindResync it delivers
	// after reconnecting.
	Origin string `json:"origin"`
}

// Bus delivers events to the subscribers of every instance.
type Bus interface {
	// Publish sets e.Origin to this instance's id and sends e to every
	// instance. It returns once this instance's subscribers have handled e,
	// so the change is in force here when it returns, and the backend has
	// accepted it for the others. When the backend cannot be reached, this
	// instance's subscribers still get e and Publish returns the error (the
	// change is in the database anyway; the others' TTL catches up). A
	// handler must not call Publish: it would wait for itself until ctx ends.
	Publish(ctx context.Context, e Event) error
	// Subscribe adds a handler. Handlers run one event at a time, in the
	// order the bus received the events, on a goroutine of the bus; they
	// must not block long, since the next event waits for them.
	Subscribe(handler func(Event))
	// Connected reports whether the bus is connected to its backend now
	// (always true for a local bus), for readiness and metrics.
	Connected() bool
	// InstanceID is this instance's id, the Origin of the events it
	// publishes.
	InstanceID() string
	// Close stops every goroutine the bus started and closes its
	// connections. It is safe to call more than once.
	Close() error
}

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("bus: closed")

// newInstanceID returns an id for this bus: the host name, for people
// reading logs, and random bytes, since one host may run several instances.
func newInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "mcpgate"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return host + "-" + hex.EncodeToString(b)
}

// stamp checks e and sets its Origin.
func stamp(e Event, origin string) (Event, error) {
	if !e.Kind.known() {
		return e, fmt.Errorf("bus: unknown event kind %q", e.Kind)
	}
	if (e.Kind == KindUpstream || e.Kind == KindCatalogue) && e.ID == "" {
		return e, fmt.Errorf("bus: a %s event names an upstream; ID is empty", e.Kind)
	}
	e.Origin = origin
	return e, nil
}
