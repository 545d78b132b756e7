package mcptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// metaHeaders is the _meta key under which NewSSE hands a tools/call's HTTP
// headers to the headers tool.
const metaHeaders = "mcptest/headers"

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

type impatientArgs struct {
	Ms int `json:"ms" jsonschema:"milliseconds to wait for the client's sampling answer"`
}

type consultArgs struct {
	Question string `json:"question" jsonschema:"what to ask the client's model"`
}

type slowArgs struct {
	Ms    int `json:"ms" jsonschema:"milliseconds to wait before each step"`
	Steps int `json:"steps" jsonschema:"how many progress steps to take"`
}

type addArgs struct {
	A float64 `json:"a" jsonschema:"the first number"`
	B float64 `json:"b" jsonschema:"the second number"`
}

type touchArgs struct {
	URI string `json:"uri"`
}

type addResult struct {
	Sum float64 `json:"sum"`
}

// newSDKServer builds the go-sdk server and its content (see
// NewStreamableHTTP).
func (s *Server) newSDKServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: s.cfg.name, Version: "test"}, &mcp.ServerOptions{
		// The session-era revisions only: this server's tools (ask, slow)
		// send requests and notifications of their own mid-call, which the
		// stateless revision no longer carries. A test of a 2026-07-28
		// upstream builds a stateless go-sdk server of its own.
		SupportedProtocolVersions: slices.DeleteFunc(protocol.Versions(), protocol.Stateless),
		CompletionHandler:         complete,
		Instructions:              s.cfg.instructions,
		// The SDK keeps the subscriptions per session; ResourceUpdated
		// (the touch tool) notifies the sessions subscribed.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	// Keep the SDK's own sending handler: ServerSession.Log stays silent
	// until the client sends logging/setLevel, and slow logs regardless.
	srv.AddSendingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		s.send = next
		return next
	})

	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns its text argument."}, echo)
	mcp.AddTool(srv, &mcp.Tool{Name: "headers", Description: "Returns the HTTP headers of this tools/call request, as JSON."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			h := requestHeader(req)
			b, err := json.Marshal(h)
			if err != nil {
				return nil, nil, fmt.Errorf("encode headers: %w", err)
			}
			return text(string(b)), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "slow", Description: "Takes steps of ms milliseconds, reporting progress, then logs a line."},
		func(ctx context.Context, req *mcp.CallToolRequest, in slowArgs) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for i := 1; i <= in.Steps; i++ {
				t := time.NewTimer(time.Duration(in.Ms) * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, nil, ctx.Err()
				case <-s.killed:
					t.Stop()
					return nil, nil, errors.New("the server was killed")
				}
				if token != nil {
					err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: token, Progress: float64(i), Total: float64(in.Steps),
						Message: fmt.Sprintf("step %d of %d", i, in.Steps),
					})
					if err != nil {
						return nil, nil, fmt.Errorf("notify progress: %w", err)
					}
				}
			}
			if err := s.logf(ctx, req.Session, "slow: done after %d steps", in.Steps); err != nil {
				return nil, nil, err
			}
			return text("done"), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail", Description: "Fails, as a tool does: isError content."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			r := text("fail: failed as asked")
			r.IsError = true
			return r, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "add", Description: "Adds a and b."},
		func(_ context.Context, _ *mcp.CallToolRequest, in addArgs) (*mcp.CallToolResult, addResult, error) {
			return nil, addResult{Sum: in.A + in.B}, nil
		})

	mcp.AddTool(srv, &mcp.Tool{Name: "touch", Description: "Tells the sessions subscribed to the resource uri that it was updated."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in touchArgs) (*mcp.CallToolResult, any, error) {
			if err := srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: in.URI}); err != nil {
				return nil, nil, fmt.Errorf("notify resource updated: %w", err)
			}
			return text("touched " + in.URI), nil, nil
		})

	mcp.AddTool(srv, &mcp.Tool{Name: "ask", Description: "Sends ping and roots/list to the client; returns what came back, as JSON."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			out := map[string]string{"ping": "ok"}
			if err := req.Session.Ping(ctx, nil); err != nil {
				out["ping"] = "error: " + err.Error()
			}
			if roots, err := req.Session.ListRoots(ctx, nil); err != nil {
				out["roots/list"] = "error: " + err.Error()
			} else {
				b, _ := json.Marshal(roots)
				out["roots/list"] = string(b)
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, nil, fmt.Errorf("encode answers: %w", err)
			}
			return text(string(b)), nil, nil
		})

	mcp.AddTool(srv, &mcp.Tool{Name: "consult", Description: "Asks the client for a sampling completion and for elicited input, mid-call; returns both answers, as JSON."},
		func(ctx context.Context, req *mcp.CallToolRequest, in consultArgs) (*mcp.CallToolResult, any, error) {
			out := map[string]any{}
			sampled, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
				MaxTokens: 50,
				Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Question}}},
			})
			if err != nil {
				out["sampling"] = "error: " + err.Error()
			} else if t, ok := sampled.Content.(*mcp.TextContent); ok {
				out["sampling"] = t.Text
			}
			elicited, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
				Message: "What is your name?",
				RequestedSchema: map[string]any{"type": "object",
					"properties": map[string]any{"name": map[string]any{"type": "string"}}},
			})
			if err != nil {
				out["elicitation"] = "error: " + err.Error()
			} else {
				out["elicitation"] = map[string]any{"action": elicited.Action, "content": elicited.Content}
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, nil, fmt.Errorf("encode answers: %w", err)
			}
			return text(string(b)), nil, nil
		})

	mcp.AddTool(srv, &mcp.Tool{Name: "impatient", Description: "Asks the client for a sampling completion but gives up after ms milliseconds, cancelling the request; returns what happened."},
		func(ctx context.Context, req *mcp.CallToolRequest, in impatientArgs) (*mcp.CallToolResult, any, error) {
			sctx, cancel := context.WithTimeout(ctx, time.Duration(in.Ms)*time.Millisecond)
			defer cancel()
			_, err := req.Session.CreateMessage(sctx, &mcp.CreateMessageParams{
				MaxTokens: 50,
				Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "take your time"}}},
			})
			if err == nil {
				return text("answered"), nil, nil
			}
			// The SDK sends notifications/cancelled for the abandoned request
			// in the background; linger so it goes out on this call's
			// stream, before the result ends it.
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			return text("gave up: " + err.Error()), nil, nil
		})

	srv.AddResource(&mcp.Resource{URI: "test://hello", Name: "hello", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "hello"}}}, nil
		})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "test://items/{id}", Name: "item", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			id := strings.TrimPrefix(req.Params.URI, "test://items/")
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/plain", Text: "item " + id}}}, nil
		})

	srv.AddPrompt(&mcp.Prompt{Name: "greet", Description: "Greets someone.", Arguments: []*mcp.PromptArgument{{Name: "name", Required: true}}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{
				{Role: "user", Content: &mcp.TextContent{Text: "Hello, " + req.Params.Arguments["name"] + "!"}},
			}}, nil
		})
	return srv
}

