package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestOwnHeadersAreAskedForPerRequest: Options.Headers is called for every
// request the Client makes for itself, so a credential that changed since
// Connect (a refreshed OAuth token) is the one sent on re-initialization,
// the event streams and the final DELETE; a Call still carries only its own
// headers.
func TestOwnHeadersAreAskedForPerRequest(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			var token atomic.Value
			token.Store("Bearer tok-1")
			c := connect(t, srv, tc.transport, nil, func(o *upstream.Options) {
				o.Headers = func(context.Context) (http.Header, error) {
					return http.Header{"Authorization": {token.Load().(string)}}, nil
				}
				o.OnNotification = func(jsonrpc.Message) {} // a listening stream on Streamable HTTP
			})
			call := func(id string) {
				t.Helper()
				if _, err := c.Call(testContext(t), toolCall(t, id, "echo", map[string]string{"text": "x"}, nil), http.Header{"X-Trace-Id": {"t"}}, nil); err != nil {
					t.Fatalf("Call %s: %v", id, err)
				}
			}
			call("1")
			gets := func(from int) bool {
				for _, r := range srv.Requests()[from:] {
					if r.Method == http.MethodGet {
						return true
					}
				}
				return false
			}
			// The first session's event stream is open (or being opened)
			// before the refresh.
			testenv.WaitFor(t, 10*time.Second, "the first event stream", func() bool { return gets(0) })
			before := len(srv.Requests())
			token.Store("Bearer tok-2") // refreshed
			srv.ExpireSessions()
			call("2")
			testenv.WaitFor(t, 10*time.Second, "the new session's event stream", func() bool { return gets(before) })
			c.Close()
			var own int
			for _, r := range srv.Requests()[before:] {
				got := r.Header.Get("Authorization")
				if r.JSONRPCMethod == "tools/call" {
					if got != "" {
						t.Errorf("a Call carried the own headers (Authorization %q)", got)
					}
					continue
				}
				if r.JSONRPCMethod == "notifications/cancelled" {
					continue
				}
				own++
				if got != "Bearer tok-2" {
					t.Errorf("%s %q after the refresh: Authorization %q, want the refreshed Bearer tok-2", r.Method, r.JSONRPCMethod, got)
				}
			}
			// initialize, notifications/initialized, the event stream, and
			// on Streamable HTTP the DELETE.
			if own < 3 {
				t.Errorf("the upstream saw %d requests of the Client's own after the refresh, want at least 3", own)
			}
		})
	}
}

// TestOwnHeadersFailureFailsTheRequest: an Options.Headers that cannot
// give headers (a token endpoint down) fails the request that needed them,
// saying so, and nothing is sent without them.
func TestOwnHeadersFailureFailsTheRequest(t *testing.T) {
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			failure := errors.New("token endpoint down")
			_, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL, Transport: tc.transport,
				Headers: func(context.Context) (http.Header, error) { return nil, failure }})
			if !errors.Is(err, failure) || !strings.Contains(err.Error(), "own headers") {
				t.Fatalf("Connect: %v, want the headers' failure, named", err)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("the upstream got %d requests without their headers", n)
			}
		})
	}
}
