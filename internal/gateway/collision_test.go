package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// TestPrefixCollisionsAreRefused: point 11. A name whose prefix (slug and
// GATEWAY_TOOL_NAME_SEPARATOR) begins another upstream's, or is begun by
// it, is refused with 422 on name, naming the other upstream and the name
// both would give ("a" + "-" + "b-x" = "a-b" + "-" + "x"): at registration
// and on a rename. A change that is not a rename is never refused for it,
// and under a separator no slug contains, the same names are fine.
func TestPrefixCollisionsAreRefused(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	a := gw.register(map[string]any{"name": "a", "url": up.URL})

	code, out := gw.do("POST", "/gateways", map[string]any{"name": "a-b", "url": up.URL})
	msg := refusedField(t, code, out, "name")
	for _, want := range []string{`upstream "a"`, a, `"a-b-x"`, `"b-x"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal of a-b %q does not contain %s", msg, want)
		}
	}
	gw.register(map[string]any{"name": "x-y", "url": up.URL})
	code, out = gw.do("POST", "/gateways", map[string]any{"name": "X", "url": up.URL}) // the shorter one second
	if msg := refusedField(t, code, out, "name"); !strings.Contains(msg, `upstream "x-y"`) {
		t.Errorf("refusal of X %q does not name upstream x-y", msg)
	}

	c := gw.register(map[string]any{"name": "c", "url": up.URL})
	code, out = gw.do("PUT", "/gateways/"+c, map[string]any{"name": "A B"}) // slug a-b
	if msg := refusedField(t, code, out, "name"); !strings.Contains(msg, `upstream "a"`) {
		t.Errorf("refusal of the rename %q does not name upstream a", msg)
	}
	if code, out := gw.do("PUT", "/gateways/"+c, map[string]any{"name": "c2"}); code != http.StatusOK {
		t.Errorf("rename to c2: %d %s, want 200", code, out)
	}
	if code, out := gw.do("PUT", "/gateways/"+a, map[string]any{"enabled": false}); code != http.StatusOK {
		t.Errorf("disable a: %d %s, want 200", code, out)
	}
	if names, raw := gw.upstreams(); len(names) != 3 {
		t.Errorf("upstreams = %s, want a, x-y and c2 alone", raw)
	}

	other := startGateway(t, sqliteURL(t), map[string]string{"GATEWAY_TOOL_NAME_SEPARATOR": "_"})
	other.register(map[string]any{"name": "a", "url": up.URL})
	other.register(map[string]any{"name": "a-b", "url": up.URL}) // a_ does not begin a-b_
}

// gatewayConflicts is the conflicts field of GET /gateways/{id}.
type gatewayConflicts struct {
	Conflicts []struct {
		Kind       string `json:"kind"`
		Name       string `json:"name"`
		Upstream   string `json:"upstream"`
		UpstreamID string `json:"upstream_id"`
		Served     bool   `json:"served"`
	} `json:"conflicts"`
}

func (r *running) conflicts(id string) gatewayConflicts {
	r.t.Helper()
	code, out := r.do("GET", "/gateways/"+id, nil)
	var v gatewayConflicts
	if code != http.StatusOK || json.Unmarshal(out, &v) != nil {
		r.t.Fatalf("GET /gateways/%s: %d %s", id, code, out)
	}
	return v
}

// TestNameConflictIsReportedNotSilent: point 11. Upstreams whose prefixes
// clash (stored before the rule above, or under another separator) collide
// as soon as one offers a tool whose federated name the other's has: the
// index serves the first in slug order, logs one WARN naming both, and GET
// /gateways/{id} of each shows the conflict.
func TestNameConflictIsReportedNotSilent(t *testing.T) {
	upA, upAB := mcptest.NewStreamableHTTP(t), mcptest.NewStreamableHTTP(t)
	db := sqliteURL(t)
	storeUpstreams(t, db, store.Upstream{Name: "a", URL: upA.URL}, store.Upstream{Name: "a-b", URL: upAB.URL})
	var log syncBuffer
	gw := startGatewayWith(t, db, nil, gatewayOptions{logger: slog.New(slog.NewJSONHandler(&log, nil))})
	byName, raw := gw.upstreams()
	a, ab := byName["a"].ID, byName["a-b"].ID
	if a == "" || ab == "" {
		t.Fatalf("upstreams: %s", raw)
	}
	gw.waitAvailable(a)
	gw.waitAvailable(ab)
	if c := gw.conflicts(ab); len(c.Conflicts) != 0 {
		t.Fatalf("before any collision: conflicts %+v", c.Conflicts)
	}

	// Upstream a now also offers b-echo: "a" + "-" + "b-echo" is a-b's echo.
	upA.AddTool("b-echo")
	if code, out := gw.do("POST", "/gateways/"+a+"/tools/refresh", nil); code != http.StatusOK {
		t.Fatalf("refresh: %d %s", code, out)
	}
	conflictWarns := func() []map[string]any {
		var out []map[string]any
		for _, rec := range log.records("WARN") {
			if rec["name"] == "a-b-echo" {
				out = append(out, rec)
			}
		}
		return out
	}
	testenv.WaitFor(t, 10*time.Second, "a WARN about a-b-echo", func() bool { return len(conflictWarns()) > 0 })
	w := conflictWarns()[0]
	if w["served_from_id"] != a || w["left_out_from_id"] != ab || w["served_from"] != "a" || w["left_out_from"] != "a-b" {
		t.Errorf("WARN %v does not name a as served and a-b as left out", w)
	}
	if c := gw.conflicts(ab).Conflicts; len(c) != 1 || c[0].Kind != "tool" || c[0].Name != "a-b-echo" || c[0].UpstreamID != a || c[0].Upstream != "a" || c[0].Served {
		t.Errorf("a-b's conflicts = %+v, want a-b-echo, not served, against upstream a", c)
	}
	if c := gw.conflicts(a).Conflicts; len(c) != 1 || c[0].Name != "a-b-echo" || c[0].UpstreamID != ab || !c[0].Served {
		t.Errorf("a's conflicts = %+v, want a-b-echo, served, against upstream a-b", c)
	}
	if res := gw.call("tools/call", map[string]any{"name": "a-b-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
		t.Fatalf("call a-b-echo: %s", res.Error.Message)
	}
	if upA.LastHeader("tools/call") == nil || upAB.LastHeader("tools/call") != nil {
		t.Error("a-b-echo did not go to upstream a, the one served")
	}

	// A conflict that lasts is not logged again on every refresh.
	n := len(conflictWarns())
	if n != 1 {
		t.Errorf("the conflict was logged %d times, want once: %v", n, conflictWarns())
	}
	if code, out := gw.do("POST", "/gateways/"+ab+"/tools/refresh", nil); code != http.StatusOK {
		t.Fatalf("refresh: %d %s", code, out)
	}
	if m := len(conflictWarns()); m != n {
		t.Errorf("a refresh that changed nothing logged the conflict again (%d WARNs, then %d)", n, m)
	}
}
