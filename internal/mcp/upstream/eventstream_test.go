package upstream

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestEventReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string // "name:data"
	}{
		{"one event", "event: message\ndata: {}\n\n", []string{"message:{}"}},
		{"default name", "data: x\n\n", []string{"message:x"}},
		{"CRLF", "event: message\r\ndata: a\r\n\r\ndata: b\r\n\r\n", []string{"message:a", "message:b"}},
		{"lone CR", "data: a\rdata: b\r\r", []string{"message:a\nb"}},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\n", []string{"message:{\"a\":\n1}"}},
		{"comments and keep-alives", ": ping\n\n:\ndata: x\n: more\n\n", []string{"message:x"}},
		{"no space after colon", "event:endpoint\ndata:/messages?s=1\n\n", []string{"endpoint:/messages?s=1"}},
		{"only one space is dropped", "data:  two\n\n", []string{"message: two"}},
		{"an event without data is not dispatched", "event: prime\nid: 1\n\nevent: x\ndata: y\n\n", []string{"x:y"}},
		{"empty data is dispatched empty", "event: prime\ndata: \n\n", []string{"prime:"}},
		{"name does not leak to the next event", "event: a\ndata: 1\n\ndata: 2\n\n", []string{"a:1", "message:2"}},
		{"unknown fields and retry ignored", "retry: 10\nfoo: bar\ndata: x\n\n", []string{"message:x"}},
		{"field without colon", "data\n\n", []string{"message:"}},
		{"BOM", "\xEF\xBB\xBFdata: x\n\n", []string{"message:x"}},
		{"unterminated event is discarded", "data: a\n\ndata: b\n", []string{"message:a"}},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\n", []string{"message:a"}},
	}
	for _, tt := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"whole", func(r io.Reader) io.Reader { return r }},
			{"byte by byte", iotest.OneByteReader},
		} {
			t.Run(tt.name+"/"+reader.name, func(t *testing.T) {
				r := newEventReader(reader.wrap(strings.NewReader(tt.input)), 1<<10)
				var got []string
				for {
					ev, err := r.next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatalf("next: %v", err)
					}
					got = append(got, ev.name+":"+string(ev.data))
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
					t.Errorf("events = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestEventReaderBoundsEvents(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"one long line", "data: " + strings.Repeat("x", 2000) + "\n\n"},
		{"many lines", strings.Repeat("data: "+strings.Repeat("x", 100)+"\n", 20) + "\n"},
		{"a long line that never ends", strings.Repeat("x", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newEventReader(strings.NewReader(tt.input), 1<<10)
			_, err := r.next()
			if !errors.Is(err, errEventTooLarge) {
				t.Errorf("next = %v, want errEventTooLarge", err)
			}
		})
	}
	// Just under the bound is fine.
	r := newEventReader(strings.NewReader("data: "+strings.Repeat("x", 1<<10)+"\n\n"), 1<<10)
	if ev, err := r.next(); err != nil || len(ev.data) != 1<<10 {
		t.Errorf("an event of exactly the bound: %d bytes, %v", len(ev.data), err)
	}
}

// chunkReader returns its input n bytes at a time, as a slow network does.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestEventReaderReadsADrippedLineInLinearTime(t *testing.T) {
	// 8 MiB in 256-byte pieces: rescanning the pending line after every
	// piece would read ~128 GiB; resuming reads 8 MiB.
	line := "data: " + strings.Repeat("x", 8<<20) + "\n\n"
	done := make(chan error, 1)
	go func() {
		r := newEventReader(&chunkReader{data: []byte(line), n: 256}, MaxMessageSize)
		ev, err := r.next()
		if err == nil && len(ev.data) != 8<<20 {
			err = fmt.Errorf("event of %d bytes", len(ev.data))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reading a dripped 8 MiB line takes quadratic time")
	}
}
