package eras

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// watchedURI is the resource every upstream of the matrix lets clients
// subscribe to (the everything-server has its own, see everythingTools).
const watchedURI = "eras://watched"

// upstreamTools names, per feature, the tool an upstream offers for it; ""
// when the upstream has none (the cell is then "not applicable").
type upstreamTools struct {
	Echo     string // {region, city}: they carry x-mcp-header "Region" and "City"
	Progress string // sends progress notifications for the call's token
	Sample   string // asks the client for a sampling answer mid-call
	Elicit   string // asks the client for a form elicitation mid-call
	AddTool  string // adds a tool: notifications/tools/list_changed
	Touch    string // says notifications/resources/updated for Watched
	Block    string // {region}: blocks until its context ends
	Watched  string // the resource URI to subscribe to
	// TouchesItself: Watched is updated by the upstream on its own (every
	// few seconds) rather than by Touch.
	TouchesItself bool
	// AddToolChangesOnce: AddTool adds the same tool every time, so only
	// its first call changes the upstream's list.
	AddToolChangesOnce bool
	// EchoCity: Echo has the city argument (the everything-server's has
	// region only).
	EchoCity bool
}

// matrixTools are the tools of the matrix's own upstreams (go-sdk and
// TypeScript alike).
var matrixTools = upstreamTools{
	Echo: "echo", Progress: "progress", Sample: "sample", Elicit: "elicit",
	AddTool: "addtool", Touch: "touch", Block: "block", Watched: watchedURI, EchoCity: true,
}

// everythingTools map the features onto the go-sdk conformance
// everything-server's tools: it updates test://watched-resource every 3 s
// by itself and has no tool that blocks.
var everythingTools = upstreamTools{
	Echo: "test_x_mcp_header", Progress: "test_tool_with_progress",
	Sample: "test_input_required_result_sampling", Elicit: "test_input_required_result_elicitation",
	AddTool: "test_trigger_tool_change", AddToolChangesOnce: true, Watched: "test://watched-resource", TouchesItself: true,
}

// upstream is one upstream MCP server of the matrix, behind a recording
// proxy that shows what mcpgate sent it.
type upstream struct {
	Name  string // as the matrix prints it
	Era   string // the newest revision it speaks
	URL   string // the recording proxy's MCP endpoint, what mcpgate is given
	Tools upstreamTools
	rec   *recorder
	// started returns a channel closed once the block call with region is
	// in the upstream's hands (its handler runs, or on a 2026-07-28
	// upstream, it reached it); cancelled one closed once that call was
	// cancelled as the upstream's revision says, which cancelledHow names.
	// Both are nil when the upstream has no block tool.
	started, cancelled func(region string) <-chan struct{}
	cancelledHow       string
}

// seenCall is what the upstream received with one tools/call.
type seenCall struct {
	Header http.Header
	Name   string // params.name
}

// recorder is a reverse proxy in front of an upstream: it keeps the
// headers of every tools/call by the call's region argument (each cell
// uses its own), and signals when such a call arrives and when it is
// cancelled.
type recorder struct {
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	calls   map[string]seenCall // by region
	regions map[string]string   // a tools/call's JSON-RPC id → its region, while in flight
	// By region: a call with it arrived; its caller went away before the
	// upstream answered, or cancelled it.
	arrived, closed signals
}

