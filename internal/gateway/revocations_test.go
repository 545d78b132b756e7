package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/store"
)

var ping = map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}

// revocationOf is a revocation as the admin API answers it.
type revocationOf struct {
	ID        string    `json:"id"`
	JTI       string    `json:"jti"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Reason    string    `json:"reason"`
	RevokedBy string    `json:"revoked_by"`
	RevokedAt time.Time `json:"revoked_at"`
}

func (r *running) revoke(body map[string]any) revocationOf {
	r.t.Helper()
	status, out := r.do("POST", "/admin/tokens/revocations", body)
	var rv revocationOf
	if status != http.StatusCreated || json.Unmarshal(out, &rv) != nil {
		r.t.Fatalf("revoke %v: %d %s", body, status, out)
	}
	return rv
}

// TestRevokedTokensAreRefused: an administrator revokes one token by jti
// (others of the same subject go on), then every token of a subject issued
// until then (one minted later passes), lists and lifts revocations; a
// revoked token is refused although the verifier had cached it, with a 401
// that says so. Revocations survive a restart.
func TestRevokedTokensAreRefused(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		db := dbURL(t)
		gw := startGateway(t, db, nil)
		j, _ := auth.NewJWT([]byte(jwtSecret))
		now := time.Now()
		first, _ := j.Mint("agent", time.Hour, now)
		second, _ := j.Mint("agent", time.Hour, now)
		for _, tok := range []string{first, second} {
			if status, out := doAs(t, gw, tok, "POST", "/rpc", ping); status != http.StatusOK {
				t.Fatalf("before: %d %s", status, out)
			}
		}
		claims, _ := j.Verify(first, now)
		byJTI := gw.revoke(map[string]any{"jti": claims.ID, "reason": "laptop lost"})
		if byJTI.JTI != claims.ID || byJTI.Reason != "laptop lost" || byJTI.RevokedBy != "test" || byJTI.ID == "" {
			t.Errorf("revocation = %+v", byJTI)
		}
		status, out := doAs(t, gw, first, "POST", "/rpc", ping)
		if status != http.StatusUnauthorized || !strings.Contains(string(out), "revoked") || strings.Contains(string(out), first) {
			t.Errorf("the revoked token: %d %s, want 401 saying revoked, without the token", status, out)
		}
		if status, out := doAs(t, gw, second, "POST", "/rpc", ping); status != http.StatusOK {
			t.Errorf("the subject's other token: %d %s", status, out)
		}

		bySubject := gw.revoke(map[string]any{"subject": "agent"})
		if bySubject.Subject != "agent" || bySubject.Issuer != auth.Issuer {
			t.Errorf("revocation = %+v, want subject agent of issuer mcpgate", bySubject)
		}
		if status, _ := doAs(t, gw, second, "POST", "/rpc", ping); status != http.StatusUnauthorized {
			t.Errorf("a token of the revoked subject: %d, want 401", status)
		}
		// iat has whole seconds: a token minted after the revocation's second passes.
		later, _ := j.Mint("agent", time.Hour, bySubject.RevokedAt.Add(time.Second))
		if status, out := doAs(t, gw, later, "POST", "/rpc", ping); status != http.StatusOK {
			t.Errorf("a token of the subject issued after the revocation: %d %s", status, out)
		}

		status, out = gw.do("GET", "/admin/tokens/revocations", nil)
		var list []revocationOf
		if status != http.StatusOK || json.Unmarshal(out, &list) != nil || len(list) != 2 {
			t.Fatalf("list: %d %s", status, out)
		}

		// A restart reads them from the store.
		gw.stop()
		gw = startGateway(t, db, nil)
		if status, _ := doAs(t, gw, first, "POST", "/rpc", ping); status != http.StatusUnauthorized {
			t.Errorf("the revoked token after a restart: %d, want 401", status)
		}
		for _, rv := range []revocationOf{byJTI, bySubject} {
			if status, out := gw.do("DELETE", "/admin/tokens/revocations/"+rv.ID, nil); status != http.StatusNoContent {
				t.Errorf("lift %s: %d %s", rv.ID, status, out)
			}
		}
		if status, out := doAs(t, gw, first, "POST", "/rpc", ping); status != http.StatusOK {
			t.Errorf("after lifting: %d %s", status, out)
		}
		if status, out := gw.do("DELETE", "/admin/tokens/revocations/"+byJTI.ID, nil); status != http.StatusNotFound || !strings.Contains(string(out), byJTI.ID) {
			t.Errorf("lifting it again: %d %s, want 404 naming it", status, out)
		}
	})
}

// TestRevocationRequestsNameTheField: a bad revocation request is a 422
// naming the field.
func TestRevocationRequestsNameTheField(t *testing.T) {
	gw := startGateway(t, databases()[0].url(t), nil)
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{}, "jti"},
		{map[string]any{"jti": "a", "subject": "b"}, "jti"},
		{map[string]any{"issuer": "https://idp"}, "subject"},
		{map[string]any{"jti": 7}, "jti"},
		{map[string]any{"subject": "a", "everything": true}, "everything"},
		{map[string]any{"subject": strings.Repeat("s", 2000)}, "subject"},
	} {
		status, out := gw.do("POST", "/admin/tokens/revocations", tc.body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"`+tc.field+`"`) {
			t.Errorf("%v: %d %s, want 422 naming %s", tc.body, status, out, tc.field)
		}
	}
}

