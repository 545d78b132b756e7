package frontdoor

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestSSEEndpointThenAnswersOnTheStream: the stream names the endpoint
// first; a POST there is accepted at once and answered on the stream.
func TestSSEEndpointThenAnswersOnTheStream(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, nil)
	if !regexp.MustCompile(`^/message\?session_id=[0-9a-f]{32}$`).MatchString(c.endpoint) {
		t.Errorf("endpoint %q, want /message?session_id=<id>", c.endpoint)
	}
	if n := ts.sse.Sessions(); n != 1 {
		t.Errorf("Sessions() = %d, want 1", n)
	}
	if status, body := c.post(ping(7)); status != http.StatusAccepted || body != "" {
		t.Errorf("POST: %d %q, want 202 and no body", status, body)
	}
	if got := c.message(); got != `{"jsonrpc":"2.0","id":7,"result":{}}` {
		t.Errorf("answer on the stream: %s", got)
	}
}

// TestSSEMessageErrors: what a POST that cannot be taken is answered.
func TestSSEMessageErrors(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, nil)
	for _, tt := range []struct {
		name, url, body string
		status          int
		want            []string
	}{
		{"no session_id", ts.url + MessagePath, ping(1), 400, []string{`"code":-32600`, "session_id"}},
		{"unknown session", ts.url + MessagePath + "?session_id=feedface", ping(1), 404, []string{`"code":-32600`, `session \"feedface\" not found`}},
		{"malformed JSON", ts.url + c.endpoint, `{"jsonrpc":"2.0","id":1,`, 400, []string{`"code":-32700`}},
		{"not JSON-RPC", ts.url + c.endpoint, `{"id":1,"method":"ping"}`, 400, []string{`"code":-32600`}},
	} {
		status, body := postTo(t, tt.url, tt.body)
		if status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.status)
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s lacks %s", tt.name, body, w)
			}
		}
	}
	for path, method := range map[string]string{MessagePath: "GET", "/sse": "POST"} {
		req, _ := http.NewRequest(method, ts.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405", method, path, resp.StatusCode)
		}
	}
	// The stream is still fine.
	c.post(ping(2))
	if got := c.message(); !strings.Contains(got, `"id":2`) {
		t.Errorf("answer after the errors: %s", got)
	}
}

// TestSSEBatchIsAnsweredAsOneBatch: a batch's answers go out as one event
// holding an array, notifications unanswered.
func TestSSEBatchIsAnsweredAsOneBatch(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, nil)
	if status, body := c.post(`[` + ping(1) + `,{"jsonrpc":"2.0","method":"notifications/initialized"},` + ping(2) + `]`); status != 202 {
		t.Fatalf("POST batch: %d %s", status, body)
	}
	if got, want := c.message(), `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]`; got != want {
		t.Errorf("batch answer %s, want %s", got, want)
	}
}

// TestSSESessionHeadersAreTheOpeningRequests: every call of the session
// sees the GET's headers as captured (never-forwarded ones dropped), not
// the POST's (spec §4).
func TestSSESessionHeadersAreTheOpeningRequests(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, http.Header{"X-Tenant-Id": {"acme"}, "Authorization": {"Bearer mcpgate-token"},
		"Mcp-Session-Id": {"client-session"}})
	req, _ := http.NewRequest("POST", ts.url+c.endpoint, strings.NewReader(call(1, "headers")))
	req.Header.Set("X-Tenant-Id", "from-the-post")
	req.Header.Set("X-Post-Only", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var answer struct {
		Result http.Header `json:"result"`
	}
	if err := json.Unmarshal([]byte(c.message()), &answer); err != nil {
		t.Fatal(err)
	}
	h := answer.Result
	if h.Get("X-Tenant-Id") != "acme" || h.Get("X-Post-Only") != "" {
		t.Errorf("the call saw X-Tenant-Id %q, X-Post-Only %q; want the GET's acme and nothing", h.Get("X-Tenant-Id"), h.Get("X-Post-Only"))
	}
	for _, never := range []string{"Authorization", "Mcp-Session-Id"} {
		if v := h.Get(never); v != "" {
			t.Errorf("the session kept %s: %q", never, v)
		}
	}
}

