package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoServer is the one upstream every path reaches: the go-sdk's MCP
// server behind its Streamable HTTP handler (stateful sessions, answers as
// event streams: the SDK's defaults), on a loopback port, with one tool.
type echoServer struct {
	// URL is the MCP endpoint.
	URL string
	// Accepted counts the connections the server has accepted.
	Accepted atomic.Int64
	srv      *http.Server
}

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

// startEchoServer starts the upstream. Its tool echo returns its text
// argument as text content, but only when the request carried the tenant
// header and the upstream's own credential: a path that loses either one
// (passthrough that forwards too little, a base header that goes missing)
// gets an isError result, which the harness counts as an error.
func startEchoServer(credential string) (*echoServer, error) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-echo", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			var h http.Header
			if req.Extra != nil {
				h = req.Extra.Header
			}
			if got := h.Get("X-Tenant-Id"); got != tenant {
				return failed(fmt.Sprintf("X-Tenant-Id is %q, want %q", got, tenant)), nil, nil
			}
			if h.Get("Authorization") != credential {
				return failed("Authorization is not the upstream's credential"), nil, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: listen: %w", err)
	}
	e := &echoServer{
		URL: "http://" + ln.Addr().String() + "/mcp",
		srv: &http.Server{
			Handler:           mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil),
			ReadHeaderTimeout: 10 * time.Second,
		},
	}
	go func() { _ = e.srv.Serve(countingListener{ln, &e.Accepted}) }() // ends at Close
	return e, nil
}

func failed(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// Close stops the server at once. Its clients have ended their sessions by
// then; what is left are idle keep-alive connections, some of them never
// used (an HTTP transport may dial one more than it ends up needing), which
// a graceful Shutdown would wait 5s for.
func (e *echoServer) Close() error {
	if err := e.srv.Close(); err != nil {
		return fmt.Errorf("upstream: close: %w", err)
	}
	return nil
}
