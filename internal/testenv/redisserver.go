package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a redis-server of a test's own, for tests that stop and
// restart Redis, which the shared one of scripts/redis.sh must not be. It
// listens on one loopback port for its whole life and saves nothing.
type RedisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartRedisServer starts a redis-server on a free loopback port; it is
// stopped when the test ends, and its log shown if the test failed.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not on PATH: this test stops and restarts a Redis of its own; " +
			"`eval \"$(scripts/redis.sh)\"` installs Debian's redis-server (scripts/test.sh runs it)")
	}
	r := &RedisServer{t: t, port: FreePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("redis-server's log:\n%s", r.logTail(15))
		}
	})
	return r
}

// URL is the server's database index 0.
func (r *RedisServer) URL() string { return "redis://" + r.addr() + "/0" }

func (r *RedisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Start (re)starts the server on its port and waits until it answers PING.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	WaitFor(r.t, 10*time.Second, "redis-server to answer PING on "+r.addr(), func() bool {
		select {
		case <-done:
			r.t.Fatalf("redis-server exited at start:\n%s", r.logTail(15))
		default:
		}
		return PingRedis(r.addr()) == nil
	})
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits until
// it has exited.
func (r *RedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Pause stops the server's process (SIGSTOP) without ending it: its
// clients stay connected and their commands go unanswered, as with a Redis
// that has stalled. Resume lets it go on; call it (deferred) before the
// test ends, since a paused server cannot stop.
func (r *RedisServer) Pause() { r.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (r *RedisServer) Resume() { r.signal(syscall.SIGCONT) }

func (r *RedisServer) signal(sig syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Fatalf("redis-server is not running: cannot send it %v", sig)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal redis-server (%v): %v", sig, err)
	}
}

func (r *RedisServer) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// PingRedis checks that a Redis answers PING at addr (host:port), within 2 s.
func PingRedis(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("no Redis at %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("PING %s: %w", addr, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING %s answered %q, %v", addr, line, err)
	}
	return nil
}
