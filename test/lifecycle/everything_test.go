package lifecycle

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/test/internal/countingproxy"
	"github.com/mcpgate/mcpgate/test/internal/everything"
)

// TestEverythingOverSSEOpensOneSession: server-everything over the legacy
// SSE transport sends notifications/tools/list_changed after every
// initialize. mcpgate must re-list on the session it has, never open a new
// one for it (which would be initialized, and say list_changed again: a
// reconnect storm), and calls through it keep working.
func TestEverythingOverSSEOpensOneSession(t *testing.T) {
	front := countingproxy.New(t, everything.Start(t, "sse"))
	gw := start(t, nil)
	gw.Register(t, map[string]any{"name": "everything", "url": front.URL, "transport": "SSE"})
	session := gw.OpenSession(t)

	const window = 10 * time.Second
	calls, failed := 0, 0
	var firstFailure error
	for end := time.Now().Add(window); time.Now().Before(end); calls++ {
		msg := fmt.Sprintf("m%d", calls)
		text, err := session.CallTool(t.Context(), "everything-echo", map[string]any{"message": msg})
		if err == nil && !strings.Contains(text, msg) {
			err = fmt.Errorf("everything-echo answered %q, want it to echo %q", text, msg)
		}
		if err != nil {
			failed++
			if firstFailure == nil {
				firstFailure = err
			}
		}
	}
	sessions := front.Sessions()
	t.Logf("over %s: %d calls of everything-echo, %d failed; through the proxy: %s", window, calls, failed, front)
	if sessions > 3 {
		t.Errorf("mcpgate opened %d upstream sessions to server-everything (SSE) in %s; want 1 (at most 3)", sessions, window)
	}
	if failed > 0 || calls == 0 {
		t.Errorf("%d of %d calls of everything-echo failed; the first: %v", failed, calls, firstFailure)
	}
}

// TestEverythingOverStreamableHTTP: server-everything over Streamable HTTP
// is federated: its tools are listed in /mcp and its echo tool answers.
func TestEverythingOverStreamableHTTP(t *testing.T) {
	front := countingproxy.New(t, everything.Start(t, "streamableHttp"))
	gw := start(t, nil)
	v := gw.Register(t, map[string]any{"name": "everything", "url": front.URL, "transport": "STREAMABLEHTTP"})
	if v.Status != "available" {
		t.Fatalf("server-everything (Streamable HTTP) registered as %q: %s", v.Status, v.StatusReason)
	}
	session := gw.OpenSession(t)
	if names := toolNames(t, session); !has(names, "everything-echo") {
		t.Fatalf("/mcp tools/list has %v; want everything-echo", names)
	}
	text, err := session.CallTool(t.Context(), "everything-echo", map[string]any{"message": "hello"})
	if err != nil || !strings.Contains(text, "hello") {
		t.Fatalf("everything-echo: %q, %v; want the echo of hello", text, err)
	}
	t.Logf("everything-echo answered %q; through the proxy: %s", text, front)
}
