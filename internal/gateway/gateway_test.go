package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// These tests run a real gateway on a loopback port in front of real MCP
// servers, against SQLite and against PostgreSQL, and check on the wire what
// each upstream receives.

const jwtSecret = "0123456789abcdef0123456789abcdef-test-only"

// database names a backend the suite runs against.
type database struct {
	name string
	url  func(t *testing.T) string
}

func databases() []database {
	return []database{
		{"sqlite", func(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "mcpgate.db") }},
		{"postgres", func(t *testing.T) string { return testenv.PostgresDatabase(t, "mcpgate_gw") }},
	}
}

// running is a gateway serving on a loopback port.
type running struct {
	t       *testing.T
	url     string
	token   string
	stop    func()
	gateway *Gateway
	// lastSessionID is the Mcp-Session-Id of post's last answer with one.
	lastSessionID string
}

// startGateway starts mcpgate with the given settings (environment names)
// on databaseURL.
func startGateway(t *testing.T, databaseURL string, env map[string]string) *running {
	t.Helper()
	return startGatewayWith(t, databaseURL, env, gatewayOptions{})
}

// gatewayOptions are startGatewayWith's choices beyond the settings.
type gatewayOptions struct {
	logger *slog.Logger // nil: discarded, or stderr with MCPGATE_TEST_LOG set
	listen string       // the address to listen on; "" is 127.0.0.1:0
}

// startGatewayWith is startGateway with options.
func startGatewayWith(t *testing.T, databaseURL string, env map[string]string, opts gatewayOptions) *running {
	t.Helper()
	logger := opts.logger
	vars := map[string]string{
		"DATABASE_URL":                databaseURL,
		"JWT_SECRET_KEY":              jwtSecret,
		"AUTH_ENCRYPTION_SECRET":      "test-encryption-secret",
		"ENABLE_HEADER_PASSTHROUGH":   "true",
		"UPSTREAM_TIMEOUT":            "5s",
		"CATALOGUE_REFRESH_INTERVAL":  "0",
		"SHUTDOWN_TIMEOUT":            "5s",
		"MCPGATE_ENV_FILE":            filepath.Join(t.TempDir(), "none.env"),
		"DEFAULT_PASSTHROUGH_HEADERS": "[]",
	}
	for k, v := range env {
		vars[k] = v
	}
	if err := os.WriteFile(vars["MCPGATE_ENV_FILE"], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(nil, func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("MCPGATE_TEST_LOG") != "" { // the gateway's debug log, for a failing test
			logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, logger, "test")
	if err != nil {
		cancel()
		t.Fatalf("start gateway: %v", err)
	}
	if opts.listen == "" {
		opts.listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	r := &running{t: t, url: "http://" + ln.Addr().String(), gateway: g}
	if cfg.AuthRequired {
		// The tests call the admin API and the MCP endpoints alike.
		j, _ := auth.NewJWT([]byte(jwtSecret))
		r.token, _ = j.MintWith("test", time.Hour, time.Now(), auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}})
	}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		g.Close()
	}
	t.Cleanup(r.stop)
	return r
}

// do sends a request with the client token and returns status and body.
func (r *running) do(method, path string, body any, headers ...string) (int, []byte) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// register adds an upstream through the admin API and returns its id.
func (r *running) register(body map[string]any) string {
	r.t.Helper()
	status, out := r.do("POST", "/gateways", body)
	if status != http.StatusCreated {
		r.t.Fatalf("register: %d %s", status, out)
	}
	var v struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Reason string `json:"status_reason"`
	}
	_ = json.Unmarshal(out, &v)
	if v.Status != "available" {
		r.t.Fatalf("registered upstream is %s: %s", v.Status, v.Reason)
	}
	return v.ID
}

// rpcResult is a JSON-RPC answer from /rpc.
type rpcResult struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends one JSON-RPC request to /rpc with extra headers.
func (r *running) call(method string, params any, headers ...string) rpcResult {
	r.t.Helper()
	status, out := r.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, headers...)
	if status != http.StatusOK {
		r.t.Fatalf("%s: HTTP %d %s", method, status, out)
	}
	var res rpcResult
	if err := json.Unmarshal(out, &res); err != nil {
		r.t.Fatalf("%s: %v in %s", method, err, out)
	}
	return res
}