// TestRevocationWithoutTheBusArrivesByTTL: a revocation written to the
// database without an event (as when the bus is down while another
// instance stores it) is in force within GLOBAL_CONFIG_CACHE_TTL.
func TestRevocationWithoutTheBusArrivesByTTL(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		db := dbURL(t)
		gw := startGateway(t, db, map[string]string{"GLOBAL_CONFIG_CACHE_TTL": "1"})
		j, _ := auth.NewJWT([]byte(jwtSecret))
		tok, _ := j.Mint("quiet", time.Hour, time.Now())
		if status, _ := doAs(t, gw, tok, "POST", "/rpc", ping); status != http.StatusOK {
			t.Fatal("before")
		}
		if strings.HasPrefix(db, "sqlite") {
			// The gateway holds the SQLite file's one-instance lock: write
			// through its own store, past the bus.
			if _, err := gw.gateway.store.AddRevocation(t.Context(), store.Revocation{Kind: store.RevokeSubject, Issuer: auth.Issuer, Value: "quiet"}); err != nil {
				t.Fatal(err)
			}
		} else {
			st, err := store.Open(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.AddRevocation(t.Context(), store.Revocation{Kind: store.RevokeSubject, Issuer: auth.Issuer, Value: "quiet"}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, _ := doAs(t, gw, tok, "POST", "/rpc", ping)
			if status == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d 5 s after a revocation with a 1 s TTL", status)
			}
			time.Sleep(20 * time.Millisecond) // polling the TTL's effect: there is no signal to wait for
		}
	})
}

// TestRevocationEndsOpenWebSocketSessions: a WebSocket is authenticated
// once, at its upgrade; a revocation made while it is open ends it at its
// next message, with the reason, rather than let the revoked token go on
// calling tools (found in review).
func TestRevocationEndsOpenWebSocketSessions(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), nil)
		j, _ := auth.NewJWT([]byte(jwtSecret))
		tok, _ := j.Mint("agent", time.Hour, time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, wsURL(gw), &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}, Subprotocols: []string{"mcp"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		call := func() (string, error) {
			if err := conn.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)); err != nil {
				return "", err
			}
			_, data, err := conn.Read(ctx)
			return string(data), err
		}
		if out, err := call(); err != nil || !strings.Contains(out, `"result"`) {
			t.Fatalf("before the revocation: %q, %v", out, err)
		}
		claims, _ := j.Verify(tok, time.Now())
		gw.revoke(map[string]any{"jti": claims.ID})
		out, err := call()
		if err == nil {
			t.Fatalf("after the revocation the open socket still answered %q; want it closed", out)
		}
		if reason := websocket.CloseStatus(err); reason == -1 || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("the socket ended with %v; want a close whose reason says the token was revoked", err)
		}
	})
}
