package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// event is one server-sent event. Only the fields MCP uses are kept.
type event struct {
	name string // the "event" field; "message" when the server sent none
	data []byte // the "data" lines joined with "\n"
}

// eventReader reads a text/event-stream as the WHATWG HTML standard
// ("Server-sent events", §9.2.6) describes it: lines end in CRLF, LF or a
// lone CR; a blank line dispatches the event; lines starting with ':' are
// comments (keep-alives); several data lines are joined with "\n"; an event
// without data is not dispatched; an event cut off by the end of the stream is
// discarded. Every event is bounded by max bytes of data, so a hostile or
// broken upstream gets an error, not our memory.
type eventReader struct {
	sc      *bufio.Scanner
	max     int
	skipLF  bool // the previous line ended in a CR at the end of the buffer
	first   bool // no line read yet (a leading BOM is dropped)
	scanned int  // bytes of the pending line known to hold no line end
}

func newEventReader(r io.Reader, max int) *eventReader {
	er := &eventReader{max: max, first: true}
	er.sc = bufio.NewScanner(r)
	// A single line may be as long as the largest event, plus "data: " and
	// the line end.
	// (bufio.Scanner's bound is the larger of max and the initial buffer's
	// capacity, hence the min.) It starts small and grows as lines need.
	er.sc.Buffer(make([]byte, 0, min(4<<10, max+64)), max+64)
	er.sc.Split(er.splitLine)
	return er
}

// splitLine is a bufio.SplitFunc for the three line ends of the standard.
// The Scanner hands it the whole pending line again after every read, so it
// resumes where it stopped: a line dripped in small pieces costs linear time,
// not quadratic.
func (r *eventReader) splitLine(data []byte, atEOF bool) (int, []byte, error) {
	if r.skipLF && len(data) > 0 {
		r.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil // the LF of a CRLF split across two reads
		}
	}
	if i := bytes.IndexAny(data[r.scanned:], "\r\n"); i >= 0 {
		i += r.scanned
		r.scanned = 0
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		// A CR at the end of what we have: the line is complete either way;
		// swallow the LF if it is the next byte to arrive.
		r.skipLF = true
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		r.scanned = 0
		return len(data), data, nil // an unterminated last line
	}
	r.scanned = len(data)
	return 0, nil, nil
}

// errEventTooLarge reports an event above the size bound.
var errEventTooLarge = errors.New("event exceeds the maximum message size")

// next returns the next event. At the end of the stream it returns io.EOF.
func (r *eventReader) next() (event, error) {
	var (
		name    string
		data    []byte
		hasData bool
	)
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if r.first {
			r.first = false
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
		}
		if len(line) == 0 {
			if !hasData {
				name = "" // an event without data is not dispatched
				continue
			}
			if name == "" {
				name = "message"
			}
			return event{name: name, data: bytes.TrimSuffix(data, []byte("\n"))}, nil
		}
		if line[0] == ':' {
			continue // a comment, usually a keep-alive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if len(data)+len(value)+1 > r.max+1 {
				return event{}, fmt.Errorf("read event stream: %w (%d bytes)", errEventTooLarge, r.max)
			}
			data = append(data, value...)
			data = append(data, '\n')
			hasData = true
		}
		// "id" and "retry" serve reconnection, which mcpgate does not do on
		// these streams; other fields are ignored, as the standard says.
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return event{}, fmt.Errorf("read event stream: %w (%d bytes)", errEventTooLarge, r.max)
		}
		return event{}, fmt.Errorf("read event stream: %w", err)
	}
	return event{}, io.EOF
}
