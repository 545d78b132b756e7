// Package everything runs the TypeScript reference server
// @modelcontextprotocol/server-everything for black-box tests, and finds
// the Node and the TypeScript SDK installed beside it.
package everything

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
)

const (
	// EnvCommand names the command that runs server-everything
	// (scripts/test.sh installs a pinned version and sets it, e.g.
	// "/path/node /path/dist/index.js").
	EnvCommand = "MCPGATE_TEST_EVERYTHING"
	// EnvTSSDK names the folder of the pinned @modelcontextprotocol/sdk
	// package that the comparison battery imports (scripts/test.sh sets it).
	EnvTSSDK = "MCPGATE_TEST_TS_SDK"
)

// Command returns server-everything's command line; without EnvCommand the
// test is skipped, except in CI (CI=true), where that fails it.
func Command(t *testing.T) []string {
	t.Helper()
	command := strings.Fields(os.Getenv(EnvCommand))
	if len(command) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test.sh installs @modelcontextprotocol/server-everything and sets it", EnvCommand)
		}
		t.Skipf("%s is not set (scripts/test.sh sets it)", EnvCommand)
	}
	return command
}

// Node returns the Node 22 that runs server-everything (the first word of
// its command).
func Node(t *testing.T) string {
	t.Helper()
	return Command(t)[0]
}

// TSSDK returns the folder of the pinned TypeScript SDK; like Command, it
// skips the test without it, or fails it under CI=true.
func TSSDK(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvTSSDK)
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: scripts/test.sh installs @modelcontextprotocol/sdk and sets it", EnvTSSDK)
		}
		t.Skipf("%s is not set (scripts/test.sh sets it)", EnvTSSDK)
	}
	if _, err := os.Stat(dir + "/package.json"); err != nil {
		t.Fatalf("%s=%s: %v", EnvTSSDK, dir, err)
	}
	return dir
}

// Start runs server-everything in mode ("sse" or "streamableHttp") on a
// free loopback port and returns its MCP endpoint; it is stopped when the
// test ends.
func Start(t *testing.T, mode string) string {
	t.Helper()
	command := Command(t)
	port := FreePort(t)
	cmd := exec.Command(command[0], append(command[1:], mode)...)
	// It reads PORT; it listens on every interface, so the port must be free
	// on loopback, which FreePort checked.
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

// FreePort returns a loopback port nothing listens on now.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
