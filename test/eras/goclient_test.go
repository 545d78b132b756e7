package eras

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// sampledText and elicitedName are what the matrix's clients answer.
	sampledText  = "eras-sampled"
	elicitedName = "eras-name"
)

// headerTransport adds fixed headers to every request: mcpgate's token and
// the cell's X-Tenant-Id.
type headerTransport struct {
	header http.Header
	next   http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return h.next.RoundTrip(r)
}

// signal is a channel closed once, by the first of any number of callers.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }
func (s *signal) fire()  { s.once.Do(func() { close(s.ch) }) }

// goClient runs one cell with the official go-sdk client asking for era
// (ClientSessionOptions.ProtocolVersion; at 2026-07-28 it tries
// server/discover first and falls back to initialize at 2025-11-25).
func goClient(era string) func(t *testing.T, c cell) map[string]outcome {
	return func(t *testing.T, c cell) map[string]outcome {
		out := map[string]outcome{}
		var mu sync.Mutex
		progressToken := "progress-" + c.Region
		progressed := 0
		progressDone := newSignal()
		var listChanged, updated *signal
		listChanged, updated = newSignal(), newSignal()
		client := mcp.NewClient(&mcp.Implementation{Name: "eras-go-client", Version: era}, &mcp.ClientOptions{
			CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
				return &mcp.CreateMessageResult{Role: "assistant", Model: "eras", Content: &mcp.TextContent{Text: sampledText}}, nil
			},
			ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": elicitedName}}, nil
			},
			ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
				if fmt.Sprint(req.Params.ProgressToken) != progressToken {
					return
				}
				mu.Lock()
				progressed++
				if progressed >= 3 {
					progressDone.fire()
				}
				mu.Unlock()
			},
			ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
				mu.Lock()
				s := listChanged
				mu.Unlock()
				s.fire()
			},
			ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
				if req.Params.URI == c.Up.Tools.Watched {
					mu.Lock()
					s := updated
					mu.Unlock()
					s.fire()
				}
			},
		})
		header := http.Header{"Authorization": {"Bearer " + c.Token}, "X-Tenant-Id": {c.Tenant}}
		httpClient := &http.Client{Transport: headerTransport{header, http.DefaultTransport}}
		ctx, cancel := context.WithTimeout(t.Context(), cellTimeout)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: c.Door.Endpoint, HTTPClient: httpClient}, &mcp.ClientSessionOptions{ProtocolVersion: era})
		cancel()
		if err != nil {
			return allFail("connect: " + err.Error())
		}
		defer cs.Close()

		want := era
		if c.Door.Name == "relay" && era < "2026-07-28" && c.Up.Era < "2026-07-28" && c.Up.Era != era {
			// The relay is 1:1: the upstream's own answer to initialize
			// passes through, and an upstream of an earlier revision
			// speaks only its own (startGoUpstream), so a client asking
			// for another session revision gets the upstream's
			// (docs/revisions.md, Clients). A 2026-07-28 client opens
			// no session: it speaks its own revision to mcpgate.
			want = c.Up.Era
		}
		if got := cs.InitializeResult().ProtocolVersion; got == want {
			out["era"] = pass()
		} else {
			out["era"] = fail("mcpgate negotiated %s with a client asking for %s (want %s)", got, era, want)
		}

		tools := c.Up.Tools
		// tools/list first: the go-sdk client mirrors x-mcp-header
		// arguments into Mcp-Param-* from the listed tools' schemas.
		listCtx, cancelList := context.WithTimeout(t.Context(), cellTimeout)
		_, listErr := cs.ListTools(listCtx, nil)
		cancelList()
		call := func(ctx context.Context, name string, args map[string]any, meta mcp.Meta) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, cellTimeout)
			defer cancel()
			if args == nil {
				args = map[string]any{} // some servers refuse arguments: null
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.Door.Prefix + name, Arguments: args, Meta: meta})
			if err != nil {
				return "", err
			}
			var texts []string
			for _, content := range res.Content {
				if tc, ok := content.(*mcp.TextContent); ok {
					texts = append(texts, tc.Text)
				}
			}
			if res.IsError {
				return "", fmt.Errorf("tool error: %s", strings.Join(texts, " "))
			}
			return strings.Join(texts, " "), nil
		}
		wait := func(s *signal) bool {
			select {
			case <-s.ch:
				return true
			case <-time.After(notifyWait):
				return false
			}
		}

		if listErr != nil {
			out["call"] = fail("tools/list: %v", listErr)
		} else if got, err := call(t.Context(), tools.Echo, echoArgs(c), nil); err != nil {
			out["call"] = fail("tools/call %s: %v", tools.Echo, err)
		} else if !strings.Contains(got, c.Region) {
			out["call"] = fail("tools/call %s answered %q, without the region %s", tools.Echo, got, c.Region)
		} else {
			out["call"] = checkHop(c, tools.Echo)
		}

		if got, err := call(t.Context(), tools.Progress, nil, mcp.Meta{"progressToken": progressToken}); err != nil {
			out["progress"] = fail("tools/call %s: %v", tools.Progress, err)
		} else if !wait(progressDone) {
			mu.Lock()
			n := progressed
			mu.Unlock()
			out["progress"] = fail("%d of 3 progress notifications reached the client within %s (the call answered %q)", n, notifyWait, got)
		} else {
			out["progress"] = pass()
		}

		out["sampling"] = checkAnswer(call(t.Context(), tools.Sample, nil, nil))(tools.Sample, sampledText)
		out["elicitation"] = checkAnswer(call(t.Context(), tools.Elicit, nil, nil))(tools.Elicit, elicitedName)

		mu.Lock()
		listChanged = newSignal() // what arrived before the change does not count
		s := listChanged
		mu.Unlock()
		if _, err := call(t.Context(), tools.AddTool, nil, nil); err != nil {
			out["list_changed"] = fail("tools/call %s: %v", tools.AddTool, err)
		} else if !wait(s) {
			out["list_changed"] = fail("no notifications/tools/list_changed reached the client within %s of the upstream's change", notifyWait)
		} else {
			out["list_changed"] = pass()
		}

		out["subscription"] = func() outcome {
			ctx, cancel := context.WithTimeout(t.Context(), cellTimeout)
			defer cancel()
			if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: tools.Watched}); err != nil {
				return fail("subscribe to %s: %v", tools.Watched, err)
			}
			mu.Lock()
			updated = newSignal()
			s := updated
			mu.Unlock()
			if !tools.TouchesItself {
				if _, err := call(t.Context(), tools.Touch, nil, nil); err != nil {
					return fail("tools/call %s: %v", tools.Touch, err)
				}
			}
			if !wait(s) {
				return fail("no notifications/resources/updated for %s reached the client within %s", tools.Watched, notifyWait)
			}
			return pass()
		}()

		out["cancellation"] = checkCancellation(c, func(ctx context.Context, region string) error {
			// The tools changed since the first tools/list: list them
			// again for the x-mcp-header mirroring.
			if _, err := cs.ListTools(ctx, nil); err != nil {
				return fmt.Errorf("tools/list: %w", err)
			}
			_, err := call(ctx, tools.Block, map[string]any{"region": region}, nil)
			return err
		}, nil)
		return out
	}
}

