package lifecycle

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/test/internal/countingproxy"
)

// envEverything names the command that runs the TypeScript reference server
// @modelcontextprotocol/server-everything (scripts/test.sh installs a pinned
// version and sets it, e.g. "/path/node /path/dist/index.js").
const envEverything = "MCPGATE_TEST_EVERYTHING"

// startEverything runs server-everything in mode ("sse" or
// "streamableHttp") on a free loopback port and returns its MCP endpoint;
// it is stopped when the test ends. Without MCPGATE_TEST_EVERYTHING the test
// is skipped, except in CI (CI=true), where that fails it.
func startEverything(t *testing.T, mode string) string {
	t.Helper()
	command := strings.Fields(os.Getenv(envEverything))
	if len(command) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test.sh installs @modelcontextprotocol/server-everything and sets it", envEverything)
		}
		t.Skipf("%s is not set (scripts/test.sh sets it)", envEverything)
	}
	port := freePort(t)
	cmd := exec.Command(command[0], append(command[1:], mode)...)
	// It reads PORT; it listens on every interface, so the port must be free
	// on loopback, which freePort checked.
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server-everything (%s %s): %v", strings.Join(command, " "), mode, err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	var logged strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if logged.Len() < 4096 {
				logged.WriteString(line + "\n")
			}
			// sse: "Server is running on port N"; streamableHttp: "… listening on port N".
			if !signalled && strings.Contains(line, "on port "+strconv.Itoa(port)) {
				signalled = true
				close(ready)
			}
		}
		// Wait only once the pipe is read to its end, as os/exec asks.
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("server-everything %s exited at start: %s", mode, logged.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("server-everything %s did not say it listens on port %d within 30s", mode, port)
	}
	if mode == "sse" {
		return fmt.Sprintf("http://127.0.0.1:%d/sse", port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEverythingOverSSEOpensOneSession: server-everything over the legacy
// SSE transport sends notifications/tools/list_changed after every
// initialize. mcpgate must re-list on the session it has, never open a new
// one for it (which would be initialized, and say list_changed again: a
// reconnect storm), and calls through it keep working.
func TestEverythingOverSSEOpensOneSession(t *testing.T) {
	front := countingproxy.New(t, startEverything(t, "sse"))
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
	front := countingproxy.New(t, startEverything(t, "streamableHttp"))
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
