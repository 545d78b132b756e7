// Command headers-server is a small MCP server for trying mcpgate: its
// "headers" tool answers with the HTTP headers its request arrived with, so
// you can see exactly what mcpgate forwarded; "echo" answers its text.
//
//	go run ./examples/headers-server -addr 127.0.0.1:9000
//
// It serves MCP Streamable HTTP at http://ADDR/mcp.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to answer"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	flag.Parse()

	srv := mcp.NewServer(&mcp.Implementation{Name: "headers-server", Version: "1.0.0"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "headers", Description: "Answers with the HTTP headers of this call, as mcpgate forwarded them."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			headers := map[string]string{}
			if req.Extra != nil {
				for name, values := range req.Extra.Header {
					headers[name] = values[len(values)-1]
				}
			}
			names := make([]string, 0, len(headers))
			for n := range headers {
				names = append(names, n)
			}
			sort.Strings(names)
			ordered := make([][2]string, len(names))
			for i, n := range names {
				ordered[i] = [2]string{n, headers[n]}
			}
			text, _ := json.Marshal(ordered)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Answers its text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})

	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	hs := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "headers-server: MCP at http://%s/mcp\n", *addr)
	if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
