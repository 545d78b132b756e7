package upstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// transportCase is one way to reach an upstream: the transport and a server
// speaking it.
type transportCase struct {
	name      string
	transport upstream.Transport
	start     func(testing.TB, ...mcptest.Option) *mcptest.Server
}

func transports() []transportCase {
	return []transportCase{
		{"streamable", upstream.StreamableHTTP, mcptest.NewStreamableHTTP},
		{"sse", upstream.SSE, mcptest.NewSSE},
	}
}

// testContext bounds every test step: nothing here may hang.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, srv *mcptest.Server, tr upstream.Transport, headers http.Header, opts ...func(*upstream.Options)) *upstream.Client {
	t.Helper()
	return connectWith(t, upstream.Options{URL: srv.URL, Transport: tr, Headers: upstream.FixedHeaders(headers)}, opts...)
}

// connectWith connects with o, changed by opts, and closes the Client when
// the test ends.
func connectWith(t *testing.T, o upstream.Options, opts ...func(*upstream.Options)) *upstream.Client {
	t.Helper()
	for _, f := range opts {
		f(&o)
	}
	c, err := upstream.Connect(testContext(t), o)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// toolCall builds a tools/call request; token, if not nil, is its progress
// token.
func toolCall(t testing.TB, id, name string, args any, token any) jsonrpc.Message {
	t.Helper()
	params := map[string]any{"name": name, "arguments": args}
	if token != nil {
		params["_meta"] = map[string]any{"progressToken": token}
	}
	m, err := jsonrpc.NewRequest(json.RawMessage(id), "tools/call", params)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// text returns the first text content of a tools/call result.
func text(t testing.TB, resp jsonrpc.Message) string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("JSON-RPC error: %v", resp.Error)
	}
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(resp.Result, &r); err != nil || len(r.Content) == 0 {
		t.Fatalf("not a tool result with content: %s (%v)", resp.Result, err)
	}
	return r.Content[0].Text
}

func count(srv *mcptest.Server, method string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.JSONRPCMethod == method {
			n++
		}
	}
	return n
}

func TestCallEcho(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, tc.start(t), tc.transport, nil)
			resp, err := c.Call(testContext(t), toolCall(t, `"req-7"`, "echo", map[string]string{"text": "hi"}, nil), nil, nil)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if got := string(resp.ID); got != `"req-7"` {
				t.Errorf("response id = %s, want the caller's \"req-7\"", got)
			}
			if got := text(t, resp); got != "hi" {
				t.Errorf("echo = %q, want %q", got, "hi")
			}
		})
	}
}

func TestConnectNegotiatesThePinnedVersion(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t, mcptest.WithName("pinned"))
			c := connect(t, srv, tc.transport, nil)
			if got := c.ProtocolVersion(); got != upstream.ProtocolVersion {
				t.Errorf("ProtocolVersion() = %q, want %q", got, upstream.ProtocolVersion)
			}
			var init struct {
				ProtocolVersion string `json:"protocolVersion"`
				ServerInfo      struct{ Name string }
			}
			if err := json.Unmarshal(c.InitializeResult(), &init); err != nil || init.ServerInfo.Name != "pinned" {
				t.Errorf("InitializeResult() = %s (%v), want the server's, named pinned", c.InitializeResult(), err)
			}
			if !bytes.Contains(srv.Requests()[initializeIndex(t, srv)].Body, []byte(`"protocolVersion":"`+upstream.ProtocolVersion+`"`)) {
				t.Errorf("initialize did not ask for %s", upstream.ProtocolVersion)
			}
			if count(srv, "notifications/initialized") != 1 {
				t.Errorf("notifications/initialized sent %d times, want 1", count(srv, "notifications/initialized"))
			}
		})
	}
}

func initializeIndex(t *testing.T, srv *mcptest.Server) int {
	for i, r := range srv.Requests() {
		if r.JSONRPCMethod == "initialize" {
			return i
		}
	}
	t.Fatal("no initialize request")
	return 0
}

