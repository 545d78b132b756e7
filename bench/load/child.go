package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// envChildUpstream, set in the environment, makes this program serve the
// echo upstream instead of measuring: the parent re-executes itself with it
// to give the upstream a process (and a garbage collector) of its own, as an
// upstream has in production. Its value is the upstream's credential.
const envChildUpstream = "MCPGATE_BENCH_CHILD_UPSTREAM"

// upstreamServer is the echo upstream, in this process or in a child.
type upstreamServer interface {
	url() string
	accepted() int64
	Close() error
}

func (e *echoServer) url() string     { return e.URL }
func (e *echoServer) accepted() int64 { return e.Accepted.Load() }

// serveChildUpstream runs the upstream until standard input closes (the
// parent ended), announcing its URL on standard output.
func serveChildUpstream(credential string) int {
	up, err := startEchoServer(credential)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load child: %v\n", err)
		return 2
	}
	defer up.Close()
	stats := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, up.Accepted.Load())
	}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := listenLoopback()
	if err != nil {
		fmt.Fprintf(os.Stderr, "load child: %v\n", err)
		return 2
	}
	go func() { _ = stats.Serve(ln) }()
	defer stats.Close()
	fmt.Printf("%s http://%s/\n", up.URL, ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // returns when the parent closes it or dies
	return 0
}

// childUpstream is the upstream in a child process.
type childUpstream struct {
	cmd      *exec.Cmd
	stdin    io.Closer
	mcpURL   string
	statsURL string
}

// startChildUpstream re-executes this program as the upstream.
func startChildUpstream(ctx context.Context, credential string) (*childUpstream, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envChildUpstream+"="+credential)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	c := &childUpstream{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		if f := strings.Fields(s); len(f) == 2 {
			c.mcpURL, c.statsURL = f[0], f[1]
			return c, nil
		}
		_ = c.Close()
		return nil, errors.New("upstream process: it did not announce its address")
	case <-time.After(30 * time.Second):
		_ = c.Close()
		return nil, errors.New("upstream process: not ready within 30 s")
	case <-ctx.Done():
		_ = c.Close()
		return nil, ctx.Err()
	}
}

func (c *childUpstream) url() string { return c.mcpURL }

func (c *childUpstream) accepted() int64 {
	resp, err := http.Get(c.statsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// Close ends the child: closing its standard input stops it; it is killed
// if it has not stopped within 5 s.
func (c *childUpstream) Close() error {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		return errors.New("upstream process did not stop; killed")
	}
}
