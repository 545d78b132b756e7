// Package gatewaytest runs the real mcpgate binary for black-box tests and
// talks to it over loopback HTTP only: the admin API, /mcp sessions (with
// their GET stream) and /metrics. It follows test/cluster's harness, for
// one instance on SQLite or PostgreSQL.
package gatewaytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// JWTSecret signs the client token every Gateway uses.
	JWTSecret        = "0123456789abcdef0123456789abcdef-blackbox-test-only"
	encryptionSecret = "blackbox-test-encryption-secret"

	// RequestTimeout bounds every request the harness makes, except streams.
	RequestTimeout = 15 * time.Second
	startTimeout   = 30 * time.Second
	// stopTimeout is how long mcpgate has to exit after SIGTERM
	// (SHUTDOWN_TIMEOUT is 5s) before it is killed.
	stopTimeout = 15 * time.Second
)

// Build builds mcpgate into a new temporary folder, with the race detector
// when race is true, and returns the binary and a function that removes it.
// A package's TestMain calls it once.
func Build(race bool) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "mcpgate-blackbox-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "mcpgate")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/mcpgate/mcpgate/cmd/mcpgate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// Main is a package's TestMain: it builds mcpgate (with the race detector
// when race is true) into *bin, runs the package's tests, removes the
// binary and exits with the tests' status. what names the package in a
// build failure.
func Main(m *testing.M, race bool, bin *string, what string) {
	built, remove, err := Build(race)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: build mcpgate: %v\n", what, err)
		os.Exit(1)
	}
	*bin = built
	code := m.Run()
	remove()
	os.Exit(code)
}

// StartWith runs bin with Settings(t) and extra set over them.
func StartWith(t *testing.T, bin string, extra map[string]string) *Gateway {
	t.Helper()
	settings := Settings(t)
	for k, v := range extra {
		settings[k] = v
	}
	return Start(t, bin, settings)
}

// Settings returns the settings a Gateway starts with unless the test
// gives others: loopback, a fresh SQLite database in the test's temporary
// folder, no periodic refresh, header passthrough on.
func Settings(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"HOST":                        "127.0.0.1",
		"PORT":                        "0", // mcpgate picks a free port and logs it
		"DATABASE_URL":                "sqlite:///" + filepath.Join(dir, "mcpgate.db"),
		"JWT_SECRET_KEY":              JWTSecret,
		"AUTH_ENCRYPTION_SECRET":      encryptionSecret,
		"ENABLE_HEADER_PASSTHROUGH":   "true",
		"DEFAULT_PASSTHROUGH_HEADERS": "[]",
		"CATALOGUE_REFRESH_INTERVAL":  "0",
		"UPSTREAM_TIMEOUT":            "10s",
		"SHUTDOWN_TIMEOUT":            "5s",
		"LOG_LEVEL":                   "info",
		"MCPGATE_ENV_FILE":            envFile,
	}
}

// Gateway is one `mcpgate serve` process.
type Gateway struct {
	URL     string // http://127.0.0.1:PORT
	Token   string // a token mcpgate accepts, with the admin and the client role (AdminToken)
	LogPath string // its stdout and stderr

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	state  *os.ProcessState
	client *http.Client
}

// Start runs `bin serve` with exactly settings (see Settings; nothing comes
// from the environment but PATH and GORACE) and returns once GET /ready
// answers 200. The process is stopped when the test ends, and a failing
// exit status fails the test.
func Start(t *testing.T, bin string, settings map[string]string) *Gateway {
	t.Helper()
	// The tests call the admin API and the MCP endpoints with it.
	token := AdminToken(t, "blackbox-test")
	logFile, err := os.CreateTemp(t.TempDir(), "mcpgate-*.log")
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	g := &Gateway{Token: token, LogPath: logFile.Name(), exited: make(chan struct{}), client: &http.Client{Transport: transport}}
	env := []string{"PATH=" + os.Getenv("PATH"), "GORACE=halt_on_error=1"}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	g.cmd = exec.Command(bin, "serve")
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start mcpgate: %v", err)
	}
	go func() {
		_ = g.cmd.Wait()
		g.state = g.cmd.ProcessState
		logFile.Close()
		close(g.exited)
	}()
	t.Cleanup(func() { g.Stop(t) })
	g.waitReady(t)
	return g
}

