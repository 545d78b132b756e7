// Package mcptest runs real MCP servers on 127.0.0.1 for tests: the go-sdk's
// server behind its Streamable HTTP or legacy SSE handler, serving a fixed
// set of tools, resources and prompts, or a small hand-rolled Streamable HTTP
// server answering whatever the test returns. Every server records the HTTP
// requests it receives, and can be made to fail, to stall or to die.
package mcptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
)

// Request is one HTTP request a Server received.
type Request struct {
	Method string      // HTTP method
	Path   string      // URL path (without the query)
	Header http.Header // a copy of the request's headers
	// JSONRPCMethod is the method of the JSON-RPC message in the body ("" for
	// none: a GET, a DELETE, a response); the first one's for a batch.
	JSONRPCMethod string
	Body          []byte // the body as received
}

// Option configures a Server.
type Option func(*config)

type config struct {
	name         string
	requireAuth  string
	status       int
	delay        time.Duration
	onRequest    func(*http.Request)
	jsonResponse bool
	version      string
	capabilities map[string]any
	instructions string
}

// WithCapabilities makes a NewRaw server announce caps in its initialize
// result instead of {"tools": {}}.
func WithCapabilities(caps map[string]any) Option {
	return func(c *config) { c.capabilities = caps }
}

// WithInstructions makes the server answer initialize with these
// instructions (by default none).
func WithInstructions(text string) Option { return func(c *config) { c.instructions = text } }

// WithName sets the server's name in its initialize result (default
// "mcptest").
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithRequireAuthorization makes the server answer 401 to every request whose
// Authorization header is not exactly value.
func WithRequireAuthorization(value string) Option {
	return func(c *config) { c.requireAuth = value }
}

// WithStatus makes the server answer every POST with the HTTP status code
// (an error body, no JSON-RPC), from the first one. See also SetStatus.
func WithStatus(code int) Option { return func(c *config) { c.status = code } }

// WithDelay makes the server wait d before handling each POST (the wait ends
// early if the client goes away).
func WithDelay(d time.Duration) Option { return func(c *config) { c.delay = d } }

// WithOnRequest calls f with every request the server receives, before it is
// handled (its body can be read; the handler gets its own copy). f runs on
// the server's goroutines.
func WithOnRequest(f func(*http.Request)) Option { return func(c *config) { c.onRequest = f } }

// WithJSONResponse makes a Streamable HTTP server answer requests with an
// application/json body instead of an event stream; its notifications about
// a request then go to the listening GET stream, as the SDK does it.
func WithJSONResponse() Option { return func(c *config) { c.jsonResponse = true } }

// WithProtocolVersion makes a NewRaw server answer initialize with this
// protocol version whatever the client asked for (by default it negotiates
// as mcpgate does, protocol.Negotiate: the client's version when mcpgate
// speaks it, else the newest). The SDK servers ignore it.
func WithProtocolVersion(v string) Option { return func(c *config) { c.version = v } }

// Server is a running MCP server. Its methods are safe for concurrent use.
type Server struct {
	// URL is the MCP endpoint: the Streamable HTTP endpoint, or the event
	// stream of the legacy SSE transport.
	URL string

	tb   testing.TB
	cfg  config
	srv  *http.Server
	sdk  *mcp.Server       // nil for NewRaw
	send mcp.MethodHandler // the SDK's own sending handler, see logf
	raw  *rawHandler       // nil for the SDK servers

	killOnce sync.Once
	killed   chan struct{} // closed by Kill: the server's own work stops

	mu       sync.Mutex
	requests []Request
	status   int
	streams  map[*http.Request]chan struct{} // open legacy event streams
}

const endpointPath = "/mcp"

// NewStreamableHTTP starts a go-sdk MCP server behind
// mcp.NewStreamableHTTPHandler, on 127.0.0.1; it stops when the test ends.
// It serves:
//
//   - tool echo {text}: returns text as text content;
//   - tool headers {}: returns, as JSON text content, the HTTP headers of the
//     request that carried this tools/call (from the SDK's
//     CallToolRequest.Extra.Header);
//   - tool slow {ms, steps}: steps times, waits ms milliseconds and sends
//     notifications/progress (if the request has a progress token); then
//     sends one notifications/message (level info, whatever logging/setLevel
//     said) and returns "done";
//   - tool fail {}: returns isError content;
//   - tool add {a, b}: returns {"sum": a+b} as structured content;
//   - tool ask {}: sends ping and roots/list to the client, and returns what
//     came back as JSON text content ({"ping": "ok", "roots/list": "error: …"});
//   - resource test://hello (text "hello") and template test://items/{id};
//   - prompt greet {name}, with completion of name (alice, bob, carol);
//   - and every tool added later with AddTool, which tells the sessions with
//     notifications/tools/list_changed.
func NewStreamableHTTP(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := newServer(tb, opts)
	s.sdk = s.newSDKServer()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.sdk },
		&mcp.StreamableHTTPOptions{JSONResponse: s.cfg.jsonResponse})
	s.start(h)
	return s
}