func TestConnectChecksTheAnsweredVersion(t *testing.T) {
	tests := []struct {
		version string
		ok      bool
	}{
		{"2025-06-18", true},
		{"2025-11-25", true},
		{"2025-03-26", true},
		{"2024-11-05", true},
		{"1999-01-01", false},
		{"2026-07-28", false},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			srv := mcptest.NewRaw(t, nil, mcptest.WithProtocolVersion(tt.version))
			c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL})
			if tt.ok {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				defer c.Close()
				if c.ProtocolVersion() != tt.version {
					t.Errorf("ProtocolVersion() = %q, want %q", c.ProtocolVersion(), tt.version)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Connect accepted an unsupported protocol version")
			}
			if !strings.Contains(err.Error(), tt.version) {
				t.Errorf("error %q does not name the version %s", err, tt.version)
			}
		})
	}
}

func TestCallReturnsTheResultByteForByte(t *testing.T) {
	// Unknown fields, an unknown content type, odd spacing, characters
	// encoding/json would escape: a typed client would lose some of it.
	result := json.RawMessage(`{ "content": [ {"type":"hologram","frames":[1, 2.50, 3e2],"x-vendor":{"html":"<b>&</b>"}},
		{"type":"text","text":"ok","annotations":{"futureField":true}} ],
	"isError": false, "unknownTop": {"nested": [true, null, "\u00e9"]} }`)
	srv := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		return jsonrpc.Message{Result: result}
	})
	c := connect(t, srv, upstream.StreamableHTTP, nil)
	resp, err := c.Call(testContext(t), toolCall(t, `"abc"`, "anything", map[string]any{}, nil), nil, nil)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if !bytes.Equal(resp.Result, result) {
		t.Errorf("result changed on the way:\n got %s\nwant %s", resp.Result, result)
	}
	if string(resp.ID) != `"abc"` {
		t.Errorf("id = %s, want \"abc\"", resp.ID)
	}
	// The upstream saw the client's own id, not the caller's.
	for _, r := range srv.Requests() {
		if r.JSONRPCMethod == "tools/call" && bytes.Contains(r.Body, []byte(`"abc"`)) {
			t.Errorf("the caller's id reached the upstream: %s", r.Body)
		}
	}
}

func TestJSONRPCErrorIsAResponse(t *testing.T) {
	srv := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
		return jsonrpc.NewError(nil, &jsonrpc.Error{Code: -32602, Message: "bad arguments", Data: json.RawMessage(`{"field":"x"}`)})
	})
	c := connect(t, srv, upstream.StreamableHTTP, nil)
	resp, err := c.Call(testContext(t), toolCall(t, `5`, "echo", nil, nil), nil, nil)
	if err != nil {
		t.Fatalf("Call: %v, want the error as a response", err)
	}
	if resp.Error == nil || resp.Error.Code != -32602 || string(resp.Error.Data) != `{"field":"x"}` || string(resp.ID) != "5" {
		t.Errorf("response = %+v, want the upstream's error with id 5", resp)
	}
}

func TestCallSendsExactlyItsHeaders(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, http.Header{"Authorization": {"Bearer upstream-key"}})
			given := http.Header{
				"X-Tenant-Id":          {"acme"},
				"Mcp-Session-Id":       {"evil"},
				"Content-Type":         {"text/plain"},
				"Mcp-Protocol-Version": {"1999-01-01"},
				"Accept":               {"image/png"},
			}
			given["mcp-session-id"] = []string{"evil-lowercase"} // not canonical: must go too
			before := given.Clone()
			resp, err := c.Call(testContext(t), toolCall(t, "1", "headers", map[string]any{}, nil), given, nil)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			var seen http.Header
			if err := json.Unmarshal([]byte(text(t, resp)), &seen); err != nil {
				t.Fatalf("headers tool: %v", err)
			}
			want := map[string]string{
				"X-Tenant-Id":          "acme",
				"Content-Type":         "application/json",
				"Mcp-Protocol-Version": upstream.ProtocolVersion,
				"Accept":               "application/json, text/event-stream",
			}
			for name, value := range want {
				if got := seen.Values(name); len(got) != 1 || got[0] != value {
					t.Errorf("%s = %q, want exactly %q", name, got, value)
				}
			}
			if seen.Get("Authorization") != "" {
				t.Errorf("the Connect headers leaked into a Call: Authorization = %q", seen.Get("Authorization"))
			}
			sid := seen.Values("Mcp-Session-Id")
			switch tc.transport {
			case upstream.StreamableHTTP:
				own := srv.LastHeader("notifications/initialized").Get("Mcp-Session-Id")
				if len(sid) != 1 || sid[0] != own || own == "" {
					t.Errorf("Mcp-Session-Id = %q, want the session's %q", sid, own)
				}
			case upstream.SSE:
				if len(sid) != 0 {
					t.Errorf("Mcp-Session-Id = %q on the legacy transport, want none", sid)
				}
			}
			if got := srv.LastHeader("initialize").Get("Authorization"); got != "Bearer upstream-key" {
				t.Errorf("initialize Authorization = %q, want the Connect header", got)
			}
			if got := srv.LastHeader("tools/call").Get("X-Tenant-Id"); got != "acme" {
				t.Errorf("recorded tools/call X-Tenant-Id = %q, want acme", got)
			}
			if fmt.Sprint(given) != fmt.Sprint(before) {
				t.Errorf("Call changed the caller's headers: %v, was %v", given, before)
			}
		})
	}
}