func newRecorder(target string) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	r := &recorder{calls: map[string]seenCall{}, regions: map[string]string{}}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.URL.Path = u.Path; pr.Out.Host = u.Host },
		FlushInterval: -1, // event streams go through as they come
		// A caller that goes away is what cancellation looks like: not an
		// error worth a log line.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return r
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string          `json:"name"`
				Arguments map[string]any  `json:"arguments"`
				RequestID json.RawMessage `json:"requestId"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Method == "notifications/cancelled" {
			r.mu.Lock()
			region, ok := r.regions[string(msg.Params.RequestID)]
			r.mu.Unlock()
			if ok {
				r.closed.fire(region)
			}
		}
		if msg.Method == "tools/call" {
			if region, ok := msg.Params.Arguments["region"].(string); ok {
				r.mu.Lock()
				r.calls[region] = seenCall{Header: req.Header.Clone(), Name: msg.Params.Name}
				r.regions[string(msg.ID)] = region
				r.mu.Unlock()
				r.arrived.fire(region)
				r.proxy.ServeHTTP(w, req)
				r.mu.Lock()
				delete(r.regions, string(msg.ID)) // ids repeat across sessions: map the calls in flight only
				r.mu.Unlock()
				// On Streamable HTTP at 2026-07-28, closing the call's
				// response stream is the cancellation (spec 2026-07-28,
				// basic/patterns/cancellation).
				if req.Context().Err() != nil {
					r.closed.fire(region)
				}
				return
			}
		}
	}
	r.proxy.ServeHTTP(w, req)
}

// call returns what the upstream received with the tools/call whose
// region argument is region.
func (r *recorder) call(region string) (seenCall, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.calls[region]
	return c, ok
}

// serve runs h on a loopback port until the test ends and returns its
// base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close() // streams still open after the grace period
		<-served
	})
	return "http://" + ln.Addr().String()
}

// behind puts a recorder in front of the MCP endpoint target.
func behind(t *testing.T, target string) (*recorder, string) {
	rec := newRecorder(target)
	return rec, serve(t, rec) + "/mcp"
}

// signals is a set of one-shot signals by name.
type signals struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (s *signals) ch(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]chan struct{}{}
	}
	c, ok := s.m[name]
	if !ok {
		c = make(chan struct{})
		s.m[name] = c
	}
	return c
}

func (s *signals) fire(name string) {
	c := s.ch(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

// wait returns the channel of name, as a receive-only one.
func (s *signals) wait(name string) <-chan struct{} { return s.ch(name) }

// regionSchema is the input schema of echo and block: on 2026-07-28 hops
// region is mirrored into Mcp-Param-Region and city into Mcp-Param-City
// (x-mcp-header), city in the revision's base64 form when it is not plain
// ASCII.
var regionSchema = json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"city":{"type":"string","x-mcp-header":"City"}},"required":["region"]}`)

// city is the non-ASCII argument of the echo calls, and cityHeader its
// Mcp-Param-City value (SEP-2243's =?base64?…?= form).
const (
	city       = "Zürich"
	cityHeader = "=?base64?WsO8cmljaA==?="
)

type regionArgs struct {
	Region string `json:"region"`
	City   string `json:"city,omitempty"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// startGoUpstream runs an official go-sdk server speaking only era:
// stateful Streamable HTTP for the 2025 revisions, Stateless for
// 2026-07-28 (the go-sdk serves 2026-07-28 only so). Its sampling and
// elicitation tools are written in the Multi Round-Trip style, which the
// go-sdk turns into legacy server-to-client requests for older clients.
func startGoUpstream(t *testing.T, era string) *upstream {
	t.Helper()
	var added atomic.Int64
	var blockStarted, blockEnded signals
	srv := mcp.NewServer(&mcp.Implementation{Name: "eras-go-" + era, Version: "test"}, &mcp.ServerOptions{
		SupportedProtocolVersions: []string{era},
		SubscribeHandler:          func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler:        func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		HasTools:                  true,
	})
	srv.AddResource(&mcp.Resource{URI: watchedURI, Name: "watched", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "watched"}}}, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Answers region=<region>.", InputSchema: regionSchema},
		func(_ context.Context, _ *mcp.CallToolRequest, in regionArgs) (*mcp.CallToolResult, any, error) {
			return text("region=" + in.Region + " city=" + in.City), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "progress", Description: "Says three progress notifications."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			if token == nil {
				return text("no progress token"), nil, nil
			}
			for i := range 3 {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i + 1), Total: 3, Message: "step"}); err != nil {
					return nil, nil, fmt.Errorf("progress %d: %w", i+1, err)
				}
			}
			return text("done"), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "sample", Description: "Asks the client for a sampling answer."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			// The go-sdk decodes a sampling answer with a role as the
			// with-tools result, a list of contents.
			switch r := req.Params.InputResponses["s"].(type) {
			case *mcp.CreateMessageWithToolsResult:
				for _, c := range r.Content {
					if tc, ok := c.(*mcp.TextContent); ok {
						return text("sampled=" + tc.Text), nil, nil
					}
				}
				return text("sampled=?"), nil, nil
			case *mcp.CreateMessageResult:
				if tc, ok := r.Content.(*mcp.TextContent); ok {
					return text("sampled=" + tc.Text), nil, nil
				}
				return text("sampled=?"), nil, nil
			}
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"s": &mcp.CreateMessageParams{
				MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "who are you?"}}},
			}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "elicit", Description: "Asks the client for a name."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if r, ok := req.Params.InputResponses["e"].(*mcp.ElicitResult); ok {
				return text(fmt.Sprintf("elicited=%s:%v", r.Action, r.Content["name"])), nil, nil
			}
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"e": &mcp.ElicitParams{
				Message:         "Your name?",
				RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`),
			}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "addtool", Description: "Adds a tool (tools/list_changed)."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			name := fmt.Sprintf("added%d", added.Add(1))
			mcp.AddTool(srv, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return text(name), nil, nil
			})
			return text("added " + name), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "touch", Description: "Says resources/updated for " + watchedURI + "."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if err := srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: watchedURI}); err != nil {
				return nil, nil, fmt.Errorf("resources/updated: %w", err)
			}
			return text("touched"), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "block", Description: "Blocks until the call is cancelled.", InputSchema: regionSchema},
		func(ctx context.Context, _ *mcp.CallToolRequest, in regionArgs) (*mcp.CallToolResult, any, error) {
			blockStarted.fire(in.Region)
			select {
			case <-ctx.Done():
				blockEnded.fire(in.Region)
				return nil, nil, ctx.Err()
			case <-time.After(cellTimeout):
				return text("not cancelled"), nil, nil
			}
		})
	stateless := era >= "2026-07-28"
	direct := serve(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: stateless})) + "/mcp"
	rec, u := behind(t, direct)
	name := "go-sdk " + era
	if stateless {
		name += " stateless"
	}
	up := &upstream{Name: name, Era: era, URL: u, Tools: matrixTools, rec: rec}
	if stateless {
		// The go-sdk's stateless server does not end a handler's context
		// when the client closes the call's stream (its streamable.go has
		// a TODO for that): what can be seen is the stream closed.
		up.closedStreamCancels()
	} else {
		up.started, up.cancelled = blockStarted.wait, blockEnded.wait
		up.cancelledHow = "its block handler's context ended"
	}
	return up
}