// NewSSE starts the same server as NewStreamableHTTP behind
// mcp.NewSSEHandler, the legacy HTTP+SSE transport (MCP 2024-11-05). URL is
// the event stream; the SDK names the POST endpoint in its first event.
//
// The SDK does not give a tool the HTTP headers of a legacy POST (its
// RequestExtra is nil there), so this server copies them into the params'
// _meta of each tools/call of the headers tool, under "mcptest/headers".
func NewSSE(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := newServer(tb, opts)
	s.sdk = s.newSDKServer()
	h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s.sdk }, nil)
	s.start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			done := make(chan struct{})
			s.mu.Lock()
			s.streams[r] = done
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				delete(s.streams, r)
				s.mu.Unlock()
				close(done)
			}()
		case http.MethodPost:
			injectHeaders(r)
		}
		h.ServeHTTP(w, r)
	}))
	return s
}

func newServer(tb testing.TB, opts []Option) *Server {
	s := &Server{tb: tb, cfg: config{name: "mcptest"}, streams: make(map[*http.Request]chan struct{}), killed: make(chan struct{})}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.status = s.cfg.status
	return s
}

// start serves h, behind the recording and the options, on a fresh loopback
// port.
func (s *Server) start(h http.Handler) {
	s.tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.tb.Fatalf("mcptest: listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(endpointPath, s.front(h))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + ln.Addr().String() + endpointPath
	go s.srv.Serve(ln) // ends when Kill closes the listener
	s.tb.Cleanup(s.Close)
}

// front records each request and applies the options before h sees it.
func (s *Server) front(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil {
				http.Error(w, "mcptest: read body: "+err.Error(), http.StatusBadRequest)
				return
			}
			body = b
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, JSONRPCMethod: jsonrpcMethod(body)}
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		status := s.status
		s.mu.Unlock()

		if s.cfg.onRequest != nil {
			s.cfg.onRequest(r)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if s.cfg.requireAuth != "" && r.Header.Get("Authorization") != s.cfg.requireAuth {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcptest"`)
			http.Error(w, "mcptest: unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if status != 0 {
				http.Error(w, fmt.Sprintf("mcptest: HTTP %d, as asked", status), status)
				return
			}
			if s.cfg.delay > 0 {
				t := time.NewTimer(s.cfg.delay)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// jsonrpcMethod returns the method of the (first) message in body.
func jsonrpcMethod(body []byte) string {
	msgs, _, err := jsonrpc.Decode(body)
	if err != nil || len(msgs) == 0 {
		return ""
	}
	return msgs[0].Method
}

// Requests returns every HTTP request the server received, in order. The
// result is the caller's to change.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// LastHeader returns the headers of the last HTTP request carrying the
// JSON-RPC method, or nil if none did.
func (s *Server) LastHeader(jsonrpcMethod string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.requests) - 1; i >= 0; i-- {
		if s.requests[i].JSONRPCMethod == jsonrpcMethod {
			return s.requests[i].Header.Clone()
		}
	}
	return nil
}

// SetStatus makes the server answer every later POST with the HTTP status
// code; 0 goes back to serving normally.
func (s *Server) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// MCPServer returns the go-sdk server behind s, to add to its content; nil
// for a NewRaw server.
func (s *Server) MCPServer() *mcp.Server { return s.sdk }

// ExpireSessions makes the server forget every session, as a restart would:
// on Streamable HTTP later requests of those sessions are answered 404; on the
// legacy transport their event streams end. It returns once they have.
func (s *Server) ExpireSessions() {
	s.tb.Helper()
	if s.raw != nil {
		s.raw.expire()
		return
	}
	for ss := range s.sdk.Sessions() {
		ss.Close()
	}
	s.mu.Lock()
	var open []chan struct{}
	for _, done := range s.streams {
		open = append(open, done)
	}
	s.mu.Unlock()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for _, done := range open {
		select {
		case <-done:
		case <-deadline.C:
			s.tb.Errorf("mcptest: an event stream outlived its session by 5s")
			return
		}
	}
}

// Kill stops the server abruptly: the listener and every open connection are
// closed and the tools at work stop, as if the process died. Requests in
// flight fail on the client side.
func (s *Server) Kill() {
	// Connections first: a tool stopped first could still answer.
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.tb.Logf("mcptest: kill: %v", err)
	}
	s.killOnce.Do(func() { close(s.killed) })
}

// Close stops the server and ends its sessions. It is called when the test
// ends; calling it earlier, or twice, is fine.
func (s *Server) Close() {
	s.Kill()
	if s.sdk != nil {
		for ss := range s.sdk.Sessions() {
			ss.Close()
		}
	}
}

// injectHeaders copies the HTTP headers of a legacy-transport POST calling
// the headers tool into its params._meta["mcptest/headers"], where the tool
// finds them (see NewSSE).
func injectHeaders(r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var msg map[string]json.RawMessage
	if json.Unmarshal(body, &msg) != nil || string(msg["method"]) != `"tools/call"` {
		return
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(msg["params"], &params) != nil || string(params["name"]) != `"headers"` {
		return
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := params["_meta"]; ok && json.Unmarshal(raw, &meta) != nil {
		return
	}
	h, err := json.Marshal(r.Header)
	if err != nil {
		return
	}
	meta[metaHeaders] = h
	var ok bool
	if params["_meta"], ok = marshal(meta); !ok {
		return
	}
	if msg["params"], ok = marshal(params); !ok {
		return
	}
	if b, ok := marshal(msg); ok {
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
	}
}

func marshal(v any) (json.RawMessage, bool) {
	b, err := json.Marshal(v)
	return b, err == nil
}