// TestSSENotificationsDuringACall: what an upstream sends while answering
// reaches the stream before the answer.
func TestSSENotificationsDuringACall(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, nil)
	c.post(call(5, "notify"))
	for i, want := range []string{`"progress":1`, `"progress":2`, `"id":5,"result"`} {
		if got := c.message(); !strings.Contains(got, want) {
			t.Errorf("message %d: %s, want %s", i, got, want)
		}
	}
}

// TestSSEKeepAliveAndIdleTimeout: an idle stream gets keep-alive comments;
// POSTs keep the session alive; without them it ends after IdleTimeout,
// saying why, and is forgotten.
func TestSSEKeepAliveAndIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	ts := startTestServer(t, func(c *WebSocketConfig) { c.KeepAlive = 30 * time.Millisecond; c.IdleTimeout = idle })
	c := openSSE(t, ts.url, nil)
	start := time.Now()
	for time.Since(start) < 2*idle {
		if status, _ := c.post(ping(1)); status != 202 {
			t.Fatalf("POST %s after open, within the idle timeout of the last: %d", time.Since(start), status)
		}
		time.Sleep(idle / 4)
	}
	var keepAlives int
	for {
		e, ok := c.next()
		if !ok {
			t.Fatal("the stream ended without saying why")
		}
		if e.Comment == "keepalive" {
			keepAlives++
		}
		if strings.HasPrefix(e.Comment, "closing: ") {
			if !strings.Contains(e.Comment, "SESSION_IDLE_TIMEOUT") {
				t.Errorf("closing comment %q does not name SESSION_IDLE_TIMEOUT", e.Comment)
			}
			break
		}
	}
	if keepAlives < 2 {
		t.Errorf("%d keep-alive comments, want some", keepAlives)
	}
	if _, ok := c.next(); ok {
		t.Error("the stream goes on after closing")
	}
	testenv.WaitFor(t, 5*time.Second, "the session to be forgotten", func() bool { return ts.sse.Sessions() == 0 })
	if status, body := c.post(ping(2)); status != http.StatusNotFound {
		t.Errorf("POST after the idle timeout: %d %s, want 404", status, body)
	}
}

// TestSSEBroadcastAndClose: Broadcast reaches every stream; Close ends them
// all, saying why, and refuses new ones.
func TestSSEBroadcastAndClose(t *testing.T) {
	ts := startTestServer(t)
	a, b := openSSE(t, ts.url, nil), openSSE(t, ts.url, nil)
	ts.sse.Broadcast(mustNotification(t, "notifications/tools/list_changed"))
	for _, c := range []*sseClient{a, b} {
		if got := c.message(); got != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` {
			t.Errorf("broadcast: %s", got)
		}
	}
	ts.sse.Close()
	if n := ts.sse.Sessions(); n != 0 {
		t.Errorf("Sessions() = %d after Close", n)
	}
	for _, c := range []*sseClient{a, b} {
		e, _ := c.next()
		if e.Comment != "closing: mcpgate is shutting down" {
			t.Errorf("last event %+v, want the closing comment", e)
		}
		if _, ok := c.next(); ok {
			t.Error("the stream goes on after Close")
		}
	}
	resp, err := http.Get(ts.url + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /sse after Close: %d, want 503", resp.StatusCode)
	}
}

// TestSSEClientGoneReleasesTheSession: dropping the stream cancels the
// session's calls in flight and forgets it.
func TestSSEClientGoneReleasesTheSession(t *testing.T) {
	ts := startTestServer(t)
	c := openSSE(t, ts.url, nil)
	c.post(call(1, "block"))
	testenv.WaitFor(t, 5*time.Second, "the call to start", func() bool { blocked, _, _ := ts.handler.counts(); return blocked == 1 })
	c.close()
	testenv.WaitFor(t, 5*time.Second, "the session to be released", func() bool { return ts.sse.Sessions() == 0 })
	if blocked, _, cancelled := ts.handler.counts(); blocked != 0 || cancelled != 1 {
		t.Errorf("after the client left: %d calls blocked, %d cancelled; want 0 and 1", blocked, cancelled)
	}
}