// upstreamSaw returns the headers the upstream got with its last request
// carrying the JSON-RPC method.
func upstreamSaw(t *testing.T, s *mcptest.Server, method string) http.Header {
	t.Helper()
	h := s.LastHeader(method)
	if h == nil {
		t.Fatalf("the upstream received no %s", method)
	}
	return h
}

func forEachDatabase(t *testing.T, test func(t *testing.T, dbURL func(*testing.T) string)) {
	for _, db := range databases() {
		t.Run(db.name, func(t *testing.T) { test(t, db.url) })
	}
}

// TestPassthroughOnTheWire checks spec §2 and §3 end to end, for both
// upstream transports: allowlisted headers reach the upstream, others do not,
// mcpgate's own token never does (D4), X-Upstream-Authorization becomes the
// upstream's Authorization, and a change to the global list applies on the
// very next call.
func TestPassthroughOnTheWire(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		for _, transport := range []string{"STREAMABLEHTTP", "SSE"} {
			t.Run(transport, func(t *testing.T) {
				up := mcptest.NewStreamableHTTP(t)
				if transport == "SSE" {
					up = mcptest.NewSSE(t)
				}
				gw := startGateway(t, dbURL(t), nil)
				gw.register(map[string]any{"name": "crm", "url": up.URL, "transport": transport})
				if status, out := gw.do("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": []string{"X-Tenant-Id"}}); status != 200 {
					t.Fatalf("set global list: %d %s", status, out)
				}

				res := gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "hi"}},
					"X-Tenant-Id", "acme", "X-Other", "nope", "X-Upstream-Authorization", "Bearer for-crm")
				if res.Error != nil {
					t.Fatalf("tools/call: %+v", res.Error)
				}
				h := upstreamSaw(t, up, "tools/call")
				if got := h.Get("X-Tenant-Id"); got != "acme" {
					t.Errorf("upstream got X-Tenant-Id %q, want acme", got)
				}
				if got := h.Get("X-Other"); got != "" {
					t.Errorf("upstream got X-Other %q, want nothing", got)
				}
				if got := h.Get("Authorization"); got != "Bearer for-crm" {
					t.Errorf("upstream got Authorization %q, want the X-Upstream-Authorization value (never mcpgate's token)", got)
				}

				// A change applies on the next call, without waiting for the TTL.
				gw.do("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": []string{"X-Other"}})
				gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "hi"}},
					"X-Tenant-Id", "acme", "X-Other", "yes")
				h = upstreamSaw(t, up, "tools/call")
				if h.Get("X-Tenant-Id") != "" || h.Get("X-Other") != "yes" {
					t.Errorf("after the change the upstream got X-Tenant-Id %q, X-Other %q; want none and yes", h.Get("X-Tenant-Id"), h.Get("X-Other"))
				}
			})
		}
	})
}

// TestClientTokenNeverForwarded: with auth_type none the client's own
// Authorization is mcpgate's credential and never reaches the upstream (D4),
// even allowlisted.
func TestClientTokenNeverForwarded(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "Authorization,X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		gw.register(map[string]any{"name": "open", "url": up.URL, "auth_type": "none"})
		if res := gw.call("tools/call", map[string]any{"name": "open-echo", "arguments": map[string]any{"text": "x"}}, "X-Tenant-Id", "t1"); res.Error != nil {
			t.Fatal(res.Error.Message)
		}
		h := upstreamSaw(t, up, "tools/call")
		if got := h.Get("Authorization"); got != "" {
			t.Errorf("upstream got Authorization %q: mcpgate's own token leaked", got)
		}
		if h.Get("X-Tenant-Id") != "t1" {
			t.Errorf("X-Tenant-Id = %q", h.Get("X-Tenant-Id"))
		}
	})
}

