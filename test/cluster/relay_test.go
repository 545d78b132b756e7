package cluster

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
)

// TestRelaySessionsFollowChangesMadeElsewhere: a 1:1 relay session held by
// instance B follows what is done to its upstream through instance A: a new
// passthrough list and a new credential apply to its calls as soon as B
// has the change, and disabling or deleting the upstream ends the session
// on B — its GET stream closes and its next request is 404 saying why.
func TestRelaySessionsFollowChangesMadeElsewhere(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	d := newDeployment(t, redisDatabase(t, 14), nil)
	all := d.start([]string{"A", "B"}, nil)
	a, b := all[0], all[1]
	id := a.register(t, map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "old-token",
		"passthrough_headers": []string{"X-Tenant-Id"}})
	relay := "/gateways/" + id + "/mcp"

	// open opens a relay session on B once B knows the upstream.
	open := func() string {
		t.Helper()
		for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
			r := b.postStreamable(t, relay, "", request(t, 1, "initialize", initializeParams()))
			if r.status == http.StatusOK && r.session != "" {
				return r.session
			}
			if time.Since(start) > propagationBound {
				t.Fatalf("initialize on B's relay: %d %s", r.status, r.body)
			}
		}
	}
	// until calls the headers tool in session on B until ok accepts what the
	// upstream received, within propagationBound.
	until := func(session, what string, ok func(http.Header) bool) {
		t.Helper()
		start := time.Now()
		for n := 2; ; n++ {
			r := b.postStreamable(t, relay, session, request(t, n, "tools/call", map[string]any{"name": "headers", "arguments": map[string]any{}}),
				"X-Tenant-Id", "acme")
			if r.status != http.StatusOK || r.answer.Error != nil {
				t.Fatalf("tools/call on B's relay session: %d %v %s", r.status, r.answer.Error, r.body)
			}
			text, err := toolText(r.answer.Result)
			if err != nil {
				t.Fatal(err)
			}
			h, err := headersOf(text)
			if err != nil {
				t.Fatal(err)
			}
			if ok(h) {
				t.Logf("B's relay session: %s after %s", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > propagationBound {
				t.Fatalf("B's relay session still not %s after %s: the upstream got X-Tenant-Id %q, Authorization %q",
					what, propagationBound, h.Get("X-Tenant-Id"), h.Get("Authorization"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// endsWith waits for session on B to answer 404 saying why.
	endsWith := func(session string, stream <-chan struct{}, why string) {
		t.Helper()
		select {
		case <-stream:
		case <-time.After(propagationBound):
			t.Errorf("the GET stream of B's relay session stayed open %s after its upstream was %s", propagationBound, why)
		}
		r := b.postStreamable(t, relay, session, request(t, 99, "ping", nil))
		if r.status != http.StatusNotFound || !strings.Contains(r.body, `upstream \"crm\" was `+why) {
			t.Errorf("a request on B's relay session after its upstream was %s on A: %d %s, want 404 saying so", why, r.status, r.body)
		}
	}
	getStream := func(session string) <-chan struct{} {
		t.Helper()
		resp, err := b.open(t.Context(), "GET", relay, nil, "Accept", "text/event-stream",
			"Mcp-Session-Id", session, "Mcp-Protocol-Version", "2025-06-18")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET stream of B's relay session: %d", resp.StatusCode)
		}
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		return ended
	}
	put := func(patch map[string]any) {
		t.Helper()
		if status, out := a.do(t, "PUT", "/gateways/"+id, patch); status != http.StatusOK {
			t.Fatalf("PUT %v on A: %d %s", patch, status, out)
		}
	}

	session := open()
	until(session, "forwarding X-Tenant-Id with the first credential", func(h http.Header) bool {
		return h.Get("X-Tenant-Id") == "acme" && h.Get("Authorization") == "Bearer old-token"
	})
	put(map[string]any{"passthrough_headers": []string{}})
	until(session, "without X-Tenant-Id", func(h http.Header) bool { return h.Get("X-Tenant-Id") == "" })
	put(map[string]any{"auth_type": "bearer", "auth_token": "new-token"})
	until(session, "with the new credential", func(h http.Header) bool { return h.Get("Authorization") == "Bearer new-token" })

	stream := getStream(session)
	put(map[string]any{"enabled": false})
	endsWith(session, stream, "disabled")

	put(map[string]any{"enabled": true})
	session = open()
	stream = getStream(session)
	if status, out := a.do(t, "DELETE", "/gateways/"+id, nil); status/100 != 2 {
		t.Fatalf("DELETE on A: %d %s", status, out)
	}
	endsWith(session, stream, "deleted")
}
