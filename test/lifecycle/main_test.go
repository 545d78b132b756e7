package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// mcpgateBinary is the mcpgate that TestMain built for every test: the
// package's one variable, as TestMain has no other way to hand it over.
var mcpgateBinary string

func TestMain(m *testing.M) { gatewaytest.Main(m, raceEnabled, &mcpgateBinary, "lifecycle tests") }

// start runs mcpgate with the harness's settings and extra ones.
func start(t *testing.T, extra map[string]string) *gatewaytest.Gateway {
	t.Helper()
	return gatewaytest.StartWith(t, mcpgateBinary, extra)
}

// held is a tool, "hold", on an mcptest server that blocks each call until
// the test releases it, and says when a call has arrived.
type held struct {
	arrived chan struct{} // one value per call that arrived
	release chan struct{} // closed by Release
	once    sync.Once
}

// addHoldTool adds the hold tool to up; add it before mcpgate registers up,
// or up tells mcpgate its tools changed.
func addHoldTool(t *testing.T, up *mcptest.Server) *held {
	h := &held{arrived: make(chan struct{}, 16), release: make(chan struct{})}
	t.Cleanup(h.Release) // a failed test must not leave the upstream's call blocked
	mcp.AddTool(up.MCPServer(), &mcp.Tool{Name: "hold", Description: "Blocks until the test releases it."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			h.arrived <- struct{}{}
			select {
			case <-h.release:
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "released"}}}, nil, nil
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("hold: cancelled before release: %w", ctx.Err())
			}
		})
	return h
}

// waitArrived waits, boundedly, for a call of the hold tool to arrive at the
// upstream.
func (h *held) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-h.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the hold tool's call did not reach the upstream within 10s")
	}
}

// Release lets every call of the hold tool return; calling it twice is fine.
func (h *held) Release() { h.once.Do(func() { close(h.release) }) }

// callResult is what a tools/call in the background got.
type callResult struct {
	text string
	err  error
}

// callInBackground calls a tool on its own goroutine; the result arrives on
// the channel.
func callInBackground(ctx context.Context, s *gatewaytest.Session, name string, args map[string]any) <-chan callResult {
	out := make(chan callResult, 1)
	go func() {
		text, err := s.CallTool(ctx, name, args)
		out <- callResult{text, err}
	}()
	return out
}

// waitFor polls cond every 50ms until it holds or within has passed, and
// returns how long it took and whether it held. Polling is for states only
// HTTP can show (no signal reaches the test from inside mcpgate).
func waitFor(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toolNames lists /mcp's tools in the session, failing the test on an error.
func toolNames(t *testing.T, s *gatewaytest.Session) []string {
	t.Helper()
	names, err := s.Names(t.Context(), "tools/list")
	if err != nil {
		t.Fatalf("tools/list on /mcp: %v", err)
	}
	return names
}

// withPrefix returns the names that start with prefix.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func has(names []string, name string) bool { return slices.Contains(names, name) }

// rpcMessage returns the message of a JSON-RPC error, or "" for any other
// error.
func rpcMessage(err error) string {
	var re gatewaytest.RPCError
	if errors.As(err, &re) {
		return re.Message
	}
	return ""
}
