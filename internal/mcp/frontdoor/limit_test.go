package frontdoor

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// limitServer serves Streamable HTTP at /mcp and legacy SSE at /sse and
// /message on a loopback port, sharing one ClientLimit; the client is who
// the X-Client header names.
type limitServer struct {
	url        string
	handler    *testHandler
	streamable *Streamable
	sse        *SSE
}

func startLimitServer(t *testing.T, perClient, maxSessions int) *limitServer {
	t.Helper()
	h := newTestHandler()
	limit := NewClientLimit(perClient)
	principal := func(r *http.Request) string { return r.Header.Get("X-Client") }
	ls := &limitServer{handler: h,
		streamable: NewStreamable(StreamableConfig{Handler: h, RequestID: func(*http.Request) string { return "" }, Principal: principal, Limit: limit, MaxSessions: maxSessions}),
		sse:        NewSSE(StreamConfig{Handler: h, Policy: testPolicy(), Principal: principal, Limit: limit, MaxSessions: maxSessions})}
	mux := http.NewServeMux()
	mux.Handle("/mcp", ls.streamable)
	mux.HandleFunc("/sse", ls.sse.ServeStream)
	mux.HandleFunc(MessagePath, ls.sse.ServeMessage)
	srv := httptest.NewServer(mux)
	ls.url = srv.URL
	t.Cleanup(func() {
		h.unblock()
		ls.streamable.Close()
		ls.sse.Close()
		srv.Close()
	})
	return ls
}

// post sends one message to /mcp as client, on session (none: ""), and
// returns the status, the session id answered and the body.
func (ls *limitServer) post(t *testing.T, client, session, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", ls.url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Client", client)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b)
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// open initializes a /mcp session as client and returns its id.
func (ls *limitServer) open(t *testing.T, client string) string {
	t.Helper()
	status, id, body := ls.post(t, client, "", initializeBody)
	if status != http.StatusOK || id == "" {
		t.Fatalf("initialize as %s: %d %s", client, status, body)
	}
	return id
}

// alive reports whether client's session still answers a ping; the body
// of a refusal is returned too.
func (ls *limitServer) alive(t *testing.T, client, session string) (bool, string) {
	t.Helper()
	status, _, body := ls.post(t, client, session, ping(9))
	return status == http.StatusOK, body
}

// TestClientLimitEndsTheClientsOwnLeastRecentlyUsedSession: a client at
// MAX_SESSIONS_PER_CLIENT that opens one more loses its own least recently
// used session (whose next request is 404 saying why), never another
// client's; a session on another front door counts too; and another
// client still gets its sessions however hard the first hammers.
func TestClientLimitEndsTheClientsOwnLeastRecentlyUsedSession(t *testing.T) {
	ls := startLimitServer(t, 3, 0)
	b := ls.open(t, "b")
	s1, s2, s3 := ls.open(t, "a"), ls.open(t, "a"), ls.open(t, "a")
	if ok, body := ls.alive(t, "a", s1); !ok { // s1 is now the most recently used
		t.Fatalf("ping on a's first session: %s", body)
	}
	s4 := ls.open(t, "a")
	ok, body := ls.alive(t, "a", s2)
	if ok || !strings.Contains(body, "MAX_SESSIONS_PER_CLIENT") || !strings.Contains(body, "least recently used") || !strings.Contains(body, `"error"`) {
		t.Errorf("a's least recently used session after a fourth opened: alive %v, %s; want 404 saying why it ended", ok, body)
	}
	for _, s := range []string{s1, s3, s4} {
		if ok, body := ls.alive(t, "a", s); !ok {
			t.Errorf("a's session %s ended: %s; only the least recently used should have", s, body)
		}
	}

	// Hammering: a opens many more; it never holds more than 3, and b keeps
	// its session and gets new ones.
	for range 20 {
		ls.open(t, "a")
	}
	if n := ls.streamable.Sessions(); n != 3+1 {
		t.Errorf("%d sessions held, want a's 3 and b's 1", n)
	}
	if ok, body := ls.alive(t, "b", b); !ok {
		t.Errorf("b's session ended while a hammered: %s", body)
	}
	ls.open(t, "b")

	// A legacy SSE session of a's takes the place of a's least recently
	// used /mcp session.
	openSSE := func() (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequest("GET", ls.url+"/sse", nil)
		req.Header.Set("X-Client", "a")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET /sse as a at its limit: %d %s", resp.StatusCode, b)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := mcptest.ReadEvent(br); err != nil {
			t.Fatal(err)
		}
		return resp, br
	}
	_, br := openSSE()
	if n := ls.streamable.Sessions(); n != 2+2 {
		t.Errorf("%d /mcp sessions held with a's SSE session open, want a's 2 and b's 2", n)
	}
	// Newer /mcp sessions of a's take the places of its /mcp sessions, not
	// of the SSE session: an open stream is a session in use. Newer SSE
	// sessions take its place in turn, once a has only those: its stream
	// ends saying why.
	for range 3 {
		ls.open(t, "a")
	}
	if n := ls.streamable.Sessions(); n != 2+2 {
		t.Errorf("%d /mcp sessions held after a opened 3 more with its SSE session open, want a's 2 and b's 2", n)
	}
	for range 3 {
		openSSE()
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(br)
		rest <- string(b)
	}()
	select {
	case tail := <-rest:
		if !strings.Contains(tail, "MAX_SESSIONS_PER_CLIENT") {
			t.Errorf("a's SSE stream ended with %q, want it to say why", tail)
		}
	case <-time.After(5 * time.Second):
		t.Error("a's first SSE session outlived 3 newer SSE sessions of a's")
	}
}

// TestClientLimitRefusesWhenEverySessionIsBusy: sessions with a call in
// flight are not ended to make room; when all of a client's are busy its
// new session is refused with 429 naming the limit, and another client
// still gets one.
func TestClientLimitRefusesWhenEverySessionIsBusy(t *testing.T) {
	ls := startLimitServer(t, 2, 0)
	busy := []string{ls.open(t, "a"), ls.open(t, "a")}
	done := make(chan struct{}, len(busy))
	for _, s := range busy {
		go func() {
			defer func() { done <- struct{}{} }()
			ls.post(t, "a", s, call(5, "block"))
		}()
	}
	testenv.WaitFor(t, 5*time.Second, "both of a's calls to be in flight", func() bool {
		blocked, _, _ := ls.handler.counts()
		return blocked == len(busy)
	})
	status, _, body := ls.post(t, "a", "", initializeBody)
	if status != http.StatusTooManyRequests || !strings.Contains(body, "MAX_SESSIONS_PER_CLIENT") || !strings.Contains(body, `"error"`) {
		t.Errorf("initialize by a client whose every session is busy: %d %s, want 429 with a JSON-RPC error naming the limit", status, body)
	}
	ls.open(t, "b")
	ls.handler.unblock()
	for range busy {
		<-done
	}
	for _, s := range busy {
		if ok, body := ls.alive(t, "a", s); !ok {
			t.Errorf("a busy session of a's was ended: %s", body)
		}
	}
}

// TestGlobalSessionCapStillApplies: below every client's own limit, the
// front door's MaxSessions still bounds the sessions it holds.
func TestGlobalSessionCapStillApplies(t *testing.T) {
	ls := startLimitServer(t, 10, 2)
	ls.open(t, "a")
	ls.open(t, "b")
	status, _, body := ls.post(t, "c", "", initializeBody)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "too many sessions") {
		t.Errorf("initialize beyond MaxSessions: %d %s, want 503", status, body)
	}
}
