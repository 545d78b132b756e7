package gatewaytest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// protocolVersion is the MCP revision the harness's sessions speak.
const protocolVersion = protocol.Version20250618

// Session is a client's Streamable HTTP session on mcpgate's /mcp, spoken
// by hand so that a test sees exactly what arrives and in what order. Its
// methods are safe for concurrent use.
type Session struct {
	ID string // Mcp-Session-Id

	g      *Gateway
	nextID atomic.Int64
}

// OpenSession initializes a session on /mcp (initialize, then
// notifications/initialized).
func (g *Gateway) OpenSession(t *testing.T) *Session {
	t.Helper()
	s := &Session{g: g}
	res, err := s.Request(t.Context(), "initialize", map[string]any{
		"protocolVersion": protocolVersion, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "blackbox-test", "version": "1"},
	})
	if err != nil {
		t.Fatalf("initialize on /mcp: %v", err)
	}
	if !strings.Contains(string(res), `"mcpgate"`) {
		t.Fatalf("initialize on /mcp answered %s, want mcpgate's serverInfo", res)
	}
	if s.ID == "" {
		t.Fatal("initialize on /mcp: no Mcp-Session-Id in the answer")
	}
	m, err := jsonrpc.NewNotification("notifications/initialized", nil)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, err := s.post(t.Context(), m); err != nil || status != http.StatusAccepted {
		t.Fatalf("notifications/initialized on /mcp: %d %s %v, want 202", status, body, err)
	}
	return s
}

func (s *Session) header() http.Header {
	h := http.Header{"Accept": {"application/json, text/event-stream"}}
	if s.ID != "" {
		h.Set("Mcp-Session-Id", s.ID)
		h.Set("Mcp-Protocol-Version", protocolVersion)
	}
	return h
}

// post posts a message that needs no answer and returns the status.
func (s *Session) post(ctx context.Context, m jsonrpc.Message) (int, string, error) {
	body, err := jsonrpc.Encode(m)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.g.open(ctx, "POST", "/mcp", body, s.header())
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// RPCError is a JSON-RPC error answer, as an error.
type RPCError struct {
	Code    int
	Message string
}

func (e RPCError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// Request sends a request in the session and returns its result. A JSON-RPC
// error answer is an RPCError; anything else that goes wrong (a status
// other than 200, a stream ending without an answer) is another error.
// Messages other than the answer on the response stream are skipped.
func (s *Session) Request(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := s.nextID.Add(1)
	m, err := jsonrpc.NewRequest(json.RawMessage(strconv.FormatInt(id, 10)), method, params)
	if err != nil {
		return nil, err
	}
	body, err := jsonrpc.Encode(m)
	if err != nil {
		return nil, err
	}
	resp, err := s.g.open(ctx, "POST", "/mcp", body, s.header())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s on /mcp: HTTP %d %s", method, resp.StatusCode, b)
	}
	if s.ID == "" {
		s.ID = resp.Header.Get("Mcp-Session-Id")
	}
	var answer jsonrpc.Message
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		br := bufio.NewReader(resp.Body)
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				return nil, fmt.Errorf("%s on /mcp: the event stream ended without an answer: %w", method, err)
			}
			if msg, err := jsonrpc.DecodeMessage([]byte(e.Data)); err == nil && msg.IsResponse() {
				answer = msg
				break
			}
		}
	} else {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("%s on /mcp: %w", method, err)
		}
		if answer, err = jsonrpc.DecodeMessage(b); err != nil {
			return nil, fmt.Errorf("%s on /mcp answered %s: %w", method, b, err)
		}
	}
	if answer.Error != nil {
		return nil, RPCError{Code: answer.Error.Code, Message: answer.Error.Message}
	}
	return answer.Result, nil
}

// CallTool calls a tool and returns the text of its first content item.
// An isError result is an error carrying the text.
func (s *Session) CallTool(ctx context.Context, name string, args map[string]any) (string, error) {
	if args == nil {
		args = map[string]any{}
	}
	res, err := s.Request(ctx, "tools/call", map[string]any{"name": name, "arguments": args})
	if err != nil {
		return "", err
	}
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("tools/call %s: result %s: %w", name, res, err)
	}
	text := ""
	if len(r.Content) > 0 {
		text = r.Content[0].Text
	}
	if r.IsError {
		return text, fmt.Errorf("tools/call %s: isError result: %s", name, res)
	}
	return text, nil
}

// Names returns the names (for tools and prompts) or URIs (for resources)
// of a list method's result: tools/list, resources/list or prompts/list.
func (s *Session) Names(ctx context.Context, method string) ([]string, error) {
	key, field := strings.TrimSuffix(method, "/list"), "name"
	if key == "resources" {
		field = "uri"
	}
	res, err := s.Request(ctx, method, map[string]any{})
	if err != nil {
		return nil, err
	}
	var body map[string][]map[string]any
	if err := json.Unmarshal(res, &body); err != nil {
		return nil, fmt.Errorf("%s: result %s: %w", method, res, err)
	}
	var out []string
	for _, item := range body[key] {
		if v, ok := item[field].(string); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// Listen opens the session's GET stream and returns, once mcpgate answered
// it with 200, a channel of the messages that arrive on it, in order; the
// channel is closed when the stream ends or the test does.
func (s *Session) Listen(t *testing.T) <-chan jsonrpc.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.g.URL+"/mcp", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header = s.header()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+s.g.Token)
	// A transport of its own: a stream never ends by a timeout.
	transport := &http.Transport{}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /mcp: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /mcp: %d %s", resp.StatusCode, b)
	}
	out := make(chan jsonrpc.Message, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for {
			e, err := mcptest.ReadEvent(br)
			if err != nil {
				if !errors.Is(err, context.Canceled) && ctx.Err() == nil {
					t.Logf("the GET stream on /mcp ended: %v", err)
				}
				return
			}
			if e.Data == "" {
				continue
			}
			m, err := jsonrpc.DecodeMessage([]byte(e.Data))
			if err != nil {
				t.Errorf("the GET stream on /mcp carried %q, not JSON-RPC: %v", e.Data, err)
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		transport.CloseIdleConnections()
	})
	return out
}