// echoArgs are the arguments of the cell's echo call.
func echoArgs(c cell) map[string]any {
	args := map[string]any{"region": c.Region}
	if c.Up.Tools.EchoCity {
		args["city"] = city
	}
	return args
}

// checkAnswer turns a call's answer into the outcome of a feature whose
// answer must contain want.
func checkAnswer(got string, err error) func(tool, want string) outcome {
	return func(tool, want string) outcome {
		switch {
		case err != nil:
			return fail("tools/call %s: %v", tool, err)
		case !strings.Contains(got, want):
			return fail("tools/call %s answered %q, without the client's %q", tool, got, want)
		}
		return pass()
	}
}

// checkHop checks what the upstream received with the cell's echo call:
// the passthrough header, and on a 2026-07-28 upstream the per-hop headers
// mcpgate must compute for that hop (Mcp-Method, Mcp-Name with the
// upstream's own tool name, Mcp-Param-Region and Mcp-Param-City from the
// x-mcp-header arguments, MCP-Protocol-Version).
func checkHop(c cell, tool string) outcome {
	seen, ok := c.Up.rec.call(c.Region)
	if !ok {
		return fail("the upstream received no tools/call with region %s", c.Region)
	}
	var wrong []string
	expect := func(name, want string) {
		if got := seen.Header.Get(name); got != want {
			wrong = append(wrong, fmt.Sprintf("%s %q, want %q", name, got, want))
		}
	}
	expect("X-Tenant-Id", c.Tenant)
	if seen.Name != tool {
		wrong = append(wrong, fmt.Sprintf("params.name %q, want %q", seen.Name, tool))
	}
	if c.Up.Era >= "2026-07-28" {
		expect("Mcp-Method", "tools/call")
		expect("Mcp-Name", tool)
		expect("Mcp-Param-Region", c.Region)
		if c.Up.Tools.EchoCity {
			expect("Mcp-Param-City", cityHeader)
		}
		expect("Mcp-Protocol-Version", c.Up.Era)
	}
	if len(wrong) > 0 {
		return fail("at the upstream: %s", strings.Join(wrong, "; "))
	}
	return pass()
}

// checkCancellation starts the block call of the cell (with call, which
// must return once its context ends), waits until the upstream has it,
// cancels it, and checks that the cancellation reached the upstream as its
// revision says: a legacy upstream's handler sees its context end
// (notifications/cancelled), a 2026-07-28 upstream sees the call's stream
// closed. abort, when not nil, cancels the call instead of the context (for a
// client in another process).
func checkCancellation(c cell, call func(ctx context.Context, region string) error, abort func() error) outcome {
	tools := c.Up.Tools
	if tools.Block == "" {
		return notApplicable("%s has no tool that blocks until cancelled", c.Up.Name)
	}
	region := c.Region + "-block"
	ctx, cancel := context.WithTimeout(context.Background(), cellTimeout)
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- call(ctx, region) }()
	select {
	case <-c.Up.started(region):
	case err := <-returned:
		return fail("tools/call %s ended before it reached the upstream: %v", tools.Block, err)
	case <-time.After(cellTimeout):
		return fail("tools/call %s did not start at the upstream within %s", tools.Block, cellTimeout)
	}
	if abort != nil {
		if err := abort(); err != nil {
			return fail("cancel tools/call %s: %v", tools.Block, err)
		}
	} else {
		cancel()
	}
	select {
	case err := <-returned:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fail("the cancelled tools/call %s ended with %v", tools.Block, err)
		}
	case <-time.After(notifyWait):
		return fail("the client's cancelled tools/call %s did not return within %s", tools.Block, notifyWait)
	}
	select {
	case <-c.Up.cancelled(region):
	case <-time.After(notifyWait):
		return fail("the client cancelled tools/call %s, but within %s nothing showed it at the upstream (want: %s)", tools.Block, notifyWait, c.Up.cancelledHow)
	}
	return pass()
}