func TestConnectHeadersGoOnTheClientsOwnRequests(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, http.Header{"Authorization": {"Bearer upstream-key"}})
			if _, err := c.Call(testContext(t), toolCall(t, "1", "echo", map[string]string{"text": "x"}, nil), http.Header{"X-Trace-Id": {"t1"}}, nil); err != nil {
				t.Fatalf("Call: %v", err)
			}
			c.Close()
			for _, r := range srv.Requests() {
				own := r.JSONRPCMethod == "initialize" || r.JSONRPCMethod == "notifications/initialized" || r.Method != http.MethodPost
				if got := r.Header.Get("Authorization"); own && got != "Bearer upstream-key" {
					t.Errorf("%s %q: Authorization = %q, want the Connect header", r.Method, r.JSONRPCMethod, got)
				}
				if own && r.Header.Get("X-Trace-Id") != "" {
					t.Errorf("%s %q carries a Call's header", r.Method, r.JSONRPCMethod)
				}
			}
			if tc.transport == upstream.StreamableHTTP {
				var deleted bool
				for _, r := range srv.Requests() {
					deleted = deleted || r.Method == http.MethodDelete
				}
				if !deleted {
					t.Error("Close sent no DELETE")
				}
			}
		})
	}
}

func TestConcurrentCallsWithTheSameID(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, tc.start(t), tc.transport, nil)
			ctx := testContext(t)
			const n = 20
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					want := fmt.Sprintf("caller %d", i)
					resp, err := c.Call(ctx, toolCall(t, "1", "echo", map[string]string{"text": want}, nil), nil, nil)
					switch {
					case err != nil:
						errs <- fmt.Errorf("caller %d: %w", i, err)
					case string(resp.ID) != "1":
						errs <- fmt.Errorf("caller %d: id %s, want 1", i, resp.ID)
					case text(t, resp) != want:
						errs <- fmt.Errorf("caller %d got %q", i, text(t, resp))
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestNotificationsReachTheCallInOrder(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			var global []jsonrpc.Message
			var mu sync.Mutex
			c := connect(t, srv, tc.transport, nil, func(o *upstream.Options) {
				o.OnNotification = func(m jsonrpc.Message) { mu.Lock(); global = append(global, m); mu.Unlock() }
			})
			var got []jsonrpc.Message
			resp, err := c.Call(testContext(t), toolCall(t, "9", "slow", map[string]int{"ms": 5, "steps": 3}, "tok-1"), nil,
				func(m jsonrpc.Message) { got = append(got, m) })
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if text(t, resp) != "done" {
				t.Errorf("slow = %q", text(t, resp))
			}
			var methods []string
			for i, m := range got {
				methods = append(methods, m.Method)
				if m.Method != "notifications/progress" {
					continue
				}
				var p struct {
					ProgressToken json.RawMessage `json:"progressToken"`
					Progress      float64         `json:"progress"`
				}
				json.Unmarshal(m.Params, &p)
				if string(p.ProgressToken) != `"tok-1"` || p.Progress != float64(i+1) {
					t.Errorf("progress %d: token %s progress %v, want \"tok-1\" and %d", i, p.ProgressToken, p.Progress, i+1)
				}
			}
			want := []string{"notifications/progress", "notifications/progress", "notifications/progress", "notifications/message"}
			if fmt.Sprint(methods) != fmt.Sprint(want) {
				t.Errorf("notifications = %v, want %v", methods, want)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range global {
				if m.Method == "notifications/progress" || m.Method == "notifications/message" {
					t.Errorf("a call's %s went to OnNotification", m.Method)
				}
			}
			// The upstream saw the client's token, not the caller's.
			for _, r := range srv.Requests() {
				if r.JSONRPCMethod == "tools/call" && bytes.Contains(r.Body, []byte("tok-1")) {
					t.Errorf("the caller's progress token reached the upstream: %s", r.Body)
				}
			}
		})
	}
}

