package frontdoor

import (
	"bufio"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// event is one server-sent event as a client reads it.
type event struct {
	name    string // "" for a comment
	data    string
	comment string
}

// readEvent reads the next event or comment from an event stream, as the
// SSE specification has a client do it: data lines joined with newlines.
func readEvent(br *bufio.Reader) (event, error) {
	var e event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if e.name == "" && data == nil && e.comment == "" {
				continue
			}
			e.data = strings.Join(data, "\n")
			return e, nil
		case strings.HasPrefix(line, ":"):
			e.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event:"):
			e.name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
}

// TestEventKeepsMultiLineDataFramed: a pretty-printed raw result, forwarded
// byte for byte, still arrives as one event whose data is the whole message.
func TestEventKeepsMultiLineDataFramed(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &sseWriter{w: rec, flusher: rec}
	msg := "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\r\n  \"a\": 1,\n  \"b\": \"x\"\r}}"
	if err := sw.event("message", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = sw.comment("keepalive")
	br := bufio.NewReader(strings.NewReader(rec.Body.String()))
	e, err := readEvent(br)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(msg)
	if e.name != "message" || e.data != want {
		t.Errorf("read event %q with data %q, want message with %q; the stream was %q", e.name, e.data, want, rec.Body.String())
	}
	if e, err := readEvent(br); err != nil || e.comment != "keepalive" {
		t.Errorf("next: %+v %v, want the keep-alive comment", e, err)
	}
	if _, err := readEvent(br); err != io.EOF {
		t.Errorf("more after the comment: %v", err)
	}
}
