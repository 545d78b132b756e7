package frontdoor

import (
	"github.com/mcpgate/mcpgate/internal/mcptest"

	"bufio"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEventKeepsMultiLineDataFramed: a pretty-printed raw result, forwarded
// byte for byte, still arrives as one event whose data is the whole message.
func TestEventKeepsMultiLineDataFramed(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := newSSEWriter(rec, 0)
	msg := "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\r\n  \"a\": 1,\n  \"b\": \"x\"\r}}"
	if err := sw.event("message", []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = sw.comment("keepalive")
	br := bufio.NewReader(strings.NewReader(rec.Body.String()))
	e, err := mcptest.ReadEvent(br)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(msg)
	if e.Name != "message" || e.Data != want {
		t.Errorf("read event %q with data %q, want message with %q; the stream was %q", e.Name, e.Data, want, rec.Body.String())
	}
	if e, err := mcptest.ReadEvent(br); err != nil || e.Comment != "keepalive" {
		t.Errorf("next: %+v %v, want the keep-alive comment", e, err)
	}
	if _, err := mcptest.ReadEvent(br); err != io.EOF {
		t.Errorf("more after the comment: %v", err)
	}
}
