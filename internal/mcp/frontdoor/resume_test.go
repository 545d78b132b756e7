package frontdoor

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/bus"
	"github.com/mcpgate/mcpgate/internal/dispatch"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// clientBackend answers every request with the clientInfo name of the
// initialize it was opened with and the instance that opened it: a
// federated session's state is its client's initialize.
type clientBackend struct {
	instance, client string
	done             chan struct{}
}

func (b *clientBackend) Request(_ context.Context, msg jsonrpc.Message, _ dispatch.Inbound) jsonrpc.Message {
	r, _ := json.Marshal(map[string]string{"instance": b.instance, "client": b.client})
	return jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: msg.ID, Result: r}
}
func (b *clientBackend) Notify(context.Context, jsonrpc.Message, dispatch.Inbound) error  { return nil }
func (b *clientBackend) Respond(context.Context, jsonrpc.Message, dispatch.Inbound) error { return nil }
func (b *clientBackend) ProtocolVersion() string                                          { return "2025-06-18" }
func (b *clientBackend) Done() <-chan struct{}                                            { return b.done }
func (b *clientBackend) Err() error                                                       { return nil }
func (b *clientBackend) Close() error                                                     { return nil }

func clientOpener(instance string) Opener {
	return func(_ context.Context, _ *http.Request, initialize jsonrpc.Message, _ dispatch.Inbound, _ func(jsonrpc.Message)) (Backend, jsonrpc.Message, error) {
		var p struct {
			ClientInfo struct {
				Name string `json:"name"`
			} `json:"clientInfo"`
		}
		_ = json.Unmarshal(initialize.Params, &p)
		b := &clientBackend{instance: instance, client: p.ClientInfo.Name, done: make(chan struct{})}
		return b, jsonrpc.Message{JSONRPC: jsonrpc.Version, ID: initialize.ID, Result: json.RawMessage(`{"protocolVersion":"2025-06-18"}`)}, nil
	}
}

// TestResumableSessionsGoOnOnAnotherInstance: with Resumable, a session
// whose Backend another instance opened is opened again here from its
// initialize, as the client sent it, and answered here; one nobody opened
// is still 404.
func TestResumableSessionsGoOnOnAnotherInstance(t *testing.T) {
	opts, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	shared := bus.NewRedisSessions(rc)
	_, urlA := startStreamable(t, StreamableConfig{Open: clientOpener("A"), Resumable: true, Shared: shared, IdleTimeout: time.Hour})
	_, urlB := startStreamable(t, StreamableConfig{Open: clientOpener("B"), Resumable: true, Shared: shared, IdleTimeout: time.Hour})
	id := initialize(t, urlA)

	status, _, body, err := postMCP(t.Context(), urlB, id, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err != nil || status != http.StatusOK || !strings.Contains(body, `"instance":"B"`) || !strings.Contains(body, `"client":"t"`) {
		t.Errorf("the session on the other instance: %d %s %v; want it answered there by a backend opened with the client's initialize", status, body, err)
	}
	if status, _, body, _ := postMCP(t.Context(), urlB, "0123456789abcdef0123456789abcdef", `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); status != http.StatusNotFound {
		t.Errorf("a session nobody opened: %d %s, want 404", status, body)
	}
}
