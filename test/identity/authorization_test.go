package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/test/internal/everything"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
	"github.com/mcpgate/mcpgate/test/internal/oidcprovider"
)

// The provider's clients: agent may get the scope the MCP endpoints
// require, narrow may not.
var (
	agent  = oidcprovider.Client{ID: "agent", Secret: "agent-secret-for-tests-only", Scope: "mcp:tools"}
	narrow = oidcprovider.Client{ID: "narrow", Secret: "narrow-secret-for-tests-only", Scope: "mcp:read"}
)

const requiredScope = "mcp:tools"

// deployment is mcpgate behind a real identity provider, with one upstream.
type deployment struct {
	gw       *gatewaytest.Gateway
	idp      *oidcprovider.Provider
	up       *mcptest.Server
	upID     string
	resource string // MCP_RESOURCE_URL: http://127.0.0.1:PORT
}

// deploy starts the provider, then mcpgate on database ("sqlite" or
// "postgres") as a protected resource whose authorization server is the
// provider, verifying its tokens with the keys its discovery document
// names, and registers one upstream.
func deploy(t *testing.T, database string) *deployment {
	t.Helper()
	idp := oidcprovider.Start(t, agent, narrow)
	port := strconv.Itoa(testenv.FreePort(t))
	d := &deployment{idp: idp, resource: "http://127.0.0.1:" + port}
	settings := gatewaytest.Settings(t)
	for k, v := range map[string]string{
		"PORT":                        port,
		"MCP_RESOURCE_URL":            d.resource,
		"OAUTH_AUTHORIZATION_SERVERS": idp.Issuer,
		"MCP_REQUIRED_SCOPES":         requiredScope,
		"JWT_ALGORITHM":               "RS256",
		"JWT_ISSUER":                  idp.Issuer,
		"JWT_OIDC_DISCOVERY":          "true",
	} {
		settings[k] = v
	}
	if database == "postgres" {
		settings["DATABASE_URL"] = testenv.PostgresDatabase(t, "mcpgate_identity")
	}
	d.gw = gatewaytest.Start(t, mcpgateBinary, settings)
	if d.gw.URL != d.resource {
		t.Fatalf("mcpgate listens at %s, want %s", d.gw.URL, d.resource)
	}
	// The administrator's token is mcpgate's own, for this resource too, as
	// `mcpgate token --admin` mints it under MCP_RESOURCE_URL.
	d.gw.Token = adminToken(t, d.resource)
	d.up = mcptest.NewStreamableHTTP(t)
	d.upID = d.gw.Register(t, map[string]any{"name": "tools", "url": d.up.URL}).ID
	return d
}

// TestMCPAuthorizationWithARealProvider runs the MCP authorization flow
// end to end, on SQLite and on PostgreSQL: a real MCP client discovers from
// mcpgate's 401 where to get a token and calls a tool with it; tokens for
// another resource and tokens without the required scope are refused; and
// a key rotation at the provider is picked up by the running mcpgate.
func TestMCPAuthorizationWithARealProvider(t *testing.T) {
	for _, database := range []string{"sqlite", "postgres"} {
		t.Run(database, func(t *testing.T) {
			d := deploy(t, database)
			// In order: the rotation changes the provider's keys.
			t.Run("a real MCP client discovers authorization and calls a tool", d.testClientFlow)
			t.Run("the same through the relay, whose resource is its own", d.testClientFlowOnTheRelay)
			t.Run("the same over legacy SSE", d.testClientFlowOverSSE)
			t.Run("a token for another resource is refused", d.testAudience)
			t.Run("a token without the required scope gets 403", d.testInsufficientScope)
			t.Run("a key rotation at the provider is picked up without restart", d.testKeyRotation)
		})
	}
}

