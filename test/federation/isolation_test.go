package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

// isolationWait bounds every wait for a notification in the isolation tests.
const isolationWait = 10 * time.Second

// logLevels are the levels the upstream's report tool logs at, one message
// each, lowest first.
var logLevels = []mcp.LoggingLevel{"debug", "info", "warning", "error"}

// startIsolationUpstream runs an official go-sdk server over Streamable
// HTTP on 127.0.0.1 with two resources, iso://a and iso://b, that clients
// can subscribe to, and two tools:
//   - report {tag}: asks the calling session for its roots (roots/list) and
//     for a sampling answer (sampling/createMessage), logs one message
//     "tag/level" at each of logLevels (the SDK drops those below the
//     session's logging/setLevel), and returns {"roots": [...], "sampled": "..."};
//   - touch {uri}: says notifications/resources/updated for uri to every
//     session subscribed to it (the SDK tracks subscriptions per session).
//
// internal/mcptest's server has no subscription handlers, hence this one.
func startIsolationUpstream(t *testing.T) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "isolation", Version: "test"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	for _, uri := range []string{"iso://a", "iso://b"} {
		srv.AddResource(&mcp.Resource{URI: uri, Name: strings.TrimPrefix(uri, "iso://"), MIMEType: "text/plain"},
			func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: req.Params.URI}}}, nil
			})
	}
	type reportArgs struct {
		Tag string `json:"tag"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "report", Description: "Asks the caller for roots and a sampling answer, and logs at four levels."},
		func(ctx context.Context, req *mcp.CallToolRequest, in reportArgs) (*mcp.CallToolResult, any, error) {
			out := map[string]any{}
			if roots, err := req.Session.ListRoots(ctx, nil); err != nil {
				out["roots"] = "error: " + err.Error()
			} else {
				var uris []string
				for _, r := range roots.Roots {
					uris = append(uris, r.URI)
				}
				out["roots"] = uris
			}
			sampled, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
				MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "who are you?"}}},
			})
			if err != nil {
				out["sampled"] = "error: " + err.Error()
			} else if tc, ok := sampled.Content.(*mcp.TextContent); ok {
				out["sampled"] = tc.Text
			}
			for _, level := range logLevels {
				if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: level, Data: in.Tag + "/" + string(level)}); err != nil {
					return nil, nil, fmt.Errorf("log at %s: %w", level, err)
				}
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
		})
	type touchArgs struct {
		URI string `json:"uri"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "touch", Description: "Says resources/updated for uri to its subscribers."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in touchArgs) (*mcp.CallToolResult, any, error) {
			if err := srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: in.URI}); err != nil {
				return nil, nil, fmt.Errorf("resources/updated %s: %w", in.URI, err)
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "touched"}}}, nil, nil
		})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close() // streams still open after the grace period
		<-served
	})
	return "http://" + ln.Addr().String() + "/mcp"
}

// isoClient is one go-sdk client of the isolation tests, with what the
// upstream sent it.
type isoClient struct {
	name    string
	root    string
	sampled string
	level   mcp.LoggingLevel
	subURI  string
	session *mcp.ClientSession

	mu      sync.Mutex
	logs    []string // data of every notifications/message
	updated []string // uri of every notifications/resources/updated
	changed chan struct{}
}

func (c *isoClient) record(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitUntil waits for cond on what the client received, woken by each
// notification, for at most isolationWait.
func (c *isoClient) waitUntil(cond func(logs, updated []string) bool) bool {
	timeout := time.After(isolationWait)
	for {
		c.mu.Lock()
		ok := cond(c.logs, c.updated)
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.changed:
		case <-timeout:
			return false
		}
	}
}

func (c *isoClient) received() (logs, updated []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.logs), slices.Clone(c.updated)
}

