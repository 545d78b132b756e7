package frontdoor

import (
	"github.com/mcpgate/mcpgate/internal/mcptest"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/passthrough"
)

// testHandler stands in for the dispatcher. It answers:
//   - headers: the Inbound.Header it was given, as a JSON object;
//   - notify: after two notifications/progress through Inbound.Notify;
//   - block: when release is closed, or with an error when the call's
//     context ends (it counts the calls blocked at once);
//   - anything else: an empty result.
type testHandler struct {
	release     chan struct{}
	releaseOnce sync.Once

	mu          sync.Mutex
	blocked     int
	maxBlocked  int
	cancelled   int
	lastHeaders http.Header
}

func newTestHandler() *testHandler { return &testHandler{release: make(chan struct{})} }

func (h *testHandler) Handle(ctx context.Context, msg jsonrpc.Message, in dispatch.Inbound) (jsonrpc.Message, bool) {
	if msg.IsNotification() {
		return jsonrpc.Message{}, false
	}
	resp := jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: msg.ID, Result: json.RawMessage(`{}`)}
	switch msg.Method {
	case "headers":
		h.mu.Lock()
		h.lastHeaders = in.Header.Clone()
		h.mu.Unlock()
		resp.Result, _ = json.Marshal(in.Header)
	case "notify":
		for i := 1; i <= 2; i++ {
			n, _ := jsonrpc.NewNotification("notifications/progress", map[string]any{"progressToken": "t", "progress": i})
			in.Notify(n)
		}
	case "block":
		h.mu.Lock()
		h.blocked++
		h.maxBlocked = max(h.maxBlocked, h.blocked)
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			h.blocked--
			h.mu.Unlock()
		}()
		select {
		case <-h.release:
		case <-ctx.Done():
			h.mu.Lock()
			h.cancelled++
			h.mu.Unlock()
			return jsonrpc.NewError(msg.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "cancelled")), true
		}
	}
	return resp, true
}

// unblock lets every blocked call, and every later one, answer.
func (h *testHandler) unblock() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *testHandler) counts() (blocked, maxBlocked, cancelled int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.blocked, h.maxBlocked, h.cancelled
}

// testPolicy is the passthrough policy of a gateway that authenticates its
// clients with Authorization.
func testPolicy() *passthrough.Policy {
	s := passthrough.DefaultSettings()
	s.EnableHeaderPassthrough = true
	return passthrough.NewPolicy(s)
}

// testServer serves a legacy SSE handler at /sse and /message and a
// WebSocket handler at /ws on a loopback port.
type testServer struct {
	url     string
	handler *testHandler
	sse     *SSE
	ws      *WebSocket
}

func startTestServer(t *testing.T, mod ...func(*WebSocketConfig)) *testServer {
	t.Helper()
	h := newTestHandler()
	cfg := WebSocketConfig{StreamConfig: StreamConfig{Handler: h, Policy: testPolicy()}}
	for _, m := range mod {
		m(&cfg)
	}
	ts := &testServer{handler: h, sse: NewSSE(cfg.StreamConfig), ws: NewWebSocket(cfg)}
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", ts.sse.ServeStream)
	mux.HandleFunc(MessagePath, ts.sse.ServeMessage)
	mux.Handle("/ws", ts.ws)
	srv := httptest.NewServer(mux)
	ts.url = srv.URL
	t.Cleanup(func() {
		h.unblock()
		ts.sse.Close()
		ts.ws.Close()
		srv.Close()
	})
	return ts
}

// sseClient is a legacy SSE client: its stream, read on a goroutine of its
// own, and the endpoint it posts to.
type sseClient struct {
	t        *testing.T
	base     string
	endpoint string
	body     io.ReadCloser
	events   chan mcptest.Event // closed at the end of the stream
}

func openSSE(t *testing.T, base string, header http.Header) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/sse", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /sse: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	c := &sseClient{t: t, base: base, body: resp.Body, events: make(chan mcptest.Event, 100)}
	done := make(chan struct{})
	br := bufio.NewReader(resp.Body)
	first, err := mcptest.ReadEvent(br)
	if err != nil || first.Name != "endpoint" {
		resp.Body.Close()
		t.Fatalf("first event %+v (%v), want endpoint", first, err)
	}
	c.endpoint = first.Data
	go func() {
		defer close(done)
		defer close(c.events)
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				return
			}
			c.events <- e
		}
	}()
	t.Cleanup(func() { c.close(); <-done })
	return c
}

func (c *sseClient) close() { c.body.Close() }

// post sends body to the session's endpoint and returns status and body.
func (c *sseClient) post(body string) (int, string) {
	c.t.Helper()
	return postTo(c.t, c.base+c.endpoint, body)
}

func postTo(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// next returns the next event (comments included); ok is false at the end
// of the stream.
func (c *sseClient) next() (mcptest.Event, bool) {
	c.t.Helper()
	select {
	case e, ok := <-c.events:
		return e, ok
	case <-time.After(5 * time.Second):
		c.t.Fatal("no event within 5s")
		return mcptest.Event{}, false
	}
}

// message returns the data of the next message event, skipping comments.
func (c *sseClient) message() string {
	c.t.Helper()
	for {
		e, ok := c.next()
		if !ok {
			c.t.Fatal("the stream ended")
		}
		if e.Name == "message" {
			return e.Data
		}
		if e.Name != "" {
			c.t.Fatalf("event %q, want message", e.Name)
		}
	}
}

func ping(id int) string { return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, id) }

func call(id int, method string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, id, method)
}

func mustNotification(t *testing.T, method string) jsonrpc.Message {
	t.Helper()
	n, err := jsonrpc.NewNotification(method, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharingFailuresAreLoggedOncePerMinute: while Redis is away every
// session's failure to share itself would log; one line a minute does,
// counting the others.
func TestSharingFailuresAreLoggedOncePerMinute(t *testing.T) {
	var out bytes.Buffer
	l := &sharingLog{logger: slog.New(slog.NewTextHandler(&out, nil))}
	for range 100 {
		l.warn("could not share", errors.New("redis: connection refused"))
	}
	if n := strings.Count(out.String(), "could not share"); n != 1 {
		t.Fatalf("%d lines for 100 failures within a minute, want 1:\n%s", n, out.String())
	}
	l.last.Store(time.Now().Add(-2 * sharingLogEvery).UnixNano())
	l.warn("could not share", errors.New("redis: connection refused"))
	if !strings.Contains(out.String(), "unlogged_since_last=99") {
		t.Errorf("the next line does not count the 99 unlogged failures:\n%s", out.String())
	}
}
