package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// The reference hops: two proxies in front of the same upstream that do no
// MCP work at all, measured beside mcpgate so that its ratio can be read
// against the cost of a hop as such on the machine at hand.
//
//   - proxy: net/http/httputil's ReverseProxy — what any Go HTTP gateway
//     pays for parsing a request, sending it on and streaming the answer
//     back, before doing anything of its own;
//   - tcp: a byte-copying TCP relay — the cost of the extra connection and
//     the extra process wake-ups alone, with no HTTP at all.

// referenceHop is a running reference proxy.
type referenceHop struct {
	URL  string // the upstream's MCP endpoint, through the hop
	stop func() error
}

func (h *referenceHop) Close() error { return h.stop() }

// startReverseProxy starts httputil's ReverseProxy to target (an MCP
// endpoint URL) on a loopback port, flushing streamed answers at once and
// pooling connections like mcpgate's own upstream client.
func startReverseProxy(target string, callers int) (*referenceHop, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient(callers)
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host}) },
		Transport:     hc.Transport,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // a caller closing early is not news
	}
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &referenceHop{URL: "http://" + ln.Addr().String() + u.RequestURI(), stop: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		hc.CloseIdleConnections()
		return err
	}}, nil
}

// startTCPRelay starts a relay that copies bytes both ways between each
// connection it accepts and a new connection to target's host.
func startTCPRelay(target string) (*referenceHop, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return // the listener closed
			}
			wg.Go(func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				track(in, true)
				track(out, true)
				defer track(in, false)
				defer track(out, false)
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(out, in)
					if tc, ok := out.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					close(done)
				}()
				_, _ = io.Copy(in, out)
				_ = in.Close()
				<-done
			})
		}
	})
	return &referenceHop{URL: "http://" + ln.Addr().String() + u.RequestURI(), stop: func() error {
		err := ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		return err
	}}, nil
}