// TestRedirectsAreNotFollowed: an upstream that answers a call with a
// redirect gets an error naming it; the host it points at receives nothing,
// neither the upstream's credential nor the client's passthrough headers.
func TestRedirectsAreNotFollowed(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		elsewhere := mcptest.NewStreamableHTTP(t)
		target, err := url.Parse(up.URL)
		if err != nil {
			t.Fatal(err)
		}
		var redirect atomic.Bool
		proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if redirect.Load() && r.Method == http.MethodPost {
				http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)

		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		gw.register(map[string]any{"name": "moved", "url": front.URL + target.Path, "auth_type": "bearer", "auth_token": "upstream-secret"})
		redirect.Store(true)
		res := gw.call("tools/call", map[string]any{"name": "moved-echo", "arguments": map[string]any{"text": "x"}}, "X-Tenant-Id", "t1")
		if res.Error == nil || !strings.Contains(res.Error.Message, "moved") || !strings.Contains(res.Error.Message, "307") {
			t.Errorf("call answered with a redirect: %+v, want an error naming the upstream and the 307", res.Error)
		}
		if got := elsewhere.Requests(); len(got) != 0 {
			t.Errorf("the redirect target received %d requests, the first with headers %v", len(got), got[0].Header)
		}
	})
}

// TestUpstreamListNullInheritsEmptyForwardsNothing: D5 on tools/call, and a
// PUT with null puts an upstream back to inheriting.
func TestUpstreamListNullInheritsEmptyForwardsNothing(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "passthrough_headers": []string{}})
		args := map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}
		gw.call("tools/call", args, "X-Tenant-Id", "acme")
		if got := upstreamSaw(t, up, "tools/call").Get("X-Tenant-Id"); got != "" {
			t.Errorf("with [] the upstream got X-Tenant-Id %q", got)
		}
		status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": nil})
		if status != 200 || !strings.Contains(string(out), `"passthrough_headers":null`) {
			t.Fatalf("PUT null: %d %s", status, out)
		}
		gw.call("tools/call", args, "X-Tenant-Id", "acme")
		if got := upstreamSaw(t, up, "tools/call").Get("X-Tenant-Id"); got != "acme" {
			t.Errorf("with null (inherit) the upstream got X-Tenant-Id %q, want acme", got)
		}
	})
}

// TestResourcesAndPromptsGetPassthrough: D6.
func TestResourcesAndPromptsGetPassthrough(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		for _, c := range []struct {
			method string
			params any
		}{
			{"resources/read", map[string]any{"uri": "test://hello"}},
			{"resources/read", map[string]any{"uri": "test://items/42"}},
			{"prompts/get", map[string]any{"name": "crm-greet", "arguments": map[string]any{"name": "Ada"}}},
			{"completion/complete", map[string]any{"ref": map[string]any{"type": "ref/prompt", "name": "crm-greet"}, "argument": map[string]any{"name": "name", "value": "A"}}},
		} {
			res := gw.call(c.method, c.params, "X-Tenant-Id", "acme")
			if res.Error != nil {
				t.Errorf("%s %v: %s", c.method, c.params, res.Error.Message)
				continue
			}
			if got := upstreamSaw(t, up, c.method).Get("X-Tenant-Id"); got != "acme" {
				t.Errorf("%s: upstream got X-Tenant-Id %q, want acme", c.method, got)
			}
		}
	})
}

