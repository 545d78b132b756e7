package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// records returns the JSON log lines at level, decoded.
func (b *syncBuffer) records(level string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == level {
			out = append(out, rec)
		}
	}
	return out
}

// startWithSecrets starts mcpgate on dbURL with these encryption settings,
// logging JSON into log.
func startWithSecrets(t *testing.T, dbURL string, log *syncBuffer, secrets map[string]string) *running {
	t.Helper()
	return startGatewayWith(t, dbURL, secrets, gatewayOptions{logger: slog.New(slog.NewJSONHandler(log, nil))})
}

// gatewayStatus returns GET /gateways/{id}'s status and status_reason.
func (r *running) gatewayStatus(id string) (status, reason string) {
	r.t.Helper()
	code, out := r.do("GET", "/gateways/"+id, nil)
	if code != http.StatusOK {
		r.t.Fatalf("GET /gateways/%s: %d %s", id, code, out)
	}
	var v upstreamView
	if err := json.Unmarshal(out, &v); err != nil {
		r.t.Fatalf("GET /gateways/%s: %v in %s", id, err, out)
	}
	return v.Status, v.Reason
}

// waitAvailable waits until upstream id is available.
func (r *running) waitAvailable(id string) {
	r.t.Helper()
	testenv.WaitFor(r.t, 10*time.Second, "upstream "+id+" to be available", func() bool {
		s, _ := r.gatewayStatus(id)
		return s == "available"
	})
}

