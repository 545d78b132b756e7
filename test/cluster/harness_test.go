package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// The harness runs the real mcpgate binary: TestMain builds it once, and
// each test starts as many `mcpgate serve` processes as it needs on a fresh
// PostgreSQL database and a Redis database of its own, talks to them over
// loopback HTTP only, and stops them when it ends.

const (
	jwtSecret        = "0123456789abcdef0123456789abcdef-cluster-test-only"
	encryptionSecret = "cluster-test-encryption-secret"

	// requestTimeout bounds every request a test makes, except streams.
	requestTimeout = 10 * time.Second
	// startTimeout bounds an instance's start, up to GET /ready = 200.
	startTimeout = 30 * time.Second
	// stopTimeout is how long an instance has to exit after SIGTERM
	// (SHUTDOWN_TIMEOUT is 5s) before it is killed.
	stopTimeout = 15 * time.Second
)

// mcpgateBinary is the mcpgate that TestMain built for every test. It is
// the package's one variable: TestMain has no other way to hand it over.
var mcpgateBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcpgate-cluster-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster tests: %v\n", err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "mcpgate")
	build := exec.Command("go", "build", "-o", bin, "github.com/mcpgate/mcpgate/cmd/mcpgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster tests: build mcpgate (go build -o %s github.com/mcpgate/mcpgate/cmd/mcpgate): %v\n", bin, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	mcpgateBinary = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// redisDatabase is the Redis of MCPGATE_TEST_REDIS_URL with database index
// db: each test uses an index of its own (10 and up, clear of the 0 that
// other packages use), and creates keys there only through mcpgate.
// Publish/subscribe channels are server-wide whatever the index, so the
// tests of this package do not run in parallel.
func redisDatabase(t *testing.T, db int) string {
	t.Helper()
	base := testenv.RedisURL(t)
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" {
		t.Fatalf("MCPGATE_TEST_REDIS_URL %q is not a redis:// URL", base)
	}
	u.Path = "/" + strconv.Itoa(db)
	if err := testenv.PingRedis(u.Host); err != nil {
		t.Fatalf("MCPGATE_TEST_REDIS_URL: %v", err)
	}
	return u.String()
}

// deployment is what a test's instances share: settings (one database, one
// Redis or none, the secrets) and a client token.
type deployment struct {
	t        *testing.T
	settings map[string]string
	token    string
	client   *http.Client // for requests that end; streams use their own
}

// newDeployment prepares a deployment on a fresh PostgreSQL database, with
// REDIS_URL set to redisURL unless it is empty; extra settings override the
// defaults.
func newDeployment(t *testing.T, redisURL string, extra map[string]string) *deployment {
	t.Helper()
	envFile := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"HOST":                        "127.0.0.1",
		"PORT":                        "0", // each instance picks a free port and logs it
		"DATABASE_URL":                testenv.PostgresDatabase(t, "mcpgate_cluster"),
		"JWT_SECRET_KEY":              jwtSecret,
		"AUTH_ENCRYPTION_SECRET":      encryptionSecret,
		"ENABLE_HEADER_PASSTHROUGH":   "true",
		"PASSTHROUGH_HEADERS_SOURCE":  "db",
		"DEFAULT_PASSTHROUGH_HEADERS": "[]",
		// Long, so that only the change bus can explain fast convergence.
		"GLOBAL_CONFIG_CACHE_TTL":    "60",
		"CATALOGUE_REFRESH_INTERVAL": "0",
		"UPSTREAM_TIMEOUT":           "10s",
		"SHUTDOWN_TIMEOUT":           "5s",
		"LOG_LEVEL":                  "info",
		"MCPGATE_ENV_FILE":           envFile,
	}
	if redisURL != "" {
		settings["REDIS_URL"] = redisURL
	}
	for k, v := range extra {
		settings[k] = v
	}
	j, err := auth.NewJWT([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	// The harness calls the admin API and the MCP endpoints with it.
	token, err := j.MintWith("cluster-test", time.Hour, time.Now(), auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}})
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	return &deployment{t: t, settings: settings, token: token, client: &http.Client{Transport: transport}}
}