func TestProgressTokensOfConcurrentCallsStayApart(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, tc.start(t), tc.transport, nil)
			ctx := testContext(t)
			const n = 4
			var wg sync.WaitGroup
			progress := make([]int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.Call(ctx, toolCall(t, "1", "slow", map[string]int{"ms": 2, "steps": 5}, "same"), nil, func(m jsonrpc.Message) {
						if m.Method == "notifications/progress" {
							progress[i]++ // the calling goroutine: no lock needed
						}
					})
					if err != nil {
						t.Errorf("call %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			for i, p := range progress {
				if p != 5 {
					t.Errorf("call %d got %d progress notifications, want its own 5", i, p)
				}
			}
		})
	}
}

func TestServerRequestsDuringACallAreAnswered(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, tc.start(t), tc.transport, nil)
			resp, err := c.Call(testContext(t), toolCall(t, "1", "ask", map[string]any{}, nil), http.Header{"X-Tenant-Id": {"acme"}}, nil)
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			var answers map[string]string
			if err := json.Unmarshal([]byte(text(t, resp)), &answers); err != nil {
				t.Fatal(err)
			}
			if answers["ping"] != "ok" {
				t.Errorf("ping: %q, want ok", answers["ping"])
			}
			// mcpgate's own connection has no client, so no roots to give.
			if answers["roots/list"] != `{"roots":[]}` {
				t.Errorf("roots/list: %q, want no roots", answers["roots/list"])
			}
		})
	}
}

func TestCallStopsAtTheDeadline(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, nil)
			ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Call(ctx, toolCall(t, "1", "slow", map[string]int{"ms": 10000, "steps": 1}, nil), nil, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Call error = %v, want a deadline error", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Call returned after %v", d)
			}
			// The upstream is told, by the id it knows.
			testenv.WaitFor(t, 10*time.Second, "notifications/cancelled to reach the server", func() bool { return count(srv, "notifications/cancelled") == 1 })
			// And the session is still good.
			if _, err := c.Call(testContext(t), toolCall(t, "2", "echo", map[string]string{"text": "x"}, nil), nil, nil); err != nil {
				t.Errorf("Call after a cancelled one: %v", err)
			}
		})
	}
}

func TestServerDyingMidCallFailsTheCall(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, nil)
			done := make(chan error, 1)
			go func() {
				_, err := c.Call(testContext(t), toolCall(t, "1", "slow", map[string]int{"ms": 10000, "steps": 1}, nil), nil, nil)
				done <- err
			}()
			testenv.WaitFor(t, 10*time.Second, "the call to reach the server", func() bool { return count(srv, "tools/call") == 1 })
			srv.Kill()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Call succeeded on a dead server")
				}
				t.Logf("Call: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("Call hangs after the server died")
			}
			if _, err := c.Call(testContext(t), toolCall(t, "2", "echo", map[string]string{"text": "x"}, nil), nil, nil); err == nil {
				t.Error("Call on a dead server succeeded")
			}
		})
	}
}

func TestHTTPErrorStatus(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("at connect", func(t *testing.T) {
				srv := tc.start(t, mcptest.WithStatus(http.StatusInternalServerError))
				_, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL, Transport: tc.transport})
				var se *upstream.StatusError
				if !errors.As(err, &se) || se.StatusCode != 500 {
					t.Fatalf("Connect error = %v, want a *StatusError with 500", err)
				}
				if !strings.Contains(se.Body, "as asked") {
					t.Errorf("Body = %q, want the server's", se.Body)
				}
			})
			t.Run("on a call", func(t *testing.T) {
				srv := tc.start(t)
				c := connect(t, srv, tc.transport, nil)
				srv.SetStatus(http.StatusInternalServerError)
				_, err := c.Call(testContext(t), toolCall(t, "1", "echo", map[string]string{"text": "x"}, nil), nil, nil)
				var se *upstream.StatusError
				if !errors.As(err, &se) || se.StatusCode != 500 {
					t.Fatalf("Call error = %v, want a *StatusError with 500", err)
				}
				srv.SetStatus(0)
				if _, err := c.Call(testContext(t), toolCall(t, "2", "echo", map[string]string{"text": "x"}, nil), nil, nil); err != nil {
					t.Errorf("Call once the server recovered: %v", err)
				}
			})
		})
	}
}

