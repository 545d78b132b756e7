package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/passthrough"
)

// These tests check the bounds mcpgate puts on what clients and
// administrators send: allowlist sizes, credentials, request bodies.

// headerNames returns n distinct valid header names.
func headerNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("X-Name-%d", i)
	}
	return names
}

// send sends a request with the client token, the body as it is and only
// the headers given (no Content-Type unless given), and returns status and
// body.
func (r *running) send(method, path, body string, headers ...string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestAllowlistsAreBounded: an upstream's passthrough_headers and the
// global list hold at most MaxAllowlistNames names of at most MaxNameLength
// bytes; beyond, the admin API answers 422 naming the field and the limit.
func TestAllowlistsAreBounded(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	long := strings.Repeat("X", passthrough.MaxNameLength+1)
	tooMany := headerNames(passthrough.MaxAllowlistNames + 1)
	for _, c := range []struct {
		name, method, path string
		body               map[string]any
		field, limit       string
	}{
		{"upstream list too long", "POST", "/gateways", map[string]any{"name": "a", "url": up.URL, "passthrough_headers": tooMany}, `"passthrough_headers"`, "at most 100"},
		{"upstream name too long", "POST", "/gateways", map[string]any{"name": "b", "url": up.URL, "passthrough_headers": []string{"X-Ok", long}}, `"passthrough_headers[1]"`, "at most 256 bytes"},
		{"upstream list as a comma string", "POST", "/gateways", map[string]any{"name": "c", "url": up.URL, "passthrough_headers": strings.Join(tooMany, ",")}, `"passthrough_headers"`, "at most 100"},
		{"global list too long", "PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": tooMany}, `"passthrough_headers"`, "at most 100"},
		{"global name too long", "PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": []string{long}}, `"passthrough_headers[0]"`, "at most 256 bytes"},
	} {
		status, out := gw.do(c.method, c.path, c.body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), c.field) || !strings.Contains(string(out), c.limit) {
			t.Errorf("%s: %d %.300s; want 422 naming %s and %q", c.name, status, out, c.field, c.limit)
		}
	}
	// The limits themselves are allowed.
	atLimit := headerNames(passthrough.MaxAllowlistNames)
	atLimit[0] = "X-" + strings.Repeat("L", passthrough.MaxNameLength-2)
	id := gw.register(map[string]any{"name": "crm", "url": up.URL, "passthrough_headers": atLimit})
	if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": tooMany}); status != http.StatusUnprocessableEntity || !strings.Contains(string(out), "at most 100") {
		t.Errorf("PUT /gateways/{id} with %d names: %d %.300s; want 422", len(tooMany), status, out)
	}
	setGlobalList(t, gw, atLimit...)
}

// syncBuffer is a log destination safe for the gateway's goroutines.
type syncBuffer struct{ testenv.LogBuffer }

func (b *syncBuffer) count(s string) int { return strings.Count(b.String(), s) }

// TestMisconfiguredAllowlistLoggedOncePerChange: never-forwarded names in
// an allowlist are warned about once when the list takes effect, and again
// only when it changes, not on every call.
func TestMisconfiguredAllowlistLoggedOncePerChange(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	var log syncBuffer
	gw := startGatewayWith(t, sqliteURL(t), nil, gatewayOptions{logger: slog.New(slog.NewJSONHandler(&log, nil))})
	id := gw.register(map[string]any{"name": "crm", "url": up.URL, "passthrough_headers": []string{"X-Tenant-Id", "Content-Length", "Mcp-Session-Id"}})
	gw.register(map[string]any{"name": "other", "url": up.URL}) // inherits the global list
	call := func(tool string, times int) {
		t.Helper()
		for range times {
			if res := gw.call("tools/call", map[string]any{"name": tool, "arguments": map[string]any{"text": "x"}}, "X-Tenant-Id", "acme"); res.Error != nil {
				t.Fatalf("%s: %+v", tool, res.Error)
			}
		}
	}
	contentLength := "protocol-level header 'Content-Length'"
	sessionID := "MCP per-hop header 'Mcp-Session-Id'"
	call("crm-echo", 5)
	if n, m := log.count(contentLength), log.count(sessionID); n != 1 || m != 1 {
		t.Errorf("after 5 calls: Content-Length warned %d times, Mcp-Session-Id %d; want once each", n, m)
	}
	if got := upstreamSaw(t, up, "tools/call").Get("X-Tenant-Id"); got != "acme" {
		t.Errorf("X-Tenant-Id upstream = %q, want acme", got)
	}

	// A changed list is warned about once; the old one is not repeated.
	if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": []string{"Host"}}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, out)
	}
	call("crm-echo", 3)
	if n, h := log.count(contentLength), log.count("protocol-level header 'Host'"); n != 1 || h != 1 {
		t.Errorf("after the change: Content-Length warned %d times (want 1), Host %d (want 1)", n, h)
	}
	// Back to a list warned about before: that is a change too.
	if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"passthrough_headers": []string{"Content-Length"}}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, out)
	}
	call("crm-echo", 3)
	if n := log.count(contentLength); n != 2 {
		t.Errorf("after changing back: Content-Length warned %d times in all, want 2", n)
	}

	// The global list, used by an inheriting upstream, likewise.
	setGlobalList(t, gw, "Upgrade", "X-Tenant-Id")
	call("other-echo", 4)
	if n := log.count("protocol-level header 'Upgrade'"); n != 1 {
		t.Errorf("global list: Upgrade warned %d times over 4 calls, want 1", n)
	}
}