// closedStreamCancels makes the cancellation of up's block calls the
// 2026-07-28 one on Streamable HTTP: the caller closes the call's stream,
// or sends notifications/cancelled for it, which the revision's clients
// SHOULD (spec 2026-07-28, basic/patterns/cancellation).
func (up *upstream) closedStreamCancels() {
	up.started, up.cancelled = up.rec.arrived.wait, up.rec.closed.wait
	up.cancelledHow = "the call's stream to it closed, or notifications/cancelled for it"
}

// child runs a process for the rest of the test, turning each line of its
// stdout into a signal of that name ("exited" once it has), and stops it
// when the test ends.
func child(t *testing.T, name string, cmd *exec.Cmd) *signals {
	t.Helper()
	lines := &signals{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logged := &testenv.LogBuffer{}
	cmd.Stderr = logged
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines.fire(strings.TrimSpace(sc.Text()))
		}
		_ = cmd.Wait() // once the pipe is read to its end, as os/exec asks
		lines.fire("exited")
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
		if t.Failed() {
			t.Logf("%s's stderr:\n%s", name, logged.String())
		}
	})
	return lines
}

// waitListening waits until something accepts connections on addr, or the
// child said "exited", at most startWait.
func waitListening(t *testing.T, name, addr string, lines *signals) {
	t.Helper()
	deadline := time.Now().Add(startWait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-lines.wait("exited"):
			t.Fatalf("%s exited at start", name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept connections on %s within %s", name, addr, startWait)
		}
		time.Sleep(20 * time.Millisecond) // a port to poll: no signal to wait for
	}
}

// startEverythingServer runs the go-sdk conformance everything-server
// (scripts/conformance.sh installs it) in its stateless mode, which speaks
// 2026-07-28 and, statelessly, the older revisions.
func startEverythingServer(t *testing.T, bin string) *upstream {
	t.Helper()
	addr := freeAddr(t)
	lines := child(t, "everything-server", exec.Command(bin, "-http", addr, "-stateless=true"))
	waitListening(t, "everything-server", addr, lines)
	rec, u := behind(t, "http://"+addr+"/mcp")
	return &upstream{Name: "everything-server stateless", Era: "2026-07-28", URL: u, Tools: everythingTools, rec: rec}
}

// startTSUpstream runs ts/server.mjs: a TypeScript SDK v2 server on
// createMcpHandler with legacy: 'reject', which serves 2026-07-28 only.
// It prints "listening ADDR" once it listens.
func startTSUpstream(t *testing.T, node, sdk2 string) *upstream {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(node, filepath.Join("ts", "server.mjs"))
	cmd.Env = append(os.Environ(), "MCPGATE_TEST_TS_SDK2="+sdk2, "ERAS_ADDR="+addr)
	lines := child(t, "the TypeScript SDK v2 server", cmd)
	select {
	case <-lines.wait("listening " + addr):
	case <-lines.wait("exited"):
		t.Fatalf("the TypeScript SDK v2 server exited at start")
	case <-time.After(startWait):
		t.Fatalf("the TypeScript SDK v2 server did not say it listens on %s within %s", addr, startWait)
	}
	rec, u := behind(t, "http://"+addr+"/mcp")
	up := &upstream{Name: "TS SDK v2 server", Era: "2026-07-28", URL: u, Tools: matrixTools, rec: rec}
	up.closedStreamCancels()
	return up
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
