// Package countingproxy is a reverse proxy for black-box tests that stands
// between mcpgate and one upstream MCP server on 127.0.0.1: it counts the
// upstream sessions mcpgate opens through it, and can be taken down and
// brought back on the same port, as an upstream that restarts would be.
package countingproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards every request to its target. Its methods are safe for
// concurrent use.
type Proxy struct {
	// URL is the target's URL with the proxy's host and port in place of
	// the target's: what to register in mcpgate.
	URL string

	tb    testing.TB
	addr  string // 127.0.0.1:PORT, the same across Down and Up
	proxy *httputil.ReverseProxy

	initializes atomic.Int64 // POSTs carrying a JSON-RPC initialize
	streams     atomic.Int64 // GETs: event streams opened
	listCalls   sync.Map     // JSON-RPC method -> *atomic.Int64, for */list

	mu  sync.Mutex
	srv *http.Server // nil while down
}

// New starts a proxy to target (an upstream's MCP endpoint URL) on a fresh
// loopback port; it stops when the test ends.
func New(tb testing.TB, target string) *Proxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("countingproxy: target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("countingproxy: listen: %v", err)
	}
	p := &Proxy{tb: tb, addr: ln.Addr().String()}
	p.URL = strings.Replace(target, u.Host, p.addr, 1)
	// FlushInterval -1: event streams (legacy SSE, Streamable GET) must reach
	// mcpgate as they are written, not when a buffer fills.
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
			r.Out.Host = u.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "countingproxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.serve(ln)
	tb.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(p.handle), ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln) // ends when Down closes srv
}

func (p *Proxy) handle(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.streams.Add(1)
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, "countingproxy: read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(body, &msg) // a batch or a response counts as nothing
		switch {
		case msg.Method == "initialize":
			p.initializes.Add(1)
		case strings.HasSuffix(msg.Method, "/list"):
			n, _ := p.listCalls.LoadOrStore(msg.Method, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// Sessions is how many upstream sessions were opened through the proxy:
// the initialize requests it forwarded (one per session on both Streamable
// HTTP and the legacy SSE transport).
func (p *Proxy) Sessions() int64 { return p.initializes.Load() }

// Streams is how many GET requests (event streams) it forwarded.
func (p *Proxy) Streams() int64 { return p.streams.Load() }

// Lists is how many requests of the list method (tools/list, …) it
// forwarded.
func (p *Proxy) Lists(method string) int64 {
	if n, ok := p.listCalls.Load(method); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// Down closes the listener and every connection through the proxy, open
// event streams included: to mcpgate the upstream is gone. Calling it when
// down is fine.
func (p *Proxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.tb.Logf("countingproxy: down: %v", err)
		}
	}
}

// Up listens again on the same port. Go sets SO_REUSEADDR on its
// listeners, so the port is free again at once.
func (p *Proxy) Up() {
	p.tb.Helper()
	p.mu.Lock()
	up := p.srv != nil
	p.mu.Unlock()
	if up {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.tb.Fatalf("countingproxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// CloseIdleConnections closes the keep-alive connections that carry no
// request now, as a server's idle timeout would: mcpgate's pool then holds
// no goroutines for them, and a test can count mcpgate's goroutines
// against a baseline without waiting out its pool's idle timeout.
func (p *Proxy) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		// Turning keep-alives off closes the idle connections; on again for
		// later requests.
		p.srv.SetKeepAlivesEnabled(false)
		p.srv.SetKeepAlivesEnabled(true)
	}
}

// String describes the counts, for a test's log.
func (p *Proxy) String() string {
	return fmt.Sprintf("%d sessions, %d event streams, %d tools/list", p.Sessions(), p.Streams(), p.Lists("tools/list"))
}