// AddTool adds a tool that behaves like echo; the SDK then sends
// notifications/tools/list_changed to every session (on Streamable HTTP, on
// its listening GET stream, if it has one open).
func (s *Server) AddTool(name string) {
	s.tb.Helper()
	if s.sdk == nil {
		s.tb.Fatalf("mcptest: AddTool needs an SDK server, not NewRaw")
	}
	mcp.AddTool(s.sdk, &mcp.Tool{Name: name, Description: "Returns its text argument."}, echo)
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
	return text(in.Text), nil, nil
}

func text(t string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: t}}}
}

// requestHeader returns the HTTP headers of the request that carried req:
// the SDK's Extra.Header on Streamable HTTP, or what NewSSE put in _meta.
func requestHeader(req *mcp.CallToolRequest) http.Header {
	if req.Extra != nil && req.Extra.Header != nil {
		return req.Extra.Header
	}
	h := http.Header{}
	if raw, ok := req.Params.GetMeta()[metaHeaders]; ok {
		if b, err := json.Marshal(raw); err == nil {
			json.Unmarshal(b, &h)
		}
	}
	return h
}

// logf sends a notifications/message through the SDK's sending handler,
// bypassing the level set by logging/setLevel (the specification lets a
// server log before the client asks; many servers do).
func (s *Server) logf(ctx context.Context, ss *mcp.ServerSession, format string, args ...any) error {
	_, err := s.send(ctx, "notifications/message", &mcp.ServerRequest[*mcp.LoggingMessageParams]{
		Session: ss,
		Params:  &mcp.LoggingMessageParams{Level: "info", Logger: "mcptest", Data: fmt.Sprintf(format, args...)},
	})
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	return nil
}

// complete offers names for the greet prompt's name argument.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	values := []string{}
	if ref := req.Params.Ref; ref != nil && ref.Type == "ref/prompt" && ref.Name == "greet" && req.Params.Argument.Name == "name" {
		for _, v := range []string{"alice", "bob", "carol"} {
			if strings.HasPrefix(v, req.Params.Argument.Value) {
				values = append(values, v)
			}
		}
	}
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}