// TestFederation: lists merge under prefixed names; results come back raw;
// unknown tools and malformed requests get clear JSON-RPC errors.
func TestFederation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		a := mcptest.NewStreamableHTTP(t)
		b := mcptest.NewSSE(t)
		weird := `{"content":[{"type":"x-hologram","frames":[1, 2,3],"html":"<b>&amp;</b>"}],"x-extra":{"kept":true},"isError":false}`
		raw := mcptest.NewRaw(t, func(req jsonrpc.Message, _ http.Header) jsonrpc.Message {
			switch req.Method {
			case "tools/list":
				return jsonrpc.Message{Result: json.RawMessage(`{"tools":[{"name":"hologram","inputSchema":{"type":"object"}}]}`)}
			case "tools/call":
				return jsonrpc.Message{Result: json.RawMessage(weird)}
			}
			return jsonrpc.Message{Error: jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", req.Method)}
		})
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "Alpha", "url": a.URL})
		gw.register(map[string]any{"name": "beta", "url": b.URL, "transport": "SSE"})
		gw.register(map[string]any{"name": "raw", "url": raw.URL})

		res := gw.call("tools/list", map[string]any{})
		var list struct {
			Tools []struct{ Name string } `json:"tools"`
		}
		_ = json.Unmarshal(res.Result, &list)
		names := map[string]bool{}
		for _, tl := range list.Tools {
			names[tl.Name] = true
		}
		for _, want := range []string{"alpha-echo", "alpha-headers", "beta-echo", "beta-add"} {
			if !names[want] {
				t.Errorf("tools/list lacks %s: %v", want, names)
			}
		}

		var rawTool string
		for n := range names {
			if strings.HasPrefix(n, "raw-") {
				rawTool = n
			}
		}
		status, out := gw.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": map[string]any{"name": rawTool, "arguments": map[string]any{}}})
		if status != 200 || !bytes.Contains(out, []byte(`"result":`+weird)) {
			t.Errorf("raw result not forwarded byte for byte: %d %s", status, out)
		}

		res = gw.call("tools/call", map[string]any{"name": "nobody-nope"})
		if res.Error == nil || !strings.Contains(res.Error.Message, "nobody-nope") {
			t.Errorf("unknown tool: %+v", res.Error)
		}
		// A known prefix: the upstream's own answer (docs/federation.md).
		res = gw.call("tools/call", map[string]any{"name": "alpha-nope"})
		if res.Error == nil || res.Error.Message != `unknown tool "nope"` {
			t.Errorf("unknown tool of a known upstream: %+v, want the upstream's own answer", res.Error)
		}
		req, _ := http.NewRequest("POST", gw.url+"/rpc", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":`))
		req.Header.Set("Authorization", "Bearer "+gw.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte("-32700")) {
			t.Errorf("malformed JSON: %s", body)
		}
	})
}

// TestUpstreamDownDoesNotAffectOthers: a killed upstream answers a JSON-RPC
// error naming it, within the timeout; the other keeps working.
func TestUpstreamDownDoesNotAffectOthers(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		a := mcptest.NewStreamableHTTP(t)
		b := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"UPSTREAM_TIMEOUT": "2s"})
		gw.register(map[string]any{"name": "a", "url": a.URL})
		gw.register(map[string]any{"name": "b", "url": b.URL})
		a.Kill()
		start := time.Now()
		res := gw.call("tools/call", map[string]any{"name": "a-echo", "arguments": map[string]any{"text": "x"}})
		if res.Error == nil || !strings.Contains(res.Error.Message, `"a"`) {
			t.Errorf("call to the dead upstream: %+v, want an error naming it", res.Error)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the error took %s, longer than UPSTREAM_TIMEOUT", d)
		}
		if res := gw.call("tools/call", map[string]any{"name": "b-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("the other upstream failed too: %s", res.Error.Message)
		}
	})
}

