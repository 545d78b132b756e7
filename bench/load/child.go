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
	"sync/atomic"
	"time"
)

// envChild, set in the environment, makes this program serve one part of the
// set-up instead of measuring: the parent re-executes itself with it to give
// the upstream, and mcpgate, a process (and a garbage collector and
// scheduler) of their own, as each has in production. Its value is
// "upstream <credential>" or "gateway".
const envChild = "MCPGATE_BENCH_CHILD"

// upstreamServer is the echo upstream, in this process or in a child.
type upstreamServer interface {
	url() string
	accepted() int64
	Close() error
}

func (e *echoServer) url() string     { return e.URL }
func (e *echoServer) accepted() int64 { return e.Accepted.Load() }

// serveChild runs the part role names until standard input closes (the
// parent ended). Its first line on standard output is the part's address
// and anything the parent needs besides, then the address of a small HTTP
// server that answers with the number of connections the part has accepted.
func serveChild(role string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "load child: %v\n", err)
		return 2
	}
	var (
		announce string
		accepted *atomic.Int64
		stop     func() error
	)
	switch kind, arg, _ := strings.Cut(role, " "); kind {
	case "upstream":
		up, err := startEchoServer(arg)
		if err != nil {
			return fail(err)
		}
		announce, accepted, stop = up.URL, &up.Accepted, up.Close
	case "gateway":
		gw, err := startGateway(context.Background(), arg)
		if err != nil {
			return fail(err)
		}
		announce, accepted, stop = gw.URL+" "+gw.Token, &gw.Accepted, gw.Close
	default:
		return fail(fmt.Errorf("%s=%q: want \"upstream <credential>\" or \"gateway\"", envChild, role))
	}
	defer func() { _ = stop() }()
	stats := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, accepted.Load())
	}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := listenLoopback()
	if err != nil {
		return fail(err)
	}
	go func() { _ = stats.Serve(ln) }()
	defer stats.Close()
	fmt.Printf("%s http://%s/\n", announce, ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // returns when the parent closes it or dies
	return 0
}

// childProcess is one part of the set-up in a child process.
type childProcess struct {
	cmd      *exec.Cmd
	stdin    io.Closer
	fields   []string // what the child announced, before its stats address
	statsURL string
}

// startChild re-executes this program as the part role names and waits for
// it to announce want fields besides its stats address.
func startChild(ctx context.Context, role string, want int) (*childProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envChild+"="+role)
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
		return nil, err
	}
	c := &childProcess{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		if f := strings.Fields(s); len(f) == want+1 {
			c.fields, c.statsURL = f[:want], f[want]
			return c, nil
		}
		_ = c.Close()
		return nil, errors.New("it did not announce its address")
	case <-time.After(30 * time.Second):
		_ = c.Close()
		return nil, errors.New("not ready within 30 s")
	case <-ctx.Done():
		_ = c.Close()
		return nil, ctx.Err()
	}
}

// accepted asks the child how many connections its part has accepted; -1
// when it cannot tell.
func (c *childProcess) accepted() int64 {
	resp, err := http.Get(c.statsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Close ends the child: closing its standard input stops it; it is killed
// if it has not stopped within 5 s.
func (c *childProcess) Close() error {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		return errors.New("child process did not stop; killed")
	}
}

// childUpstream is the upstream in a child process.
type childUpstream struct{ *childProcess }

func startChildUpstream(ctx context.Context, credential string) (*childUpstream, error) {
	c, err := startChild(ctx, "upstream "+credential, 1)
	if err != nil {
		return nil, fmt.Errorf("upstream process: %w", err)
	}
	return &childUpstream{c}, nil
}

func (c *childUpstream) url() string { return c.fields[0] }