// connectIsoClient connects a go-sdk client with its own root, sampling
// answer and notification records through transport.
func connectIsoClient(t *testing.T, c *isoClient, transport mcp.Transport) {
	t.Helper()
	c.changed = make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "client-" + c.name, Version: "test"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "model-" + c.name, Role: "assistant", Content: &mcp.TextContent{Text: c.sampled}}, nil
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			c.record(func() { c.logs = append(c.logs, fmt.Sprint(req.Params.Data)) })
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			c.record(func() { c.updated = append(c.updated, req.Params.URI) })
		},
	})
	client.AddRoots(&mcp.Root{URI: c.root, Name: "root-" + c.name})
	// Not a shorter context: the go-sdk's SSE transport keeps its event
	// stream under the context Connect is given.
	// A session client (2025-11-25): the battery asks it mid-call, which
	// a 2026-07-28 client (the go-sdk default) is not, yet.
	s, err := client.Connect(t.Context(), transport, &mcp.ClientSessionOptions{ProtocolVersion: protocol.Version20251125})
	if err != nil {
		t.Fatalf("client %s: connect: %v", c.name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c.session = s
}

// TestTwoClientsNeverCross: two go-sdk clients at once on one upstream
// through mcpgate, with different roots, sampling answers, log levels and
// subscriptions: the upstream's roots/list and sampling/createMessage reach
// the client whose call asked, each client's logging/setLevel applies to
// its own upstream session only, and resources/updated reaches the client
// subscribed to that URI only — through /mcp and through /sse. The same
// checks run first on the upstream directly, where they hold.
func TestTwoClientsNeverCross(t *testing.T) {
	upstream := startIsolationUpstream(t)
	gw := start(t, nil)
	if v := gw.Register(t, map[string]any{"name": "iso", "url": upstream}); v.Status != "available" {
		t.Fatalf("the go-sdk upstream registered as %q: %s", v.Status, v.StatusReason)
	}
	doors := []struct {
		name      string
		prefix    string // of the upstream's tool names
		transport func() mcp.Transport
	}{
		// The control: directly on the upstream, what the test asks holds.
		{"the upstream directly", "", func() mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: upstream, MaxRetries: -1}
		}},
		{"/mcp", "iso-", func() mcp.Transport {
			return &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp", HTTPClient: gw.HTTPClient(), MaxRetries: -1}
		}},
		{"/sse", "iso-", func() mcp.Transport {
			return &mcp.SSEClientTransport{Endpoint: gw.URL + "/sse", HTTPClient: gw.HTTPClient()}
		}},
	}
	for _, door := range doors {
		t.Run(strings.TrimPrefix(door.name, "/"), func(t *testing.T) {
			report, touch := door.prefix+"report", door.prefix+"touch"
			a := &isoClient{name: "a", root: "file:///client-a", sampled: "I am client a", level: "debug", subURI: "iso://a"}
			b := &isoClient{name: "b", root: "file:///client-b", sampled: "I am client b", level: "error", subURI: "iso://b"}
			clients := []*isoClient{a, b}
			for _, c := range clients {
				connectIsoClient(t, c, door.transport())
				if err := c.session.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: c.level}); err != nil {
					t.Fatalf("client %s: logging/setLevel %s through %s: %v", c.name, c.level, door.name, err)
				}
				if err := c.session.Subscribe(t.Context(), &mcp.SubscribeParams{URI: c.subURI}); err != nil {
					t.Fatalf("client %s: resources/subscribe %s through %s: %v", c.name, c.subURI, door.name, err)
				}
			}

			// Both clients call report at the same time.
			reports := make([]string, len(clients))
			errs := make([]error, len(clients))
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Go(func() {
					res, err := c.session.CallTool(t.Context(), &mcp.CallToolParams{Name: report, Arguments: map[string]any{"tag": c.name}})
					switch {
					case err != nil:
						errs[i] = err
					case res.IsError || len(res.Content) == 0:
						errs[i] = fmt.Errorf("tool error: %v", res.Content)
					default:
						if tc, ok := res.Content[0].(*mcp.TextContent); ok {
							reports[i] = tc.Text
						}
					}
				})
			}
			wg.Wait()
			for i, c := range clients {
				if errs[i] != nil {
					t.Errorf("client %s: %s through %s: %v", c.name, report, door.name, errs[i])
					continue
				}
				var got struct {
					Roots   any    `json:"roots"`
					Sampled string `json:"sampled"`
				}
				if err := json.Unmarshal([]byte(reports[i]), &got); err != nil {
					t.Errorf("client %s: %s answered %q: %v", c.name, report, reports[i], err)
					continue
				}
				if roots, _ := got.Roots.([]any); len(roots) != 1 || roots[0] != c.root {
					t.Errorf("client %s through %s: the upstream's roots/list got %v; want only this client's root [%s]", c.name, door.name, got.Roots, c.root)
				}
				if got.Sampled != c.sampled {
					t.Errorf("client %s through %s: the upstream's sampling/createMessage got %q; want this client's answer %q", c.name, door.name, got.Sampled, c.sampled)
				}
			}

			// Logging: a (debug) gets its four messages, b (error) its one;
			// neither gets the other's.
			want := map[*isoClient][]string{a: {"a/debug", "a/info", "a/warning", "a/error"}, b: {"b/error"}}
			for _, c := range clients {
				c.waitUntil(func(logs, _ []string) bool { return containsAll(logs, want[c]) })
			}

			// Subscriptions: a touches both URIs; each client is told of its own.
			for _, uri := range []string{"iso://a", "iso://b"} {
				if _, err := a.session.CallTool(t.Context(), &mcp.CallToolParams{Name: touch, Arguments: map[string]any{"uri": uri}}); err != nil {
					t.Errorf("%s %s through %s: %v", touch, uri, door.name, err)
				}
			}
			for _, c := range clients {
				c.waitUntil(func(_, updated []string) bool { return slices.Contains(updated, c.subURI) })
			}

			for _, c := range clients {
				logs, updated := c.received()
				t.Logf("client %s through %s: logs %v, resources/updated %v", c.name, door.name, logs, updated)
				if !containsAll(logs, want[c]) {
					t.Errorf("client %s (level %s) through %s got the log messages %v; want %v", c.name, c.level, door.name, logs, want[c])
				}
				for _, l := range logs {
					if !slices.Contains(want[c], l) && strings.Contains(l, "/") {
						t.Errorf("client %s (level %s) through %s got the log message %q: another client's, or below its level", c.name, c.level, door.name, l)
					}
				}
				if !slices.Contains(updated, c.subURI) {
					t.Errorf("client %s through %s got resources/updated for %v; want %s, which it subscribed to", c.name, door.name, updated, c.subURI)
				}
				for _, u := range updated {
					if u != c.subURI {
						t.Errorf("client %s through %s got resources/updated for %s, which only the other client subscribed to", c.name, door.name, u)
					}
				}
			}
		})
	}
}

// containsAll reports whether every one of want is in got.
func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}