// TestAdminValidation: each invalid field is a 422 naming it.
func TestAdminValidation(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		for _, c := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "x", "url": "ftp://nope"}, "url"},
			{map[string]any{"name": "x", "url": up.URL, "transport": "CARRIER_PIGEON"}, "transport"},
			{map[string]any{"name": "x", "url": up.URL, "auth_type": "magic"}, "auth_type"},
			{map[string]any{"name": "x", "url": up.URL, "passthrough_headers": []string{"Bad Header"}}, "passthrough_headers[0]"},
			{map[string]any{"name": "CRM", "url": up.URL}, "name"},
			{map[string]any{"name": "x", "url": up.URL, "auth_type": "bearer"}, "auth_token"},
			{map[string]any{"name": "x", "url": up.URL, "colour": "red"}, "colour"},
			{map[string]any{"url": up.URL}, "name"},
		} {
			status, out := gw.do("POST", "/gateways", c.body)
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"`+c.field+`"`) {
				t.Errorf("%v: %d %s; want 422 naming %s", c.body, status, out, c.field)
			}
		}
		if status, out := gw.do("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": []string{"X-Ok", "Bad:Name"}}); status != 422 || !strings.Contains(string(out), "passthrough_headers[1]") {
			t.Errorf("bad global list: %d %s", status, out)
		}
	})
}

// TestCredentialsNeverReturned: credentials are stored encrypted and never
// appear in an answer.
func TestCredentialsNeverReturned(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t, mcptest.WithRequireAuthorization("Bearer s3cret-token"))
		gw := startGateway(t, dbURL(t), nil)
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "s3cret-token"})
		for _, path := range []string{"/gateways", "/gateways/" + id} {
			_, out := gw.do("GET", path, nil)
			if strings.Contains(string(out), "s3cret") {
				t.Errorf("GET %s shows the credential: %s", path, out)
			}
		}
		if res := gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("call with stored bearer credentials: %s", res.Error.Message)
		}
	})
}

// TestRefreshKeepsCredentials: D7. A refresh made while a client sends its
// own credentials still discovers with the stored ones.
func TestRefreshKeepsCredentials(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t, mcptest.WithRequireAuthorization("Bearer stored"))
		gw := startGateway(t, dbURL(t), nil)
		id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "bearer", "auth_token": "stored"})
		status, out := gw.do("POST", "/gateways/"+id+"/tools/refresh", nil, "X-Upstream-Authorization", "Bearer client-supplied")
		if status != 200 || !strings.Contains(string(out), `"status":"available"`) {
			t.Fatalf("refresh: %d %s", status, out)
		}
		if got := upstreamSaw(t, up, "initialize").Get("Authorization"); got != "Bearer stored" {
			t.Errorf("refresh discovered with Authorization %q, want the stored credential", got)
		}
	})
}

// TestClientAuthentication: no token, a bad token: 401; health and ready
// need none.
func TestClientAuthentication(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), nil)
		token := gw.token
		gw.token = ""
		if status, _ := gw.do("GET", "/gateways", nil); status != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", status)
		}
		gw.token = "not-a-jwt"
		if status, _ := gw.do("POST", "/rpc", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "ping"}); status != http.StatusUnauthorized {
			t.Errorf("bad token: %d, want 401", status)
		}
		gw.token = ""
		for _, p := range []string{"/health", "/ready"} {
			if status, out := gw.do("GET", p, nil); status != 200 {
				t.Errorf("%s: %d %s", p, status, out)
			}
		}
		gw.token = token
		if status, _ := gw.do("GET", "/gateways", nil); status != 200 {
			t.Errorf("good token: %d", status)
		}
	})
}

// TestStartRefusesWithoutSecret: auth on and no JWT_SECRET_KEY stops start-up
// with a message naming the setting and the way out.
func TestStartRefusesWithoutSecret(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		vars := map[string]string{"DATABASE_URL": dbURL(t), "MCPGATE_ENV_FILE": filepath.Join(t.TempDir(), "x.env")}
		_ = os.WriteFile(vars["MCPGATE_ENV_FILE"], nil, 0o600)
		cfg, err := config.Load(nil, func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(context.Background(), cfg, slog.New(slog.DiscardHandler), "test")
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET_KEY") || !strings.Contains(err.Error(), "AUTH_REQUIRED=false") {
			t.Errorf("error = %v", err)
		}
	})
}

// TestSQLiteIsSingleInstance: a second gateway on the same SQLite file is
// refused at start with an error naming DATABASE_URL and what to use
// instead; once the first stops, the file is free again. (Issue 5; a
// PostgreSQL database is shared by design.)
func TestSQLiteIsSingleInstance(t *testing.T) {
	dbURL := "sqlite:///" + filepath.Join(t.TempDir(), "mcpgate.db")
	first := startGateway(t, dbURL, nil)
	vars := map[string]string{"DATABASE_URL": dbURL, "AUTH_REQUIRED": "false", "MCPGATE_ENV_FILE": filepath.Join(t.TempDir(), "x.env")}
	_ = os.WriteFile(vars["MCPGATE_ENV_FILE"], nil, 0o600)
	cfg, err := config.Load(nil, func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), "test")
	if err == nil {
		second.Close()
		t.Fatal("a second gateway started on the same SQLite database")
	}
	for _, want := range []string{"DATABASE_URL", fmt.Sprintf("pid %d", os.Getpid()), "PostgreSQL", "REDIS_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	first.stop()
	third, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatalf("after the first gateway stopped, the database is still refused: %v", err)
	}
	third.Close()
}

// TestMetrics: the decision counter appears with its labels.
func TestMetrics(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), map[string]string{"DEFAULT_PASSTHROUGH_HEADERS": "X-Tenant-Id", "PASSTHROUGH_HEADERS_SOURCE": "env"})
		gw.register(map[string]any{"name": "crm", "url": up.URL})
		gw.call("tools/call", map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}, "X-Tenant-Id", "acme")
		_, out := gw.do("GET", "/metrics", nil)
		// The client's upstream session's own requests (its initialize,
		// its listening stream) forward the header too (spec §5): one
		// decision each, besides the call's.
		if !regexp.MustCompile(`mcpgate_passthrough_decisions_total\{action="forwarded",header="X-Tenant-Id",reason="allowlisted",upstream="crm"\} [1-9]`).Match(out) {
			t.Errorf("metrics lack forwarding decisions for X-Tenant-Id")
		}
		for _, want := range []string{
			`mcpgate_requests_total{method="tools/call",outcome="ok",upstream="crm"} 1`,
			`mcpgate_upstream_request_duration_seconds_count{method="tools/call",upstream="crm"} 1`,
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestUnreachableUpstreamIsRegisteredUnavailable: registration succeeds,
// says that the upstream cannot be reached (only that: the cause is in the
// log), and calls to it fail naming it.
func TestUnreachableUpstreamIsRegisteredUnavailable(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadURL := "http://" + ln.Addr().String() + "/mcp"
		ln.Close() // nothing listens there now
		up := mcptest.NewStreamableHTTP(t)
		gw := startGateway(t, dbURL(t), nil)
		status, out := gw.do("POST", "/gateways", map[string]any{"name": "gone", "url": deadURL})
		if status != http.StatusCreated || !strings.Contains(string(out), `"status":"unavailable"`) || !strings.Contains(string(out), `"status_reason":"not reachable`) {
			t.Fatalf("register unreachable: %d %s", status, out)
		}
		gw.register(map[string]any{"name": "fine", "url": up.URL})
		if res := gw.call("tools/call", map[string]any{"name": "fine-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Errorf("the reachable upstream failed: %s", res.Error.Message)
		}
		if status, out := gw.do("GET", "/gateways", nil); status != 200 || !strings.Contains(string(out), `"name":"gone"`) {
			t.Errorf("list: %d %s", status, out)
		}
	})
}