// TestNewSecretWarnsAndPutResealsCredentials: point 10. After
// AUTH_ENCRYPTION_SECRET changed, stored credentials cannot be opened: start
// warns once per such upstream naming the fix, status_reason says the same,
// a PUT that does not need the credentials still applies (they stay sealed
// as they were), one that names the same auth type without them is refused
// on "auth", and one that gives them again is accepted and re-seals them
// under the new secret — which alone opens them at the next start.
func TestNewSecretWarnsAndPutResealsCredentials(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		db := dbURL(t)
		up := mcptest.NewStreamableHTTP(t, mcptest.WithRequireAuthorization("Bearer s3cret-token"))
		var log1 syncBuffer
		gw := startWithSecrets(t, db, &log1, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-one"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "s3cret-token"})
		gw.stop()

		var log2 syncBuffer
		gw = startWithSecrets(t, db, &log2, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-two"})
		var warned []map[string]any
		for _, rec := range log2.records("WARN") {
			if rec["upstream_id"] == id && strings.Contains(rec["msg"].(string), "credentials cannot be opened") {
				warned = append(warned, rec)
			}
		}
		if len(warned) != 1 {
			t.Errorf("start with a new secret logged %d WARNs about upstream %s's credentials, want 1:\n%v", len(warned), id, log2.records("WARN"))
		} else if fix, _ := warned[0]["fix"].(string); !strings.Contains(fix, "PUT /gateways/"+id) || !strings.Contains(fix, "OLD_AUTH_ENCRYPTION_SECRET") {
			t.Errorf("the WARN's fix %q does not name PUT /gateways/%s and OLD_AUTH_ENCRYPTION_SECRET", fix, id)
		}
		if status, reason := gw.gatewayStatus(id); status != "unavailable" || !strings.Contains(reason, "PUT /gateways/"+id) {
			t.Errorf("status %q, reason %q; want unavailable, saying to give the credentials again", status, reason)
		}

		// A patch that does not need the credentials applies.
		code, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": []string{"X-Tenant-Id"}})
		if code != http.StatusOK {
			t.Errorf("PUT of a list only: %d %s, want 200", code, out)
		}
		// One that has them checked, without giving them, is refused on auth.
		code, out = gw.do("PUT", "/gateways/"+id, map[string]any{"auth_type": "bearer"})
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"loc":["body","auth"]`) ||
			!strings.Contains(string(out), "AUTH_ENCRYPTION_SECRET") || !strings.Contains(string(out), "give them again") {
			t.Errorf("PUT of the same auth type alone: %d %s; want 422 on auth saying the stored credentials cannot be opened with AUTH_ENCRYPTION_SECRET", code, out)
		}
		// New credentials are accepted and work at once.
		code, out = gw.do("PUT", "/gateways/"+id, map[string]any{"auth_token": "s3cret-token"})
		if code != http.StatusOK {
			t.Fatalf("PUT with new credentials: %d %s, want 200", code, out)
		}
		gw.waitAvailable(id)
		if res := gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("call after new credentials: %s", res.Error.Message)
		}
		gw.stop()

		var log3 syncBuffer
		gw = startWithSecrets(t, db, &log3, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-two"})
		gw.waitAvailable(id)
		if n := len(log3.records("WARN")); n != 0 {
			t.Errorf("restart after the PUT logged WARNs: %v", log3.records("WARN"))
		}
	})
}

// TestOldSecretReopensAndReseals: point 10's rotation. Started with a new
// AUTH_ENCRYPTION_SECRET and the previous one as OLD_AUTH_ENCRYPTION_SECRET,
// mcpgate opens the stored credentials, re-seals them under the new secret
// (logged once as a count, never a value), so that the next start with the
// new secret alone opens them.
func TestOldSecretReopensAndReseals(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		db := dbURL(t)
		up := mcptest.NewStreamableHTTP(t, mcptest.WithRequireAuthorization("Bearer s3cret-token"))
		var log1 syncBuffer
		gw := startWithSecrets(t, db, &log1, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-one"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "s3cret-token"})
		gw.register(map[string]any{"name": "open", "url": up.URL + "?open", "auth_type": "bearer", "auth_token": "s3cret-token"})
		gw.register(map[string]any{"name": "public", "url": mcptest.NewStreamableHTTP(t).URL}) // no credentials
		gw.stop()

		var log2 syncBuffer
		gw = startWithSecrets(t, db, &log2, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-two", "OLD_AUTH_ENCRYPTION_SECRET": "secret-one"})
		gw.waitAvailable(id)
		if warns := log2.records("WARN"); len(warns) != 0 {
			t.Errorf("start with the old secret given logged WARNs: %v", warns)
		}
		var counts []any
		for _, rec := range log2.records("INFO") {
			if strings.Contains(rec["msg"].(string), "re-sealed") {
				counts = append(counts, rec["upstreams"])
			}
		}
		if len(counts) != 1 || counts[0] != float64(2) {
			t.Errorf("re-seal logged with counts %v, want once with 2", counts)
		}
		for _, s := range []string{"s3cret-token", "secret-one", "secret-two"} {
			if log2.count(s) != 0 {
				t.Errorf("the log shows %q", s)
			}
		}
		gw.stop()

		var log3 syncBuffer
		gw = startWithSecrets(t, db, &log3, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-two"})
		gw.waitAvailable(id)
		if warns := log3.records("WARN"); len(warns) != 0 {
			t.Errorf("start with the new secret alone logged WARNs: %v", warns)
		}
		if res := gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("call with re-sealed credentials: %s", res.Error.Message)
		}
	})
}

// TestNoSecretWarnsPerUpstreamAndCredentialsCanBeDropped: started without
// AUTH_ENCRYPTION_SECRET on a database holding credentials, mcpgate warns
// once per upstream that has some, naming the fix, and a PUT that drops
// them (auth_type none) is accepted.
func TestNoSecretWarnsPerUpstreamAndCredentialsCanBeDropped(t *testing.T) {
	db := sqliteURL(t)
	up := mcptest.NewStreamableHTTP(t)
	var log1 syncBuffer
	gw := startWithSecrets(t, db, &log1, map[string]string{"AUTH_ENCRYPTION_SECRET": "secret-one"})
	id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "s3cret-token"})
	gw.stop()

	var log2 syncBuffer
	gw = startWithSecrets(t, db, &log2, map[string]string{"AUTH_ENCRYPTION_SECRET": ""})
	n := 0
	for _, rec := range log2.records("WARN") {
		if fix, _ := rec["fix"].(string); rec["upstream_id"] == id && strings.Contains(fix, "AUTH_ENCRYPTION_SECRET") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("start without a secret logged %d WARNs naming upstream %s and the fix, want 1: %v", n, id, log2.records("WARN"))
	}
	code, out := gw.do("PUT", "/gateways/"+id, map[string]any{"auth_type": "none"})
	if code != http.StatusOK {
		t.Fatalf("PUT auth_type none: %d %s, want 200", code, out)
	}
	gw.waitAvailable(id)
}
