package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// The paths a scenario measures. direct and mcpgate run the very same client
// code; only the URL and the credential differ.
const (
	pathDirect  = "direct"  // mcpgate's upstream client straight to the upstream
	pathMCPGate = "mcpgate" // the same client to mcpgate's /mcp
	pathRPC     = "rpc"     // plain JSON-RPC POSTs to mcpgate's /rpc
	pathProxy   = "proxy"   // the same client through a bare net/http reverse proxy (floor.go)
	pathTCP     = "tcp"     // the same client through a TCP relay (floor.go)
)

// tenant is the X-Tenant-Id every call sends; the upstream refuses a call
// that arrives without it.
const tenant = "acme-corp"

// traceID is the W3C trace id of every call (each has its own span id).
const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// path is one way of calling the echo tool. Its call is safe for concurrent
// use; seq numbers the call and must differ between calls in flight.
type path interface {
	call(ctx context.Context, seq uint64) error
	close() error
}

// requestHeaders are the HTTP headers of call seq besides the transport's
// own: credential as Authorization, and ten more a browser-based MCP client
// behind a load balancer sends — tenancy, W3C trace context and baggage,
// request and correlation ids (unique per call), and some that no allowlist
// names. Through mcpgate, seven of them are allowlisted and forwarded.
func requestHeaders(credential string, seq uint64) http.Header {
	n := strconv.FormatUint(seq, 10)
	span := strconv.FormatUint(seq|1<<60, 16) // 16 hex digits
	return http.Header{
		"Authorization":    {credential},
		"X-Tenant-Id":      {tenant},
		"X-Trace-Id":       {traceID},
		"X-Request-Id":     {"req-" + n},
		"Traceparent":      {"00-" + traceID + "-" + span + "-01"},
		"Tracestate":       {"vendor=opaque,congo=t61rcWkgMzE"},
		"Baggage":          {"userId=alice,serverNode=DF%2028,isProduction=false"},
		"X-Correlation-Id": {"corr-" + n},
		"User-Agent":       {"claude-desktop/1.4 (darwin)"},
		"Accept-Language":  {"en-GB,en;q=0.9"},
		"X-Forwarded-For":  {"203.0.113.7, 10.0.0.2"},
	}
}

// echoText is the text call seq asks the echo tool to return; each call's
// is its own, so an answer meant for another call is caught.
func echoText(seq uint64) string { return "call-" + strconv.FormatUint(seq, 10) }

// toolCall is the params of a tools/call of the echo tool.
type toolCall struct {
	Name      string   `json:"name"`
	Arguments echoArgs `json:"arguments"`
}

func newEchoRequest(tool string, seq uint64) (jsonrpc.Message, error) {
	return jsonrpc.NewRequest(json.RawMessage(strconv.FormatUint(seq, 10)), "tools/call",
		toolCall{Name: tool, Arguments: echoArgs{Text: echoText(seq)}})
}

// checkEcho says what is wrong with resp as the answer to the echo call
// seq: a JSON-RPC error, an isError result, or content other than the one
// text item that was sent.
func checkEcho(resp jsonrpc.Message, seq uint64) error {
	if resp.Error != nil {
		return resp.Error
	}
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(resp.Result, &r); err != nil {
		return fmt.Errorf("the result is not a tools/call result: %w", err)
	}
	if r.IsError {
		msg := ""
		if len(r.Content) > 0 {
			msg = r.Content[0].Text
		}
		return fmt.Errorf("the tool failed: %s", msg)
	}
	want := echoText(seq)
	if len(r.Content) != 1 || r.Content[0].Type != "text" || r.Content[0].Text != want {
		return fmt.Errorf("wrong answer: want one text item %q, got %s", want, resp.Result)
	}
	return nil
}

// newHTTPClient is mcpgate's upstream HTTP client setup, with room for one
// idle connection per caller so that no scenario pays for new connections.
func newHTTPClient(callers int) *http.Client {
	hc := upstream.NewHTTPClient(egress.LocalPolicy(), nil)
	if t, ok := hc.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, callers)
		t.MaxIdleConns = max(t.MaxIdleConns, callers)
	}
	return hc
}

// mcpPath calls through mcpgate's own upstream client (Streamable HTTP):
// one session, shared by every caller, as mcpgate uses it.
type mcpPath struct {
	client     *upstream.Client
	hc         *http.Client
	tool       string
	credential string
}

// dialMCP opens a session with the MCP endpoint at url, sending credential
// as Authorization on everything, and calls tool.
func dialMCP(ctx context.Context, url, tool, credential string, callers int) (*mcpPath, error) {
	hc := newHTTPClient(callers)
	c, err := upstream.Connect(ctx, upstream.Options{URL: url, HTTPClient: hc, ClientName: "mcpgate-bench", ClientVersion: "1", SessionOnly: true,
		Headers: upstream.FixedHeaders(http.Header{"Authorization": {credential}})})
	if err != nil {
		return nil, err
	}
	return &mcpPath{client: c, hc: hc, tool: tool, credential: credential}, nil
}

func (p *mcpPath) call(ctx context.Context, seq uint64) error {
	req, err := newEchoRequest(p.tool, seq)
	if err != nil {
		return err
	}
	resp, err := p.client.Call(ctx, req, requestHeaders(p.credential, seq), nil)
	if err != nil {
		return err
	}
	return checkEcho(resp, seq)
}

func (p *mcpPath) close() error {
	err := p.client.Close()
	p.hc.CloseIdleConnections()
	return err
}

// rpcPath POSTs each call as plain JSON-RPC with net/http: what a script
// or a non-MCP client does with mcpgate's /rpc.
type rpcPath struct {
	hc         *http.Client
	url        string
	tool       string
	credential string
}

func (p *rpcPath) call(ctx context.Context, seq uint64) error {
	req, err := newEchoRequest(p.tool, seq)
	if err != nil {
		return err
	}
	body, err := jsonrpc.Encode(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header = requestHeaders(p.credential, seq)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := p.hc.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, upstream.MaxMessageSize))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	msg, err := jsonrpc.DecodeMessage(data)
	if err != nil {
		return fmt.Errorf("the answer is not JSON-RPC: %w", err)
	}
	if !bytes.Equal(msg.ID, req.ID) {
		return errors.New("the answer has another request's id")
	}
	return checkEcho(msg, seq)
}

func (p *rpcPath) close() error {
	p.hc.CloseIdleConnections()
	return nil
}