// testClientFlow: the TypeScript SDK's client, with nothing but mcpgate's
// URL and its client credentials, gets mcpgate's 401, reads the
// protected-resource metadata it points at, gets a token from the provider
// the metadata names for mcpgate's /mcp resource (RFC 8707), and calls a
// tool of the upstream; the upstream never sees that token.
func (d *deployment) testClientFlow(t *testing.T) {
	out := d.flow(t, "streamable", "/mcp", "tools-echo")
	if !slices.Contains(out.Tools, "tools-echo") {
		t.Errorf("tools/list = %v, want tools-echo among them", out.Tools)
	}
	if c := out.Token; c["iss"] != d.idp.Issuer || !slices.Contains(strings.Fields(fmt.Sprint(c["scope"])), requiredScope) {
		t.Errorf("the client's token has claims %v, want iss %s and scope %s", c, d.idp.Issuer, requiredScope)
	}
	// mcpgate never forwards the client's token upstream.
	for _, r := range d.up.Requests() {
		for name, values := range r.Header {
			for _, v := range values {
				if out.RawToken != "" && strings.Contains(v, out.RawToken) {
					t.Errorf("the upstream received the client's token in %s (%s %s)", name, r.Method, r.JSONRPCMethod)
				}
			}
		}
	}
	if h := d.up.LastHeader("tools/call"); h == nil || h.Get("Authorization") != "" {
		t.Errorf("the upstream's tools/call had Authorization %q (or no tools/call arrived)", h.Get("Authorization"))
	}
}

// testClientFlowOnTheRelay: the relay endpoint /gateways/{id}/mcp is a
// resource of its own: the client follows its 401 to its metadata, gets a
// token for it, and calls the upstream's tool under its own name.
func (d *deployment) testClientFlowOnTheRelay(t *testing.T) {
	d.flow(t, "streamable", "/gateways/"+d.upID+"/mcp", "echo")
}

// testClientFlowOverSSE: legacy HTTP+SSE's GET /sse gets the same 401,
// naming /sse's metadata, and its calls work with the token got for it.
func (d *deployment) testClientFlowOverSSE(t *testing.T) {
	d.flow(t, "sse", "/sse", "tools-echo")
}

// flow runs the client over transport against the endpoint at path, calling tool (an
// echo), and checks what every run of the flow must show: the answer, the
// steps in order — the refused request, the metadata that 401 named, the
// provider's token endpoint, the retry — and a token for that endpoint's
// resource.
func (d *deployment) flow(t *testing.T, transport, path, tool string) clientOutput {
	t.Helper()
	endpoint := d.resource + path
	text := "through " + path
	out := runClient(t, map[string]any{"transport": transport, "url": endpoint, "client_id": agent.ID, "client_secret": agent.Secret, "scope": requiredScope,
		"tool": tool, "arguments": map[string]any{"text": text}})
	if !out.OK {
		t.Fatalf("the MCP client failed on %s: %s\nits HTTP exchanges: %v\nits stderr: %s", path, out.Error, out.Seen, out.Stderr)
	}
	if len(out.Result.Content) != 1 || out.Result.Content[0].Text != text {
		t.Errorf("%s on %s answered %+v", tool, path, out.Result)
	}
	open := map[string]string{"streamable": "POST ", "sse": "GET "}[transport] // the request that opens a session
	steps := []string{
		open + endpoint + " 401",
		"GET " + d.resource + "/.well-known/oauth-protected-resource" + path + " 200",
		"POST " + d.idp.Issuer + "/token 200",
		open + endpoint + " 200",
	}
	if !inOrder(out.Seen, steps) {
		t.Errorf("the client's HTTP exchanges %v do not show, in order, %v", out.Seen, steps)
	}
	if out.Token["aud"] != endpoint {
		t.Errorf("the client's token is for %v, want %s", out.Token["aud"], endpoint)
	}
	return out
}

// testAudience: a token the trusted provider issued for another resource is
// refused with 401 invalid_token (RFC 8707; MCP authorization, "Token
// Audience Binding and Validation"); tokens for mcpgate's resources pass,
// the relay's own included.
func (d *deployment) testAudience(t *testing.T) {
	for _, other := range []string{"https://other.example.com/mcp", "http://127.0.0.1:1/mcp", strings.Replace(d.resource, "127.0.0.1", "localhost", 1) + "/mcp"} {
		resp := initialize(t, d.resource+"/mcp", d.idp.Token(t, agent, requiredScope, other))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a token for %s: %d, want 401", other, resp.StatusCode)
			continue
		}
		if p := testenv.BearerChallenge(t, resp.Header); p["error"] != "invalid_token" || p["resource_metadata"] != d.resource+"/.well-known/oauth-protected-resource/mcp" {
			t.Errorf("a token for %s: challenge %v, want invalid_token and /mcp's metadata", other, p)
		}
	}
	for _, path := range []string{"/mcp", "/gateways/" + d.upID + "/mcp"} {
		if resp := initialize(t, d.resource+path, d.idp.Token(t, agent, requiredScope, d.resource+path)); resp.StatusCode != http.StatusOK {
			t.Errorf("a token for %s%s on it: %d, want 200", d.resource, path, resp.StatusCode)
		}
	}
}

