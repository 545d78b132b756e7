package cluster

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
)

// as is in, sending with token instead of the deployment's.
func (in *instance) as(token string) *instance {
	d := *in.d
	d.token = token
	other := *in
	other.d = &d
	return &other
}

// waitStatus polls a ping on /rpc at in until it answers want, and returns
// how long that took, or fails after propagationBound.
func waitStatus(t *testing.T, in *instance, want int) time.Duration {
	t.Helper()
	start := time.Now()
	ping := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}
	for {
		status, body, err := in.send(t.Context(), "POST", "/rpc", ping)
		if err == nil && status == want {
			return time.Since(start)
		}
		if time.Since(start) > propagationBound {
			t.Fatalf("%s answers %d %s (%v) %s after the change, want %d", in.name, status, body, err, propagationBound, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRevocationReachesEveryInstance: a token revoked through one instance
// (by jti, or all tokens of its subject) is refused by the others within
// the bus latency, far inside the cache TTL (one hour here, so only the bus
// can carry it), although each of them verified and cached the token
// before; lifting the revocation reaches them the same way.
func TestRevocationReachesEveryInstance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		redisDB int // 0: no Redis
	}{
		{"redis", 15},
		{"postgres-notify", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redisURL := ""
			if tc.redisDB != 0 {
				redisURL = redisDatabase(t, tc.redisDB)
			}
			d := newDeployment(t, redisURL, map[string]string{"GLOBAL_CONFIG_CACHE_TTL": "3600"})
			all := d.start([]string{"A", "B"}, nil)
			a, b := all[0], all[1]
			j, err := auth.NewJWT([]byte(jwtSecret))
			if err != nil {
				t.Fatal(err)
			}
			agent, err := j.Mint("agent-7", time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			claims, err := j.Verify(agent, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// Both instances verify (and remember) the token first.
			for _, in := range all {
				waitStatus(t, in.as(agent), http.StatusOK)
			}

			revoke := func(t *testing.T, at *instance, body map[string]any) string {
				t.Helper()
				status, out := at.do(t, "POST", "/admin/tokens/revocations", body)
				var rv struct {
					ID string `json:"id"`
				}
				if status != http.StatusCreated || json.Unmarshal(out, &rv) != nil || rv.ID == "" {
					t.Fatalf("revoke %v on %s: %d %s", body, at.name, status, out)
				}
				return rv.ID
			}
			lift := func(t *testing.T, at *instance, id string) {
				t.Helper()
				if status, out := at.do(t, "DELETE", "/admin/tokens/revocations/"+id, nil); status != http.StatusNoContent {
					t.Fatalf("lift %s on %s: %d %s", id, at.name, status, out)
				}
			}

			for _, c := range []struct {
				name     string
				at, seen *instance
				body     map[string]any
			}{
				{"jti on A, seen on B", a, b, map[string]any{"jti": claims.ID, "reason": "leaked"}},
				{"subject on B, seen on A", b, a, map[string]any{"subject": "agent-7"}},
			} {
				t.Run(c.name, func(t *testing.T) {
					id := revoke(t, c.at, c.body)
					// The instance that stored it refuses at once.
					if status, out := c.at.as(agent).do(t, "POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != http.StatusUnauthorized {
						t.Errorf("%s right after the revocation: %d %s, want 401", c.at.name, status, out)
					}
					took := waitStatus(t, c.seen.as(agent), http.StatusUnauthorized)
					t.Logf("revocation %s→%s (%s): %s", c.at.name, c.seen.name, tc.name, took.Round(time.Millisecond))
					// Other tokens go on.
					waitStatus(t, c.seen, http.StatusOK)
					lift(t, c.at, id)
					took = waitStatus(t, c.seen.as(agent), http.StatusOK)
					t.Logf("lifting %s→%s (%s): %s", c.at.name, c.seen.name, tc.name, took.Round(time.Millisecond))
				})
			}
			if n := len(b.logLines(func(l string) bool { return strings.Contains(l, agent) })); n != 0 {
				t.Errorf("B logged the token %d times", n)
			}
		})
	}
}