func TestUnauthorized(t *testing.T) {
	const key = "Bearer s3cret"
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t, mcptest.WithRequireAuthorization(key))
			_, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL, Transport: tc.transport})
			var se *upstream.StatusError
			if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
				t.Fatalf("Connect without credentials: %v, want a *StatusError with 401", err)
			}
			c := connect(t, srv, tc.transport, http.Header{"Authorization": {key}})
			_, err = c.Call(testContext(t), toolCall(t, "1", "echo", map[string]string{"text": "x"}, nil), http.Header{"X-Tenant-Id": {"acme"}}, nil)
			if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
				t.Errorf("Call without Authorization in its headers: %v, want 401 (the Connect headers are not added)", err)
			}
			if _, err := c.Call(testContext(t), toolCall(t, "2", "echo", map[string]string{"text": "x"}, nil), http.Header{"Authorization": {key}}, nil); err != nil {
				t.Errorf("Call with Authorization: %v", err)
			}
		})
	}
}

func TestExpiredSessionIsRenewedOnce(t *testing.T) {
	cases := append(transports(), transportCase{"raw", upstream.StreamableHTTP,
		func(tb testing.TB, opts ...mcptest.Option) *mcptest.Server {
			return mcptest.NewRaw(tb, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
				r, _ := jsonrpc.NewResult(nil, map[string]any{"content": []map[string]string{{"type": "text", "text": "raw"}}})
				return r
			}, opts...)
		}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, http.Header{"Authorization": {"Bearer upstream-key"}})
			call := func(id string) {
				t.Helper()
				resp, err := c.Call(testContext(t), toolCall(t, id, "echo", map[string]string{"text": "x"}, nil), http.Header{"X-Tenant-Id": {"acme"}}, nil)
				if err != nil {
					t.Fatalf("Call %s: %v", id, err)
				}
				if string(resp.ID) != id {
					t.Errorf("id = %s, want %s", resp.ID, id)
				}
			}
			call("1")
			srv.ExpireSessions()
			call("2")
			if n := count(srv, "initialize"); n != 2 {
				t.Errorf("initialize sent %d times, want 2", n)
			}
			h := srv.LastHeader("initialize")
			if h.Get("Authorization") != "Bearer upstream-key" || h.Get("X-Tenant-Id") != "" {
				t.Errorf("re-initialize headers: Authorization %q, X-Tenant-Id %q; want the Connect headers only", h.Get("Authorization"), h.Get("X-Tenant-Id"))
			}
			call("3")
			if n := count(srv, "initialize"); n != 2 {
				t.Errorf("initialize sent %d times after a good call, want 2", n)
			}
		})
	}
}

func TestRepeatedSessionLossIsAnError(t *testing.T) {
	// A server that forgets every session at once: the retry fails too, and
	// the 404 is reported rather than retried forever.
	var srv *mcptest.Server
	srv = mcptest.NewRaw(t, nil, mcptest.WithOnRequest(func(r *http.Request) {
		if r.Header.Get("Mcp-Session-Id") != "" && r.Method == http.MethodPost {
			srv.ExpireSessions()
		}
	}))
	c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL})
	if err == nil {
		defer c.Close()
		_, err = c.Call(testContext(t), toolCall(t, "1", "echo", nil, nil), nil, nil)
	}
	var se *upstream.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Fatalf("error = %v, want a *StatusError with 404", err)
	}
}

func TestListChangedReachesOnNotification(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			got := make(chan jsonrpc.Message, 100)
			connect(t, srv, tc.transport, nil, func(o *upstream.Options) {
				o.OnNotification = func(m jsonrpc.Message) { got <- m }
			})
			// The listening stream opens in the background: add tools until
			// a notification comes (the SDK drops those sent before it).
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(10 * time.Second)
			for i := 0; ; i++ {
				select {
				case m := <-got:
					if m.Method != "notifications/tools/list_changed" {
						t.Fatalf("got %s, want notifications/tools/list_changed", m.Method)
					}
					return
				case <-tick.C:
					srv.AddTool(fmt.Sprintf("extra%d", i))
				case <-deadline:
					t.Fatal("no notifications/tools/list_changed")
				}
			}
		})
	}
}