// TestBasicCredentialsRefuseControlCharacters: a basic user-id or password,
// a bearer token and a static header with CR, LF or NUL are refused with
// 422 naming the field.
func TestBasicCredentialsRefuseControlCharacters(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	for i, c := range []struct {
		fields map[string]any
		field  string
	}{
		{map[string]any{"auth_type": "basic", "auth_username": "u\r\nX-Injected", "auth_password": "p"}, "auth_username"},
		{map[string]any{"auth_type": "basic", "auth_username": "u\n", "auth_password": "p"}, "auth_username"},
		{map[string]any{"auth_type": "basic", "auth_username": "u", "auth_password": "p\x00w"}, "auth_password"},
		{map[string]any{"auth_type": "basic", "auth_username": "u", "auth_password": "p\r\nX-Injected: 1"}, "auth_password"},
		{map[string]any{"auth_type": "bearer", "auth_token": "t\r\nX-Injected: 1"}, "auth_token"},
		{map[string]any{"auth_type": "bearer", "auth_token": "t\x00"}, "auth_token"},
		{map[string]any{"auth_type": "authheaders", "auth_headers": []map[string]string{{"key": "X-Api-Key", "value": "v\r\nX-Injected: 1"}}}, "auth_headers[0].value"},
		{map[string]any{"auth_type": "authheaders", "auth_headers": []map[string]string{{"key": "X-Api\r\nKey", "value": "v"}}}, "auth_headers[0].key"},
	} {
		body := map[string]any{"name": fmt.Sprintf("case-%d", i), "url": up.URL}
		for k, v := range c.fields {
			body[k] = v
		}
		status, out := gw.do("POST", "/gateways", body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"`+c.field+`"`) {
			t.Errorf("%q: %d %s; want 422 naming %s", c.fields, status, out, c.field)
		}
	}
	// And on update.
	id := gw.register(map[string]any{"name": "crm", "url": up.URL, "auth_type": "basic", "auth_username": "u", "auth_password": "p"})
	if status, out := gw.do("PUT", "/gateways/"+id, map[string]any{"auth_username": "u\r\n"}); status != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"auth_username"`) {
		t.Errorf("PUT with a CRLF username: %d %s; want 422 naming auth_username", status, out)
	}
}

// TestGlobalListRefusesUnknownFields: PUT of the global list refuses a
// field it does not know, by name, as /gateways does, and changes nothing.
func TestGlobalListRefusesUnknownFields(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), nil)
	setGlobalList(t, gw, "X-Tenant-Id")
	status, out := gw.do("PUT", "/admin/config/passthrough-headers", map[string]any{"passthrough_headers": []string{"X-Other"}, "pasthrough_headers": []string{"X-Typo"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"pasthrough_headers"`) || !strings.Contains(string(out), "unknown field") {
		t.Errorf("unknown field: %d %s; want 422 naming pasthrough_headers", status, out)
	}
	if _, out := gw.do("GET", "/admin/config/passthrough-headers", nil); !strings.Contains(string(out), `["X-Tenant-Id"]`) {
		t.Errorf("the refused PUT changed the list: %s", out)
	}
}

// rawRequest writes head and then part of a body on a raw connection, and
// returns the response mcpgate answers with within wait, or fails.
func rawRequest(t *testing.T, gw *running, head, partialBody string, wait time.Duration) (*http.Response, *bufio.Reader, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+"\r\n"+partialBody); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body within %s: %v", wait, err)
	}
	return resp, br, conn
}

// TestTrickledBodyTimesOut: a request body that does not arrive within
// REQUEST_BODY_TIMEOUT gets 408 and its connection closed, on the MCP
// endpoints and the admin API; calls whose answers take longer than that,
// and streams, are not affected.
func TestTrickledBodyTimesOut(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), map[string]string{"REQUEST_BODY_TIMEOUT": "300ms"})
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	host := strings.TrimPrefix(gw.url, "http://")
	for _, path := range []string{"/rpc", "/mcp", "/gateways", "/admin/config/passthrough-headers"} {
		method := "POST"
		if strings.HasPrefix(path, "/admin") {
			method = "PUT"
		}
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
			"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n", method, path, host, gw.token)
		start := time.Now()
		resp, br, _ := rawRequest(t, gw, head, `{"jsonrpc":"2.0",`, 10*time.Second)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "did not arrive in time") {
			t.Errorf("%s %s with a trickled body: %d %s; want 408", method, path, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: answered after %s", path, d)
		}
		// The connection is closed: the rest of the body is not waited for.
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("%s: the connection stays open after the 408", path)
		}
	}
	// Answers that take longer than the body deadline still arrive, over
	// /rpc and over streams (the GET of /sse, the WebSocket).
	slow := map[string]any{"name": "crm-slow", "arguments": map[string]any{"ms": 250, "steps": 3}}
	if res := gw.call("tools/call", slow); res.Error != nil {
		t.Errorf("/rpc call longer than the body deadline: %+v", res.Error)
	}
	sessions := map[string]*mcp.ClientSession{}
	for _, tr := range sessionTransports() {
		sessions[tr.name] = tr.connect(t, gw, nil, nil)
	}
	// Streamable HTTP, whose answer to a call with progress is an event
	// stream on the POST.
	sessions["mcp"] = connectSDK(t, &mcp.StreamableClientTransport{Endpoint: gw.url + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{gw.token}}}, nil)
	for name, session := range sessions {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		params := &mcp.CallToolParams{Name: "crm-slow", Arguments: slow["arguments"]}
		params.SetProgressToken("p1")
		res, err := session.CallTool(ctx, params)
		cancel()
		if err != nil || res.IsError {
			t.Errorf("%s: call longer than the body deadline: %v %+v", name, err, res)
		}
	}
}

// TestMCPEndpointsRefuseFormBodies: the MCP endpoints refuse bodies
// declared as text or a form — what a browser page can post across origins
// without a preflight — with 415, and still take a body with no
// Content-Type, as some existing clients send.
func TestMCPEndpointsRefuseFormBodies(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	gw.register(map[string]any{"name": "crm", "url": up.URL})
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	accept := "application/json, text/event-stream"
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		for path, body := range map[string]string{"/rpc": ping, "/mcp": initialize} {
			status, out := gw.send("POST", path, body, "Content-Type", ct, "Accept", accept)
			if status != http.StatusUnsupportedMediaType || !strings.Contains(out, "application/json") {
				t.Errorf("POST %s as %s: %d %s; want 415 saying application/json", path, ct, status, out)
			}
		}
	}
	for path, body := range map[string]string{"/rpc": ping, "/mcp": initialize} {
		if status, out := gw.send("POST", path, body, "Accept", accept); status != http.StatusOK {
			t.Errorf("POST %s without Content-Type: %d %s; want 200", path, status, out)
		}
		if status, out := gw.send("POST", path, body, "Content-Type", "application/json; charset=utf-8", "Accept", accept); status != http.StatusOK {
			t.Errorf("POST %s as JSON with a charset: %d %s; want 200", path, status, out)
		}
	}
}

// TestAdminWritesNeedJSON: admin writes with a body other than
// application/json (parameters allowed) get 415 and change nothing.
func TestAdminWritesNeedJSON(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	reg, _ := json.Marshal(map[string]any{"name": "crm", "url": up.URL})
	for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		headers := []string{}
		if ct != "" {
			headers = append(headers, "Content-Type", ct)
		}
		status, out := gw.send("POST", "/gateways", string(reg), headers...)
		if status != http.StatusUnsupportedMediaType || !strings.Contains(out, "application/json") {
			t.Errorf("POST /gateways as %q: %d %s; want 415 saying application/json", ct, status, out)
		}
		if status, out := gw.send("PUT", "/admin/config/passthrough-headers", `{"passthrough_headers":["X-A"]}`, headers...); status != http.StatusUnsupportedMediaType {
			t.Errorf("PUT global list as %q: %d %s; want 415", ct, status, out)
		}
	}
	if _, out := gw.do("GET", "/gateways", nil); strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("refused writes registered upstreams: %s", out)
	}
	status, out := gw.send("POST", "/gateways", string(reg), "Content-Type", "application/json; charset=utf-8")
	if status != http.StatusCreated {
		t.Fatalf("POST /gateways as JSON with a charset: %d %s", status, out)
	}
	var v struct{ ID string }
	_ = json.Unmarshal([]byte(out), &v)
	if status, out := gw.send("PUT", "/gateways/"+v.ID, `{"enabled":false}`, "Content-Type", "text/plain"); status != http.StatusUnsupportedMediaType {
		t.Errorf("PUT /gateways/{id} as text/plain: %d %s; want 415", status, out)
	}
}