// testInsufficientScope: a valid token for mcpgate without MCP_REQUIRED_SCOPES
// gets 403 with the insufficient_scope challenge naming the scope and the
// metadata (RFC 6750 §3.1; MCP authorization, "Scope Challenge Handling").
func (d *deployment) testInsufficientScope(t *testing.T) {
	resp := initialize(t, d.resource+"/mcp", d.idp.Token(t, narrow, "mcp:read", d.resource+"/mcp"))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a token with scope mcp:read only: %d, want 403", resp.StatusCode)
	}
	p := testenv.BearerChallenge(t, resp.Header)
	if p["error"] != "insufficient_scope" || p["scope"] != requiredScope || p["resource_metadata"] != d.resource+"/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("challenge %v, want insufficient_scope, scope %s and /mcp's metadata", p, requiredScope)
	}
}

// testKeyRotation: after the provider starts signing with a new key, its
// new tokens are accepted by the mcpgate that was running all along, and a
// token signed with the previous key, still published, is too.
func (d *deployment) testKeyRotation(t *testing.T) {
	before := d.idp.Token(t, agent, requiredScope, d.resource+"/mcp")
	if resp := initialize(t, d.resource+"/mcp", before); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the rotation: %d", resp.StatusCode)
	}
	kid := d.idp.RotateKeys(t)
	after := d.idp.Token(t, agent, requiredScope, d.resource+"/mcp")
	if !strings.Contains(header(t, after), kid) {
		t.Fatalf("the provider's new token is not signed with the new key %s", kid)
	}
	if resp := initialize(t, d.resource+"/mcp", after); resp.StatusCode != http.StatusOK {
		t.Errorf("a token signed with the provider's new key: %d, want 200 without restarting mcpgate; its log:\n%s", resp.StatusCode, d.gw.Tail(20))
	}
	if resp := initialize(t, d.resource+"/mcp", before); resp.StatusCode != http.StatusOK {
		t.Errorf("a token signed with the previous key, still in the provider's JWKS: %d, want 200", resp.StatusCode)
	}
}

// clientOutput is what client.mjs prints.
type clientOutput struct {
	OK     bool     `json:"ok"`
	Error  string   `json:"error"`
	Tools  []string `json:"tools"`
	Result struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Token    map[string]any `json:"token"`
	RawToken string         `json:"raw_token"`
	Seen     []string       `json:"seen"`
	Stderr   string         `json:"-"`
}

// runClient runs client.mjs with config (plus the SDK's folder).
func runClient(t *testing.T, config map[string]any) clientOutput {
	t.Helper()
	node, sdk := everything.Node(t), everything.TSSDK(t)
	config["sdk"] = sdk
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, "client.mjs", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client.mjs did not run: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var out clientOutput
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &out); err != nil {
		t.Fatalf("client.mjs printed %q: %v (stderr %s)", stdout.String(), err, stderr.String())
	}
	out.Stderr = stderr.String()
	return out
}

// initialize POSTs an MCP initialize request with token and returns the
// response, its body read.
func initialize(t *testing.T, url, token string) *http.Response {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"identity-test","version":"1"}}}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: gatewaytest.RequestTimeout}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp
}

// header returns a JWS's decoded protected header.
func header(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64URL(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	return string(b)
}

// inOrder reports whether want appears in seen as a subsequence.
func inOrder(seen, want []string) bool {
	i := 0
	for _, s := range seen {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// adminToken mints a token with the harness's secret and the admin scope
// for audience.
func adminToken(t *testing.T, audience string) string {
	t.Helper()
	j, err := auth.NewJWT([]byte(gatewaytest.JWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	token, err := j.MintWith("identity-test-admin", time.Hour, time.Now(), auth.MintOptions{Scopes: []string{config.DefaultJWTAdminScope}, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return token
}