func TestNotify(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, nil)
			msg, _ := jsonrpc.NewNotification("notifications/roots/list_changed", nil)
			if err := c.Notify(testContext(t), msg, http.Header{"X-Tenant-Id": {"acme"}}); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			if h := srv.LastHeader("notifications/roots/list_changed"); h.Get("X-Tenant-Id") != "acme" {
				t.Errorf("notification headers = %v", h)
			}
			cancel, _ := jsonrpc.NewNotification("notifications/cancelled", map[string]any{"requestId": 1})
			if err := c.Notify(testContext(t), cancel, nil); err == nil {
				t.Error("Notify forwarded notifications/cancelled with the caller's id")
			}
		})
	}
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			c := connect(t, srv, tc.transport, nil)
			done := make(chan error, 1)
			go func() {
				_, err := c.Call(testContext(t), toolCall(t, "1", "slow", map[string]int{"ms": 10000, "steps": 1}, nil), nil, nil)
				done <- err
			}()
			testenv.WaitFor(t, 10*time.Second, "the call to reach the server", func() bool { return count(srv, "tools/call") == 1 })
			start := time.Now()
			c.Close()
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Close took %v", d)
			}
			if n := count(srv, "notifications/cancelled"); n != 1 {
				t.Errorf("Close sent notifications/cancelled %d times, want 1 for the abandoned call", n)
			}
			select {
			case err := <-done:
				if !errors.Is(err, upstream.ErrClosed) {
					t.Errorf("Call error = %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Call still running after Close")
			}
			if _, err := c.Call(testContext(t), toolCall(t, "2", "echo", nil, nil), nil, nil); !errors.Is(err, upstream.ErrClosed) {
				t.Errorf("Call after Close = %v, want ErrClosed", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			cycle := func() {
				c, err := upstream.Connect(testContext(t), upstream.Options{
					URL: srv.URL, Transport: tc.transport,
					OnNotification: func(jsonrpc.Message) {}, // opens the listening stream too
				})
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				if _, err := c.Call(testContext(t), toolCall(t, "1", "echo", map[string]string{"text": "x"}, nil), nil, nil); err != nil {
					t.Fatalf("Call: %v", err)
				}
				c.Close()
			}
			noGoroutineLeak(t, cycle)
		})
	}
}

