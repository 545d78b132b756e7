package upstream_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/egress"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// TestUnreachableHidesTheCause: a connection refused by the upstream and
// one refused by the egress policy fail alike, as ErrUnreachable whose text
// says only that; the log gets the cause, and neither the error nor the log
// shows the URL's query or user information.
func TestUnreachableHidesTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	var accepted atomic.Int64
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name   string
		policy egress.Policy
		addr   string
		cause  string // in the log
	}{
		{"refused port", egress.LocalPolicy(), closed, "connection refused"},
		{"refused by policy", egress.Policy{}, live.Addr().String(), "SSRF_ALLOW_LOCALHOST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			hc := upstream.NewHTTPClient(tc.policy, slog.New(slog.NewTextHandler(&log, nil)))
			_, err := upstream.Connect(testContext(t), upstream.Options{URL: "http://user:pw-SECRET@" + tc.addr + "/mcp?api_key=KEY-SECRET", HTTPClient: hc})
			if !errors.Is(err, upstream.ErrUnreachable) {
				t.Fatalf("Connect: %v, want ErrUnreachable", err)
			}
			// server/discover is the first request; initialize is not tried
			// where nothing answers.
			want := "connect to upstream http://" + tc.addr + "/mcp: server/discover: POST: not reachable"
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			if !strings.Contains(log.String(), tc.cause) {
				t.Errorf("the log lacks the cause %q: %s", tc.cause, log.String())
			}
			if strings.Contains(log.String()+err.Error(), "SECRET") {
				t.Errorf("a secret of the URL leaked: %v / %s", err, log.String())
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the address the policy refuses got %d connections", n)
	}
}

// TestRedirectsAreNotFollowed: an upstream that redirects, here to a
// metadata address and to another loopback listener, is an error naming
// the location; nothing is sent there.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var reached atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer other.Close()
	for _, location := range []string{"http://169.254.169.254/latest/meta-data/", other.URL + "/mcp"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, location, http.StatusTemporaryRedirect)
		}))
		hc := upstream.NewHTTPClient(egress.LocalPolicy(), nil)
		_, err := upstream.Connect(testContext(t), upstream.Options{URL: srv.URL + "/mcp", HTTPClient: hc})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "does not follow redirects") {
			t.Errorf("redirect to %s: %v, want a refusal", location, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}
