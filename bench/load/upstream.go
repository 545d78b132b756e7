package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
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
// argument as text content, but only when the request arrived with the
// upstream's credential and with this very call's allowlisted headers (see
// checkArrived); otherwise it answers an isError result, which the harness
// counts as an error.
func startEchoServer(credential string) (*echoServer, error) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-echo", Version: "1"}, nil)
	addEchoTool(srv, credential)
	return serveEcho(srv, nil)
}

// serveEcho serves srv over Streamable HTTP (with opts) on a loopback port
// until Close.
func serveEcho(srv *mcp.Server, opts *mcp.StreamableHTTPOptions) (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: listen: %w", err)
	}
	e := &echoServer{
		URL: "http://" + ln.Addr().String() + "/mcp",
		srv: &http.Server{
			Handler:           mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts),
			ReadHeaderTimeout: 10 * time.Second,
		},
	}
	go func() { _ = e.srv.Serve(countingListener{ln, &e.Accepted}) }() // ends at Close
	return e, nil
}

// addEchoTool adds the echo tool (see startEchoServer) to srv.
func addEchoTool(srv *mcp.Server, credential string) {
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, req *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			var h http.Header
			if req.Extra != nil {
				h = req.Extra.Header
			}
			if err := checkArrived(h, in.Text, credential); err != nil {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
}

// checkArrived says what is wrong with the headers the echo call with text
// arrived with: each allowlisted header must carry the value this call sent
// (request and correlation ids differ per call, so a header of another call
// in flight is caught), and Authorization must be the upstream's credential,
// which the direct path sends itself and mcpgate adds from its store.
func checkArrived(h http.Header, text, credential string) error {
	n, ok := strings.CutPrefix(text, "call-")
	seq, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("the text %q is not one the harness sends", text)
	}
	want := requestHeaders(credential, seq)
	for _, name := range append(globalAllowlist(), "Authorization") {
		switch got := h.Get(name); {
		case got == want.Get(name):
		case got == "":
			return fmt.Errorf("the upstream got no %s", name)
		default:
			return fmt.Errorf("the upstream got %s %q, want %q", name, got, want.Get(name))
		}
	}
	return nil
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
