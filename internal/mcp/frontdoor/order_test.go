package frontdoor

import (
	"context"
	"errors"
	"testing"
	"time"
)

// orderWaitBound bounds the waits below that must end.
const orderWaitBound = 5 * time.Second

// returnsAtOnce reports whether wait returns nil within a moment; it is
// cancelled otherwise.
func returnsAtOnce(wait func(context.Context) error) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	return wait(ctx) == nil
}

// TestArrivalsHoldRequestsForEarlierNotesOnly: a request waits for the
// notes that arrived before it and for no other, and never for another
// request; notes take their turns in arrival order.
func TestArrivalsHoldRequestsForEarlierNotesOnly(t *testing.T) {
	var o arrivals
	early := o.arrive(false)
	first := o.arrive(true)
	call := o.arrive(false)
	second := o.arrive(true)
	laterCall := o.arrive(false)

	if !returnsAtOnce(func(ctx context.Context) error { return o.turn(ctx, first) }) {
		t.Fatal("the first note waits for its turn with nothing before it")
	}
	if returnsAtOnce(func(ctx context.Context) error { return o.turn(ctx, second) }) {
		t.Fatal("the second note's turn came before the first note was done")
	}
	if returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, call) }) {
		t.Fatal("a request went on before the note that arrived before it was done")
	}
	if !returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, early) }) {
		t.Fatal("a request waits for notes that arrived after it")
	}

	// The first note done: the call behind it goes on, and the second
	// note's turn comes; the later call still waits for the second note.
	released := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), orderWaitBound)
		defer cancel()
		released <- o.requests(ctx, call)
	}()
	o.noteDone(first)
	if err := <-released; err != nil {
		t.Fatalf("the request behind the first note was not released once it was done: %v", err)
	}
	if !returnsAtOnce(func(ctx context.Context) error { return o.turn(ctx, second) }) {
		t.Fatal("the second note's turn did not come once the first was done")
	}
	if returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, laterCall) }) {
		t.Fatal("the later request went on before the note that arrived before it was done")
	}
	o.noteDone(second)
	if !returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, laterCall) }) {
		t.Fatal("the later request still waits once every note before it is done")
	}
}

// TestArrivalsANoteGivenUpHoldsNothingItDidNotArriveBefore: a note given
// up while waiting for its turn (its client went away) is done, but the
// requests after it still wait for the notes before it.
func TestArrivalsANoteGivenUpHoldsNothingItDidNotArriveBefore(t *testing.T) {
	var o arrivals
	slow := o.arrive(true)
	givenUp := o.arrive(true)
	call := o.arrive(false)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.turn(ctx, givenUp); !errors.Is(err, context.Canceled) {
		t.Fatalf("turn with an ended context = %v, want context.Canceled", err)
	}
	o.noteDone(givenUp)
	if returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, call) }) {
		t.Fatal("a request went on while a note before it was still on its way")
	}
	o.noteDone(slow)
	if !returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, call) }) {
		t.Fatal("a request still waits once every note before it is done or given up")
	}
	if !returnsAtOnce(func(ctx context.Context) error { return o.requests(ctx, o.arrive(false)) }) {
		t.Fatal("a request with no note before it waits")
	}
}