// instance is one `mcpgate serve` process.
type instance struct {
	name    string
	d       *deployment
	url     string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
	logPath string        // its stdout and stderr
	exited  chan struct{} // closed when the process has exited
	state   *os.ProcessState
	killed  bool // by the test, on purpose
}

// start starts one instance per name, all at once, with extra settings of
// their own (nil for none), and returns them once every one is ready.
func (d *deployment) start(names []string, extra func(i int) map[string]string) []*instance {
	d.t.Helper()
	out := make([]*instance, len(names))
	for i, name := range names {
		var e map[string]string
		if extra != nil {
			e = extra(i)
		}
		out[i] = d.launch(name, e)
	}
	for _, in := range out {
		in.waitReady(d.t)
	}
	return out
}

// launch starts the process; it is not ready yet.
func (d *deployment) launch(name string, extra map[string]string) *instance {
	t := d.t
	t.Helper()
	in := &instance{name: name, d: d, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(in.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Only the settings, so that nothing from the environment of whoever
	// runs the tests changes what the instances do.
	env := []string{"PATH=" + os.Getenv("PATH")}
	merged := map[string]string{}
	for k, v := range d.settings {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	for k, v := range merged {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	in.cmd = exec.Command(mcpgateBinary, "serve")
	in.cmd.Env = env
	in.cmd.Stdout, in.cmd.Stderr = logFile, logFile
	if err := in.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start instance %s: %v", name, err)
	}
	go func() {
		_ = in.cmd.Wait()
		in.state = in.cmd.ProcessState
		logFile.Close()
		close(in.exited)
	}()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// waitReady waits for the instance's listening line, then for GET /ready
// to answer 200.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for in.url == "" {
		if addr := listeningAddress(in.logPath); addr != "" {
			in.url = "http://" + addr
			break
		}
		in.failIfExited(t, "at start")
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not log its address within %s; its log:\n%s", in.name, startTimeout, tail(in.logPath, 30))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		status, body, err := in.send(t.Context(), "GET", "/ready", nil)
		if err == nil && status == http.StatusOK {
			return
		}
		in.failIfExited(t, "at start")
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not ready within %s: %d %s %v; its log:\n%s", in.name, startTimeout, status, body, err, tail(in.logPath, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *instance) failIfExited(t *testing.T, when string) {
	t.Helper()
	select {
	case <-in.exited:
		t.Fatalf("instance %s exited %s (%v); its log:\n%s", in.name, when, in.state, tail(in.logPath, 30))
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

// kill SIGKILLs the instance and waits until it is gone.
func (in *instance) kill(t *testing.T) {
	t.Helper()
	in.killed = true
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill instance %s: %v", in.name, err)
	}
	select {
	case <-in.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("instance %s still runs 10s after SIGKILL", in.name)
	}
}

// stop sends SIGTERM and waits for a clean exit; an instance that does not
// exit within stopTimeout is killed, and that fails the test, as does an
// exit status other than 0. On a failed test it shows the end of the log.
func (in *instance) stop(t *testing.T) {
	select {
	case <-in.exited:
	default:
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(stopTimeout):
			t.Errorf("instance %s did not stop within %s of SIGTERM; killed", in.name, stopTimeout)
			_ = in.cmd.Process.Kill()
			<-in.exited
		}
	}
	if !in.killed && in.state != nil && !in.state.Success() {
		t.Errorf("instance %s exited with %v", in.name, in.state)
	}
	if t.Failed() {
		t.Logf("the end of instance %s's log (%s):\n%s", in.name, in.url, tail(in.logPath, 25))
	}
}

// logLines returns the lines of the instance's log for which match is true.
func (in *instance) logLines(match func(line string) bool) []string {
	b, err := os.ReadFile(in.logPath)
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line != "" && match(line) {
			out = append(out, line)
		}
	}
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// send sends one request with the client token; body is sent as is when
// it is a []byte, as JSON otherwise; headers are name, value pairs. It is
// safe to use from any goroutine.
func (in *instance) send(ctx context.Context, method, path string, body any, headers ...string) (int, []byte, error) {
	resp, err := in.open(ctx, method, path, body, headers...)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// open sends a request and returns the response with its body unread.
func (in *instance) open(ctx context.Context, method, path string, body any, headers ...string) (*http.Response, error) {
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
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	req, err := http.NewRequestWithContext(ctx, method, in.url+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+in.d.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := in.d.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, in.name, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// do is send for the test's goroutine: a request that cannot be made fails
// the test.
func (in *instance) do(t *testing.T, method, path string, body any, headers ...string) (int, []byte) {
	t.Helper()
	status, out, err := in.send(t.Context(), method, path, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

// register adds an upstream through the instance's admin API and returns
// its id.
func (in *instance) register(t *testing.T, body map[string]any) string {
	t.Helper()
	status, out := in.do(t, "POST", "/gateways", body)
	if status != http.StatusCreated {
		t.Fatalf("register on %s: %d %s", in.name, status, out)
	}
	var v struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Reason string `json:"status_reason"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ID == "" {
		t.Fatalf("register on %s: %v in %s", in.name, err, out)
	}
	if v.Status != "available" {
		t.Fatalf("registered upstream is %s: %s", v.Status, v.Reason)
	}
	return v.ID
}

// setGlobalList sets the global passthrough list through the instance and
// returns when its answer arrived.
func (in *instance) setGlobalList(t *testing.T, names ...string) time.Time {
	t.Helper()
	if names == nil {
		names = []string{}
	}
	status, out := in.do(t, "PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": names})
	if status != http.StatusOK {
		t.Fatalf("set the global list on %s: %d %s", in.name, status, out)
	}
	return time.Now()
}

// call sends one JSON-RPC request to /rpc and returns its result. A failed
// request, an HTTP status other than 200 and a JSON-RPC error are errors.
// It is safe to use from any goroutine.
func (in *instance) call(ctx context.Context, method string, params any, headers ...string) (json.RawMessage, error) {
	req, err := jsonrpc.NewRequest(json.RawMessage("1"), method, params)
	if err != nil {
		return nil, err
	}
	body, err := jsonrpc.Encode(req)
	if err != nil {
		return nil, err
	}
	status, out, err := in.send(ctx, "POST", "/rpc", body, headers...)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s on %s: HTTP %d %s", method, in.name, status, out)
	}
	msg, err := jsonrpc.DecodeMessage(out)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %v in %s", method, in.name, err, out)
	}
	if msg.Error != nil {
		return nil, fmt.Errorf("%s on %s: %w", method, in.name, msg.Error)
	}
	return msg.Result, nil
}

// callTool calls a tool through /rpc and returns the text of its result.
func (in *instance) callTool(ctx context.Context, name string, args map[string]any, headers ...string) (string, error) {
	if args == nil {
		args = map[string]any{}
	}
	res, err := in.call(ctx, "tools/call", map[string]any{"name": name, "arguments": args}, headers...)
	if err != nil {
		return "", err
	}
	return toolText(res)
}

// toolText returns the text content of a tools/call result, failing on an
// isError result.
func toolText(result json.RawMessage) (string, error) {
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return "", fmt.Errorf("tools/call result %s: %w", result, err)
	}
	if r.IsError || len(r.Content) == 0 {
		return "", fmt.Errorf("tools/call result is an error or empty: %s", result)
	}
	return r.Content[0].Text, nil
}

// forwarded calls the headers tool of upstream slug through the instance's
// /rpc with headers, and returns the HTTP headers the upstream received
// with that very call.
func (in *instance) forwarded(ctx context.Context, slug string, headers ...string) (http.Header, error) {
	text, err := in.callTool(ctx, slug+"-headers", nil, headers...)
	if err != nil {
		return nil, err
	}
	return headersOf(text)
}

// headersOf reads what the headers tool returns.
func headersOf(text string) (http.Header, error) {
	var h http.Header
	if err := json.Unmarshal([]byte(text), &h); err != nil {
		return nil, fmt.Errorf("the headers tool returned %q: %w", text, err)
	}
	return h, nil
}

// tools returns the names tools/list on the instance's /rpc gives.
func (in *instance) tools(ctx context.Context) ([]string, error) {
	res, err := in.call(ctx, "tools/list", map[string]any{})
	if err != nil {
		return nil, err
	}
	return toolNames(res)
}

func toolNames(result json.RawMessage) ([]string, error) {
	var list struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(result, &list); err != nil {
		return nil, fmt.Errorf("tools/list result %s: %w", result, err)
	}
	names := make([]string, 0, len(list.Tools))
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	return names, nil
}

// request returns a JSON-RPC request with a numeric id.
func request(t *testing.T, id int, method string, params any) []byte {
	t.Helper()
	m, err := jsonrpc.NewRequest(json.RawMessage(strconv.Itoa(id)), method, params)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jsonrpc.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// notification returns a JSON-RPC notification.
func notification(t *testing.T, method string) []byte {
	t.Helper()
	m, err := jsonrpc.NewNotification(method, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := jsonrpc.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func initializeParams() map[string]any {
	return map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "cluster-test", "version": "1"}}
}

// mcpReply is what a POST to /mcp got.
type mcpReply struct {
	status  int
	session string          // the Mcp-Session-Id header of the answer
	answer  jsonrpc.Message // the response, for a request answered 200
	body    string          // the body, for anything else
}

// postMCP posts one message to the instance's Streamable HTTP endpoint, in
// session (none for initialize), with extra headers. A 200 answer is read
// whether it comes as JSON or as an event stream.
func (in *instance) postMCP(t *testing.T, session string, msg []byte, headers ...string) mcpReply {
	t.Helper()
	return in.postStreamable(t, "/mcp", session, msg, headers...)
}

// postStreamable is postMCP to the Streamable HTTP endpoint at path (/mcp,
// or a relay's /gateways/{id}/mcp).
func (in *instance) postStreamable(t *testing.T, path, session string, msg []byte, headers ...string) mcpReply {
	t.Helper()
	h := append([]string{"Accept", "application/json, text/event-stream"}, headers...)
	if session != "" {
		h = append(h, "Mcp-Session-Id", session, "Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := in.open(t.Context(), "POST", path, msg, h...)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := mcpReply{status: resp.StatusCode, session: resp.Header.Get("Mcp-Session-Id")}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		r.body = string(b)
		return r
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		br := bufio.NewReader(resp.Body)
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				t.Fatalf("POST %s on %s: the event stream ended without an answer: %v", path, in.name, err)
			}
			if m, err := jsonrpc.DecodeMessage([]byte(e.Data)); err == nil && m.IsResponse() {
				r.answer = m
				return r
			}
		}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s on %s: %v", path, in.name, err)
	}
	if r.answer, err = jsonrpc.DecodeMessage(b); err != nil {
		t.Fatalf("POST %s on %s answered %s: %v", path, in.name, b, err)
	}
	return r
}

// sseSession is a legacy SSE session (GET /sse) as a client holds it.
type sseSession struct {
	at       *instance
	endpoint string // the endpoint event's data: /message?session_id=…
	messages chan jsonrpc.Message
	ended    chan struct{} // closed when the stream ends
	err      error         // why it ended; set before ended is closed
}

// openSSE opens GET /sse on the instance with headers, reads the endpoint
// event, and keeps reading the stream's messages until the test ends.
func openSSE(t *testing.T, at *instance, headers ...string) *sseSession {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", at.url+"/sse", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+at.d.token)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	// A client of its own: streams never end by a timeout, and the
	// deployment's idle connections are no business of theirs.
	transport := &http.Transport{}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /sse on %s: %v", at.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /sse on %s: %d %s", at.name, resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	endpoint := make(chan mcptest.Event, 1)
	s := &sseSession{at: at, messages: make(chan jsonrpc.Message, 64), ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		first := true
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				s.err = err
				if first {
					close(endpoint)
				}
				return
			}
			if first {
				endpoint <- e
				first = false
				continue
			}
			if e.Name != "message" {
				continue
			}
			m, err := jsonrpc.DecodeMessage([]byte(e.Data))
			if err != nil {
				s.err = fmt.Errorf("a message event that is not JSON-RPC: %q: %w", e.Data, err)
				return
			}
			select {
			case s.messages <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.ended
		transport.CloseIdleConnections()
	})
	select {
	case e, ok := <-endpoint:
		if !ok || e.Name != "endpoint" {
			t.Fatalf("GET /sse on %s: the first event is %+v, not endpoint (stream: %v)", at.name, e, s.err)
		}
		s.endpoint = e.Data
	case <-time.After(requestTimeout):
		t.Fatalf("GET /sse on %s: no endpoint event within %s", at.name, requestTimeout)
	}
	return s
}

// post posts a message for the session to the /message endpoint of the
// instance to (which need not be the one holding the stream).
func (s *sseSession) post(t *testing.T, to *instance, msg []byte, headers ...string) (int, string) {
	t.Helper()
	status, out := to.do(t, "POST", s.endpoint, msg, headers...)
	return status, string(out)
}

// answer waits, within requestTimeout, for the response to request id on
// the session's stream; other messages are skipped.
func (s *sseSession) answer(t *testing.T, id int) jsonrpc.Message {
	t.Helper()
	want := strconv.Itoa(id)
	timeout := time.After(requestTimeout)
	for {
		select {
		case m := <-s.messages:
			if m.IsResponse() && string(m.ID) == want {
				return m
			}
		case <-s.ended:
			t.Fatalf("the SSE stream on %s ended before the answer to %s: %v", s.at.name, want, s.err)
		case <-timeout:
			t.Fatalf("no answer to %s on the SSE stream on %s within %s", want, s.at.name, requestTimeout)
		}
	}
}

// initialize runs the MCP handshake of the session, posting to the
// instance to, and checks that mcpgate answered.
func (s *sseSession) initialize(t *testing.T, to *instance, headers ...string) {
	t.Helper()
	if status, out := s.post(t, to, request(t, 1, "initialize", initializeParams()), headers...); status != http.StatusAccepted {
		t.Fatalf("initialize posted to %s for a session on %s: %d %s, want 202", to.name, s.at.name, status, out)
	}
	res := s.answer(t, 1)
	if res.Error != nil || !strings.Contains(string(res.Result), `"mcpgate"`) {
		t.Fatalf("initialize answered %s %v, want mcpgate's serverInfo", res.Result, res.Error)
	}
	if status, out := s.post(t, to, notification(t, "notifications/initialized"), headers...); status != http.StatusAccepted {
		t.Fatalf("notifications/initialized posted to %s: %d %s, want 202", to.name, status, out)
	}
}

// callHeaders calls the headers tool of upstream slug in the session,
// posting to the instance to, and returns what the upstream received.
func (s *sseSession) callHeaders(t *testing.T, to *instance, id int, slug string, headers ...string) http.Header {
	t.Helper()
	msg := request(t, id, "tools/call", map[string]any{"name": slug + "-headers", "arguments": map[string]any{}})
	if status, out := s.post(t, to, msg, headers...); status != http.StatusAccepted {
		t.Fatalf("tools/call posted to %s for a session on %s: %d %s, want 202", to.name, s.at.name, status, out)
	}
	res := s.answer(t, id)
	if res.Error != nil {
		t.Fatalf("tools/call %s-headers: %v", slug, res.Error)
	}
	text, err := toolText(res.Result)
	if err != nil {
		t.Fatal(err)
	}
	h, err := headersOf(text)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitEnded waits, within a bound, for the stream to end and says why it
// did.
func (s *sseSession) waitEnded(within time.Duration) (ended bool, why error) {
	select {
	case <-s.ended:
		if s.err == nil {
			return true, errors.New("stream closed")
		}
		return true, s.err
	case <-time.After(within):
		return false, nil
	}
}