func (g *Gateway) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for g.URL == "" {
		if addr := listeningAddress(g.LogPath); addr != "" {
			g.URL = "http://" + addr
			break
		}
		g.failIfExited(t)
		if time.Now().After(deadline) {
			t.Fatalf("mcpgate did not log its address within %s; its log:\n%s", startTimeout, g.Tail(30))
		}
		time.Sleep(10 * time.Millisecond) // polling a log file: there is no signal to wait for
	}
	for {
		status, body, err := g.Send(t.Context(), "GET", "/ready", nil)
		if err == nil && status == http.StatusOK {
			return
		}
		g.failIfExited(t)
		if time.Now().After(deadline) {
			t.Fatalf("mcpgate not ready within %s: %d %s %v; its log:\n%s", startTimeout, status, body, err, g.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *Gateway) failIfExited(t *testing.T) {
	t.Helper()
	select {
	case <-g.exited:
		t.Fatalf("mcpgate exited at start (%v); its log:\n%s", g.state, g.Tail(30))
	default:
	}
}

// listeningAddress finds the address in mcpgate's "mcpgate listening" log
// line, or returns "".
func listeningAddress(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "mcpgate listening" {
			return line.Address
		}
	}
	return ""
}

// Stop sends SIGTERM and waits for the exit; mcpgate that does not exit
// within stopTimeout is killed, and that fails the test, as does an exit
// status other than 0 (a data race found under -race among them). On a
// failed test it shows the end of the log. Calling it twice is fine.
func (g *Gateway) Stop(t *testing.T) {
	select {
	case <-g.exited:
	default:
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(stopTimeout):
			t.Errorf("mcpgate did not stop within %s of SIGTERM; killed", stopTimeout)
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		if g.state != nil && !g.state.Success() {
			t.Errorf("mcpgate exited with %v; its log:\n%s", g.state, g.Tail(40))
			return
		}
	}
	if t.Failed() {
		t.Logf("the end of mcpgate's log (%s):\n%s", g.URL, g.Tail(25))
	}
}

// Tail returns the last n lines of mcpgate's log.
func (g *Gateway) Tail(n int) string {
	b, err := os.ReadFile(g.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", g.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Send sends one request with the client token; body is sent as is when it
// is a []byte, as JSON otherwise. It is safe to use from any goroutine.
func (g *Gateway) Send(ctx context.Context, method, path string, body any) (int, []byte, error) {
	resp, err := g.open(ctx, method, path, body, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// open sends a request with extra headers and returns the response with its
// body unread; closing the body ends the request's context.
func (g *Gateway) open(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	req, err := http.NewRequestWithContext(ctx, method, g.URL+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+g.Token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := g.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Do is Send for the test's goroutine: a request that cannot be made fails
// the test.
func (g *Gateway) Do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	status, out, err := g.Send(t.Context(), method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

// Upstream is an upstream as GET /gateways/{id} shows it: the fields the
// black-box tests look at. CatalogueStale is nil when the answer has no
// catalogue_stale.
type Upstream struct {
	ID                   string `json:"id"`
	Name                 string `json:"name"`
	Slug                 string `json:"slug"`
	Status               string `json:"status"`
	StatusReason         string `json:"status_reason"`
	Tools                int    `json:"tool_count"`
	CatalogueStale       *bool  `json:"catalogue_stale"`
	CatalogueRefreshedAt string `json:"catalogue_refreshed_at"`
}

// Register adds an upstream through POST /gateways and returns what mcpgate
// answered; anything but 201 fails the test.
func (g *Gateway) Register(t *testing.T, body map[string]any) Upstream {
	t.Helper()
	status, out := g.Do(t, "POST", "/gateways", body)
	if status != http.StatusCreated {
		t.Fatalf("POST /gateways %v: %d %s", body, status, out)
	}
	var v Upstream
	if err := json.Unmarshal(out, &v); err != nil || v.ID == "" {
		t.Fatalf("POST /gateways: %v in %s", err, out)
	}
	return v
}

// Get returns GET /gateways/{id}'s answer: its status, the upstream when
// that is 200, and the body.
func (g *Gateway) Get(t *testing.T, id string) (int, Upstream, []byte) {
	t.Helper()
	status, out := g.Do(t, "GET", "/gateways/"+id, nil)
	var v Upstream
	if status == http.StatusOK {
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("GET /gateways/%s: %v in %s", id, err, out)
		}
	}
	return status, v, out
}

// Metric returns the value of an unlabelled metric on GET /metrics (for
// example go_goroutines, process_resident_memory_bytes).
func (g *Gateway) Metric(t *testing.T, name string) float64 {
	t.Helper()
	v, err := g.MetricValue(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MetricValue is Metric for any goroutine.
func (g *Gateway) MetricValue(ctx context.Context, name string) (float64, error) {
	status, out, err := g.Send(ctx, "GET", "/metrics", nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d %s", status, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				return 0, fmt.Errorf("GET /metrics: %q: %w", line, err)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("GET /metrics has no %s", name)
}

// CloseIdleConnections closes the harness's idle keep-alive connections to
// mcpgate, each of which holds a goroutine there: before its goroutines are
// counted against a baseline.
func (g *Gateway) CloseIdleConnections() { g.client.CloseIdleConnections() }

// HTTPClient returns an HTTP client for mcpgate that adds the client token
// to every request, for the official SDK's client.
func (g *Gateway) HTTPClient() *http.Client {
	return &http.Client{Transport: bearer{token: g.Token, next: g.client.Transport}}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