// TestDNSRebindingProtection: on a loopback listener a Host or Origin that
// is not a loopback name (or in ALLOWED_HOSTS) is refused with 403 naming
// it, before authentication.
func TestDNSRebindingProtection(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		gw := startGateway(t, dbURL(t), map[string]string{"ALLOWED_HOSTS": "gw.internal"})
		port := strings.TrimPrefix(gw.url, "http://127.0.0.1:")
		for _, tc := range []struct {
			host, origin string
			want         int
			proto        string // X-Forwarded-Proto, set by a TLS proxy
		}{
			{"127.0.0.1:" + port, "", http.StatusOK, ""},
			{"localhost:" + port, "http://localhost:" + port, http.StatusOK, ""},
			{"[::1]:" + port, "", http.StatusOK, ""},
			{"gw.internal:" + port, "http://gw.internal:" + port, http.StatusOK, ""},
			{"gw.internal", "https://gw.internal", http.StatusOK, "https"}, // behind a TLS proxy keeping the Host
			// The whole origin counts: another port or scheme of an
			// allowed host is another origin.
			{"localhost:" + port, "http://localhost:3000", http.StatusForbidden, ""},
			{"gw.internal:" + port, "https://gw.internal", http.StatusForbidden, ""},
			{"gw.internal", "https://gw.internal", http.StatusForbidden, ""}, // no proxy said https
			{"localhost:" + port, "https://localhost:" + port, http.StatusForbidden, ""},
			{"evil.example:" + port, "", http.StatusForbidden, ""},
			{"evil.example", "", http.StatusForbidden, ""},
			{"127.0.0.1:" + port, "http://evil.example", http.StatusForbidden, ""},
			{"127.0.0.1:" + port, "null", http.StatusForbidden, ""},
		} {
			req, _ := http.NewRequest("GET", gw.url+"/health", nil)
			req.Host = tc.host
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q Origin %q: %d %s, want %d", tc.host, tc.origin, resp.StatusCode, body, tc.want)
			}
			if tc.want == http.StatusForbidden && !strings.Contains(body, "ALLOWED_HOSTS") {
				t.Errorf("Host %q Origin %q: the refusal %s does not say how to allow it", tc.host, tc.origin, body)
			}
		}
	})
}