// noGoroutineLeak runs cycle once, to warm up what lives as long as the
// process, then 50 times, and fails when, 10s later, more goroutines run
// than after the warm-up.
func noGoroutineLeak(t *testing.T, cycle func()) {
	t.Helper()
	cycle()
	settle := func() int {
		prev := -1
		for n := runtime.NumGoroutine(); n != prev; n = runtime.NumGoroutine() {
			prev = n
			time.Sleep(20 * time.Millisecond)
		}
		return prev
	}
	baseline := settle()
	for range 50 {
		cycle()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var b strings.Builder
			pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMalformedAnswers(t *testing.T) {
	huge := strings.Repeat("a", upstream.MaxMessageSize+1)
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string
	}{
		{"not JSON-RPC", "application/json", `{"hello":1}`, "not JSON-RPC"},
		{"not JSON", "application/json", `<html>`, "not JSON-RPC"},
		{"no response", "application/json", `{"jsonrpc":"2.0","method":"notifications/message","params":{}}`, "no response"},
		{"stream without response", "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n", "without a response"},
		{"bad event", "text/event-stream", "data: nope\n\n", "not JSON-RPC"},
		{"wrong type", "text/plain", "hello", "Content-Type"},
		{"oversized body", "application/json", `{"jsonrpc":"2.0","id":1,"result":{"x":"` + huge + `"}}`, "maximum message size"},
		{"oversized event", "text/event-stream", "data: " + huge + "\n\n", "maximum message size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := upstream.Connect(testContext(t), upstream.Options{URL: badServer(t, tt.contentType, tt.body)})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer c.Close()
			_, err = c.Call(testContext(t), toolCall(t, "1", "echo", nil, nil), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// badServer is a Streamable HTTP server that initializes properly and then
// answers every request with contentType and body.
func badServer(t *testing.T, contentType, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		b, _ := io.ReadAll(r.Body)
		m, err := jsonrpc.DecodeMessage(b)
		switch {
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
		case m.Method == "initialize":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"bad","version":"0"}}}`, m.ID)
		case !m.IsRequest():
			w.WriteHeader(http.StatusAccepted)
		default:
			w.Header().Set("Content-Type", contentType)
			io.WriteString(w, body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCallEchoOnAJSONAnsweringServer(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t, mcptest.WithJSONResponse())
	c := connect(t, srv, upstream.StreamableHTTP, nil)
	resp, err := c.Call(testContext(t), toolCall(t, "3", "echo", map[string]string{"text": "json"}, nil), nil, nil)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if text(t, resp) != "json" || string(resp.ID) != "3" {
		t.Errorf("response = %s %s", resp.ID, resp.Result)
	}
}

func TestConnectRejectsBadOptions(t *testing.T) {
	srv := mcptest.NewStreamableHTTP(t)
	tests := []struct {
		name string
		opts upstream.Options
		want string
	}{
		{"no URL", upstream.Options{}, "not an http(s) URL"},
		{"not http", upstream.Options{URL: "ftp://127.0.0.1/x"}, "not an http(s) URL"},
		{"credentials are not shown", upstream.Options{URL: "http://user:secret@/x?token=secret"}, "not an http(s) URL"},
		{"unknown transport", upstream.Options{URL: srv.URL, Transport: "WEBSOCKET"}, "unknown transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := upstream.Connect(testContext(t), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Connect = %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows credentials: %v", err)
			}
		})
	}
}

func TestConnectRefusesRedirects(t *testing.T) {
	target := mcptest.NewStreamableHTTP(t)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	_, err := upstream.Connect(testContext(t), upstream.Options{URL: redirect.URL, Headers: upstream.FixedHeaders(http.Header{"Authorization": {"Bearer k"}})})
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Connect = %v, want a refused redirect", err)
	}
	if len(target.Requests()) != 0 {
		t.Error("the credentials followed the redirect")
	}
}

func TestLegacyEndpointMustBeSameOrigin(t *testing.T) {
	tests := []struct {
		name, endpoint, wantPath string // HOST: the server's own host:port
	}{
		{"relative", "messages?session=1", "/sse/messages"},
		{"absolute path", "/elsewhere/messages?session=1", "/elsewhere/messages"},
		{"absolute URL", "http://HOST/abs?session=1", "/abs"},
		{"another host", "http://203.0.113.7/messages", ""},
		{"another port", "http://127.0.0.1:1/messages", ""},
		{"another scheme", "https://HOST/messages", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := legacyServer(t, tt.endpoint)
			c, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.url + "/sse/", Transport: upstream.SSE})
			if tt.wantPath == "" {
				if err == nil || !strings.Contains(err.Error(), "another origin") {
					t.Errorf("Connect = %v, want the endpoint refused", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			c.Close()
			if got := srv.posts(); len(got) == 0 || got[0] != tt.wantPath {
				t.Errorf("POSTs went to %q, want %s", got, tt.wantPath)
			}
		})
	}
}

// fakeLegacy is a minimal legacy HTTP+SSE server: its event stream names
// an endpoint, and it answers initialize on the stream.
type fakeLegacy struct {
	url   string
	mu    sync.Mutex
	paths []string
}

func (f *fakeLegacy) posts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func legacyServer(t *testing.T, endpoint string) *fakeLegacy {
	f := &fakeLegacy{}
	answers := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			f.mu.Lock()
			f.paths = append(f.paths, r.URL.Path)
			f.mu.Unlock()
			b, _ := io.ReadAll(r.Body)
			if m, err := jsonrpc.DecodeMessage(b); err == nil && m.Method == "initialize" {
				answers <- fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2024-11-05","capabilities":{},"serverInfo":{"name":"legacy","version":"0"}}}`, m.ID)
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: endpoint\r\ndata: %s\r\n\r\n", strings.ReplaceAll(endpoint, "HOST", r.Host))
		w.(http.Flusher).Flush()
		for {
			select {
			case a := <-answers:
				fmt.Fprintf(w, ": keep-alive\n\nevent: message\ndata: %s\n\n", a)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}
