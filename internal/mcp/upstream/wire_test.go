package upstream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// rawUpstream is a minimal MCP server on a bare net.Listener that keeps the
// header lines of every request exactly as they came off the wire: Go's own
// HTTP server would merge two lines of the same name into one header, hiding
// a duplicate. It speaks Streamable HTTP (every message a POST, answered
// with JSON) or, with sse, the legacy transport (a GET event stream whose
// endpoint event names where to POST; answers go on the stream).
type rawUpstream struct {
	t   *testing.T
	ln  net.Listener
	sse bool
	wg  sync.WaitGroup

	mu       sync.Mutex
	requests []rawRequest
	conns    []net.Conn
	stream   chan []byte   // SSE: messages for the open event stream
	done     chan struct{} // closed by close
}

// rawRequest is one request as received.
type rawRequest struct {
	method, path string
	rpcMethod    string   // the JSON-RPC method of the body, "" for none
	lines        []string // header lines, "Name: value", in order
}

func startRawUpstream(t *testing.T, sse bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{t: t, ln: ln, sse: sse, stream: make(chan []byte, 16), done: make(chan struct{})}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.close)
	return u
}

func (u *rawUpstream) url() string {
	if u.sse {
		return "http://" + u.ln.Addr().String() + "/sse"
	}
	return "http://" + u.ln.Addr().String() + "/mcp"
}

func (u *rawUpstream) close() {
	close(u.done)
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *rawUpstream) accept() {
	defer u.wg.Done()
	for {
		conn, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns = append(u.conns, conn)
		u.mu.Unlock()
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer conn.Close()
			u.serve(conn)
		}()
	}
}

// serve answers the requests of one connection until it closes.
func (u *rawUpstream) serve(conn net.Conn) {
	br := bufio.NewReader(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		method, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		path, _, _ := strings.Cut(rest, " ")
		req := rawRequest{method: method, path: path}
		length := -1
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				break
			}
			req.lines = append(req.lines, l)
			// The first Content-Length is Go's own; a second one, a
			// caller's, fails the test as a duplicate.
			if name, v, _ := strings.Cut(l, ":"); strings.EqualFold(name, "Content-Length") && length < 0 {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, max(length, 0))
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		req.rpcMethod = msg.Method
		u.mu.Lock()
		u.requests = append(u.requests, req)
		u.mu.Unlock()

		var answer []byte
		if msg.ID != nil && msg.Method != "" {
			result := `{}`
			if msg.Method == "initialize" {
				result = `{"protocolVersion":"` + upstream.ProtocolVersion + `","capabilities":{},"serverInfo":{"name":"raw","version":"1"}}`
			}
			answer = []byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":` + result + `}`)
		}
		switch {
		case u.sse && method == http.MethodGet:
			fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\nevent: endpoint\ndata: /messages\n\n")
			for {
				select {
				case m := <-u.stream:
					if _, err := fmt.Fprintf(conn, "event: message\ndata: %s\n\n", m); err != nil {
						return
					}
				case <-u.done:
					return
				}
			}
		case method == http.MethodPost && answer != nil && !u.sse:
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: raw-session\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
		case method == http.MethodPost:
			if answer != nil {
				select {
				case u.stream <- answer:
				case <-u.done:
					return
				}
			}
			fmt.Fprint(conn, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
		case method == http.MethodDelete:
			fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		default:
			fmt.Fprint(conn, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		}
	}
}

func (u *rawUpstream) received() []rawRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]rawRequest(nil), u.requests...)
}

// TestOneValuePerHeaderNameOnTheWire: whatever the spelling of the names a
// caller gives, every header name goes out once (spec §2.4): a User-Agent
// given as user-agent or USER-AGENT replaces Go's own rather than going next
// to it, and a request without one carries mcpgate/<version>; case variants
// of the headers the transport sets itself (Content-Type, Accept,
// Mcp-Session-Id, Host, Content-Length) are not sent a second time. Checked
// on the raw bytes, over both transports.
func TestOneValuePerHeaderNameOnTheWire(t *testing.T) {
	for _, sse := range []bool{false, true} {
		transport := upstream.StreamableHTTP
		if sse {
			transport = upstream.SSE
		}
		for _, ua := range []string{"User-Agent", "user-agent", "USER-AGENT", ""} {
			t.Run(fmt.Sprintf("%s/%q", transport, ua), func(t *testing.T) {
				u := startRawUpstream(t, sse)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := upstream.Connect(ctx, upstream.Options{URL: u.url(), Transport: transport, ClientVersion: "1.2.3",
					Headers: upstream.FixedHeaders(http.Header{"authorization": {"Bearer upstream-key"}, "x-static": {"s"}})})
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				given := http.Header{
					"x-tenant-id":    {"acme"},
					"content-type":   {"text/plain"},
					"accept":         {"image/png"},
					"mcp-session-id": {"evil"},
					"host":           {"evil.example"},
					"content-length": {"5"},
					"X-Trace-Id":     {"first", "second"},
				}
				want := "mcpgate/1.2.3"
				if ua != "" {
					given[ua] = []string{"client-agent/7"}
					want = "client-agent/7"
				}
				req, _ := jsonrpc.NewRequest(json.RawMessage("1"), "tools/call", map[string]any{"name": "x"})
				if _, err := c.Call(ctx, req, given, nil); err != nil {
					t.Errorf("call: %v", err) // what went on the wire still tells why
				}
				c.Close()

				var sawCall bool
				for _, r := range u.received() {
					counts := map[string]int{}
					values := map[string]string{}
					for _, l := range r.lines {
						name, v, _ := strings.Cut(l, ":")
						counts[strings.ToLower(name)]++
						values[strings.ToLower(name)] = strings.TrimSpace(v)
					}
					for name, n := range counts {
						if n > 1 {
							t.Errorf("%s %s (%s): %d %s lines: %q", r.method, r.path, r.rpcMethod, n, name, r.lines)
						}
					}
					wantUA := "mcpgate/1.2.3" // mcpgate's own requests carry no client header
					if r.rpcMethod == "tools/call" {
						sawCall, wantUA = true, want
						if values["x-tenant-id"] != "acme" || values["x-trace-id"] != "second" {
							t.Errorf("tools/call: X-Tenant-Id %q, X-Trace-Id %q; want acme and the last value, second",
								values["x-tenant-id"], values["x-trace-id"])
						}
						if values["host"] != u.ln.Addr().String() || values["content-type"] != "application/json" {
							t.Errorf("tools/call: Host %q, Content-Type %q; want the upstream's and application/json", values["host"], values["content-type"])
						}
					} else if values["authorization"] != "Bearer upstream-key" || values["x-static"] != "s" {
						t.Errorf("%s %s (%s): the Connect headers are missing: %q", r.method, r.path, r.rpcMethod, r.lines)
					}
					if counts["user-agent"] != 1 || values["user-agent"] != wantUA {
						t.Errorf("%s %s (%s): User-Agent %q in %d lines, want one, %q", r.method, r.path, r.rpcMethod,
							values["user-agent"], counts["user-agent"], wantUA)
					}
				}
				if !sawCall {
					t.Error("the upstream received no tools/call")
				}
			})
		}
	}
}
