package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/assertion"
	"github.com/mcpgate/mcpgate/internal/testenv"
	"github.com/mcpgate/mcpgate/test/internal/gatewaytest"
)

// ttl is IDENTITY_ASSERTION_TTL in these tests: short, so that a rotated
// key leaves the JWKS within the test.
const ttl = 2 * time.Second

// received is one request an upstream received: its assertion and what
// the verifier said of it.
type received struct {
	raw    string // the assertion header, "" when absent
	header http.Header
	body   []byte
	claims *assertion.Claims
	err    error
}

// upstream is a go-sdk MCP server with one tool, whoami, that answers the
// X-Tenant-Id it received; with a verifier, behind the public verifier's
// middleware.
type upstream struct {
	url      string // as registered at mcpgate: the audience
	verifier *assertion.Verifier
	skew     atomic.Int64 // added to the verifier's clock, in nanoseconds

	mu   sync.Mutex
	seen []received
}

// startUpstream starts an upstream; verify puts the verifier in front of
// it, for mcpgate's JWKS at jwksURL; tamper puts a reverse proxy between
// mcpgate and it that changes X-Tenant-Id to "evil" (the registered URL is
// then the proxy's).
func startUpstream(t *testing.T, jwksURL string, verify, tamper bool) *upstream {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "asserted", Version: "test"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "Answers the tenant header it received."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "tenant=" + req.Extra.Header.Get("X-Tenant-Id")}}}, nil, nil
		})
	ln := listen(t)
	u := &upstream{url: "http://" + ln.Addr().String() + "/mcp"}
	var front net.Listener
	if tamper {
		front = listen(t)
		u.url = "http://" + front.Addr().String() + "/mcp"
	}
	var handler http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	if verify {
		v, err := assertion.NewVerifier(assertion.Config{JWKSURL: jwksURL, Audience: u.url, RefreshInterval: time.Millisecond,
			Now: func() time.Time { return time.Now().Add(time.Duration(u.skew.Load())) }})
		if err != nil {
			t.Fatal(err)
		}
		u.verifier = v
		handler = v.Middleware(handler)
	}
	serve(t, ln, u.record(handler))
	if tamper {
		target, _ := url.Parse("http://" + ln.Addr().String())
		proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			if r.Out.Header.Get("X-Tenant-Id") != "" {
				r.Out.Header.Set("X-Tenant-Id", "evil")
			}
		}}
		serve(t, front, proxy)
	}
	return u
}

// record notes every request before next serves it.
func (u *upstream) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readAll(r)
		rec := received{raw: r.Header.Get(assertion.DefaultHeader), header: r.Header.Clone(), body: body}
		if u.verifier != nil {
			rec.claims, rec.err = u.verifier.Verify(r)
		}
		u.mu.Lock()
		u.seen = append(u.seen, rec)
		u.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	r.Body.Close()
	r.Body = readCloser{bytes.NewReader(b.Bytes())}
	return b.Bytes(), err
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// received returns what the upstream has received so far.
func (u *upstream) received() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// lastCall is the last tools/call the upstream received whose assertion
// verified; it fails the test when there is none.
func (u *upstream) lastCall(t *testing.T) received {
	t.Helper()
	seen := u.received()
	for i := len(seen) - 1; i >= 0; i-- {
		if seen[i].err == nil && seen[i].claims != nil && seen[i].claims.Method == "tools/call" {
			return seen[i]
		}
	}
	t.Fatalf("no verified tools/call among the %d requests the upstream received: %s", len(seen), describe(seen))
	return received{}
}

func describe(seen []received) string {
	var b strings.Builder
	for _, s := range seen {
		method := ""
		if s.claims != nil {
			method = s.claims.Method
		}
		fmt.Fprintf(&b, "\n  assertion=%t method=%q err=%v body=%.80s", s.raw != "", method, s.err, s.body)
	}
	return b.String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
}

// clientHeaders adds a client's own headers to every request of a go-sdk
// client: a tenant, and an identity assertion of its own, which must
// never reach an upstream.
type clientHeaders struct{ next http.RoundTripper }

const forged = "forged.by.the-client"

func (c clientHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Tenant-Id", "acme")
	r.Header.Set(assertion.DefaultHeader, forged)
	return c.next.RoundTrip(r)
}

// connect opens a go-sdk client session on path: legacy SSE for /sse,
// else Streamable HTTP.
func connect(t *testing.T, g *gatewaytest.Gateway, path string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "identity-test", Version: "test"}, nil)
	hc := g.HTTPClient()
	hc.Transport = clientHeaders{hc.Transport}
	var transport mcp.Transport = &mcp.StreamableClientTransport{Endpoint: g.URL + path, HTTPClient: hc, MaxRetries: -1}
	if path == "/sse" {
		transport = &mcp.SSEClientTransport{Endpoint: g.URL + path, HTTPClient: hc}
	}
	s, err := client.Connect(t.Context(), transport, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// call calls a tool and returns its text, or the error.
func call(t *testing.T, s *mcp.ClientSession, name string) (string, error) {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
	if err != nil {
		return "", err
	}
	var text string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text += tc.Text
		}
	}
	if res.IsError {
		return "", errors.New(text)
	}
	return text, nil
}

// kidOf is the kid of an assertion's JWS header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Kid string `json:"kid"`
	}
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil || h.Kid == "" {
		t.Fatalf("assertion header %q: no kid (%v)", head, err)
	}
	return h.Kid
}

// published are the kids mcpgate's JWKS lists now.
func published(t *testing.T, g *gatewaytest.Gateway) []string {
	t.Helper()
	status, body := g.Do(t, "GET", "/.well-known/jwks.json", nil)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Crv string `json:"crv"`
		} `json:"keys"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &set) != nil {
		t.Fatalf("GET /.well-known/jwks.json: %d %s", status, body)
	}
	var kids []string
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			t.Errorf("JWKS key %s is %s/%s, want OKP/Ed25519", k.Kid, k.Kty, k.Crv)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestAnUpstreamVerifiesWhoEachCallIsFor: an upstream built on the go-sdk
// behind the public verifier's middleware verifies every request mcpgate
// forwards to it — federation over /mcp and /sse, the 1:1 relay, and mcpgate's own
// discovery — with the client's identity and the digest of the headers the
// policy forwarded; a header changed on the way fails the digest, a
// replayed assertion fails once expired, an upstream without
// identity_assertion gets no assertion (not even the client's own), and a
// key rotation loses no call: assertions signed before and after it both
// verify, and the old key leaves the JWKS only after its assertions
// expired.
func TestAnUpstreamVerifiesWhoEachCallIsFor(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			extra := map[string]string{"IDENTITY_ASSERTION_TTL": ttl.String(), "IDENTITY_ASSERTION_KEY_LEAD": "1s",
				"IDENTITY_ASSERTION_KEY_ROTATION": "0"}
			if backend == "postgres" {
				extra["DATABASE_URL"] = testenv.PostgresDatabase(t, "identity")
			}
			g := gatewaytest.StartWith(t, mcpgateBinary, extra)
			testAssertions(t, g)
		})
	}
}

func testAssertions(t *testing.T, g *gatewaytest.Gateway) {
	jwks := g.URL + "/.well-known/jwks.json"
	direct := startUpstream(t, jwks, true, false)
	tampered := startUpstream(t, jwks, true, true)
	plain := startUpstream(t, "", false, false)
	// The client's own X-Mcpgate-Identity is allowlisted too: it must
	// still never be forwarded (spec §2.3, a header mcpgate sets itself).
	if status, body := g.Do(t, "PUT", "/admin/config/passthrough-headers",
		map[string]any{"passthrough_headers": []string{"X-Tenant-Id", assertion.DefaultHeader}}); status != http.StatusOK {
		t.Fatalf("PUT the global list: %d %s", status, body)
	}
	directID := g.Register(t, map[string]any{"name": "direct", "url": direct.url, "identity_assertion": true}).ID
	g.Register(t, map[string]any{"name": "tampered", "url": tampered.url, "identity_assertion": true})
	g.Register(t, map[string]any{"name": "plain", "url": plain.url})
	_, _, shown := g.Get(t, directID)
	if !bytes.Contains(shown, []byte(`"identity_assertion":true`)) {
		t.Fatalf("GET /gateways/%s does not show identity_assertion true: %s", directID, shown)
	}

	// Discovery, mcpgate's own requests, is signed too, for no client.
	for _, r := range direct.received() {
		if r.err != nil {
			t.Fatalf("the upstream refused a request of mcpgate's discovery: %v%s", r.err, describe(direct.received()))
		}
	}

	fed := connect(t, g, "/mcp")
	if text, err := call(t, fed, "direct-whoami"); err != nil || text != "tenant=acme" {
		t.Fatalf("direct-whoami through /mcp: %q %v%s", text, err, describe(direct.received()))
	}
	got := direct.lastCall(t)
	c := got.claims
	if c.Subject != "blackbox-test" || c.ClientIssuer != "mcpgate" || c.Identity() != (assertion.Identity{Issuer: "mcpgate", Subject: "blackbox-test"}) {
		t.Errorf("identity (%q, %q), want (mcpgate, blackbox-test)", c.ClientIssuer, c.Subject)
	}
	if c.Name != "whoami" || c.Audience != direct.url || c.UpstreamID != directID || c.Issuer != "mcpgate" || c.ID == "" {
		t.Errorf("claims name=%q aud=%q upstream_id=%q iss=%q jti=%q; want whoami, %s, %s, mcpgate, a jti", c.Name, c.Audience, c.UpstreamID, c.Issuer, c.ID, direct.url, directID)
	}
	if !slices.Equal(c.Headers, []string{"x-tenant-id"}) || c.HeaderDigest != assertion.HeaderDigest([]assertion.Header{{Name: "X-Tenant-Id", Value: "acme"}}) {
		t.Errorf("hdr %v hdr_sha256 %s, want [x-tenant-id] and the digest of X-Tenant-Id: acme", c.Headers, c.HeaderDigest)
	}
	if exp := c.ExpiresAt.Sub(c.IssuedAt.Time); exp != ttl {
		t.Errorf("exp - iat = %s, want IDENTITY_ASSERTION_TTL %s", exp, ttl)
	}
	for _, r := range direct.received() {
		if r.raw == forged {
			t.Error("the client's own X-Mcpgate-Identity reached the upstream")
		}
	}

	// The 1:1 relay: the upstream's own names, the same assertion.
	relay := connect(t, g, "/gateways/"+directID+"/mcp")
	if text, err := call(t, relay, "whoami"); err != nil || text != "tenant=acme" {
		t.Fatalf("whoami through the relay: %q %v%s", text, err, describe(direct.received()))
	}
	if rc := direct.lastCall(t).claims; rc.ID == c.ID || rc.Subject != "blackbox-test" || rc.Name != "whoami" {
		t.Errorf("relay call's claims: jti %q (first %q), sub %q, name %q", rc.ID, c.ID, rc.Subject, rc.Name)
	}

	// Legacy SSE: the call carries the headers of the opening GET (spec
	// §4), and the same assertion.
	sse := connect(t, g, "/sse")
	if text, err := call(t, sse, "direct-whoami"); err != nil || text != "tenant=acme" {
		t.Fatalf("direct-whoami through /sse: %q %v%s", text, err, describe(direct.received()))
	}
	if sc := direct.lastCall(t).claims; sc.Subject != "blackbox-test" || !slices.Equal(sc.Headers, []string{"x-tenant-id"}) {
		t.Errorf("/sse call's claims: sub %q, hdr %v", sc.Subject, sc.Headers)
	}

	// An upstream without identity_assertion gets none, not even the
	// client's.
	if text, err := call(t, fed, "plain-whoami"); err != nil || text != "tenant=acme" {
		t.Fatalf("plain-whoami: %q %v", text, err)
	}
	for _, r := range plain.received() {
		if vs := r.header.Values(assertion.DefaultHeader); len(vs) > 0 {
			t.Errorf("an upstream without identity_assertion received %s: %q", assertion.DefaultHeader, vs)
		}
	}

	// A proxy on the way changes X-Tenant-Id: the digest no longer matches,
	// and the call does not run.
	if text, err := call(t, fed, "tampered-whoami"); err == nil {
		t.Errorf("tampered-whoami answered %q; want a failure: the upstream refuses the changed header", text)
	}
	digestFailed := false
	for _, r := range tampered.received() {
		if errors.Is(r.err, assertion.ErrDigest) {
			digestFailed = true
		}
		if r.err == nil && r.claims.Method == "tools/call" {
			t.Errorf("a tools/call with the tampered header verified: %+v", r.claims)
		}
	}
	if !digestFailed {
		t.Errorf("no request reached the upstream behind the proxy failing the digest check:%s", describe(tampered.received()))
	}

	// Replayed after its TTL (the upstream's clock moved past it, rather
	// than waiting): refused as expired. Within it, the replay verifies:
	// the TTL is what bounds a replay.
	replay := func() (int, error) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", direct.url, bytes.NewReader(got.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = got.header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen := direct.received()
		return resp.StatusCode, seen[len(seen)-1].err
	}
	if _, err := replay(); err != nil {
		t.Errorf("replay within the TTL: %v, want it verified", err)
	}
	direct.skew.Store(int64(ttl + 6*time.Second)) // past exp and the verifier's 5 s leeway
	if status, err := replay(); status != http.StatusUnauthorized || !errors.Is(err, assertion.ErrExpired) {
		t.Errorf("replay after the TTL: HTTP %d, %v; want 401 and ErrExpired", status, err)
	}
	direct.skew.Store(0)

	// Rotation: a new key is published at once, signs after the lead, and
	// the old one stays published until its last assertion expired.
	oldKid := kidOf(t, got.raw)
	status, body := g.Do(t, "POST", "/admin/identity-assertion/keys/rotate", map[string]any{})
	var rotated struct {
		Kid       string    `json:"kid"`
		SignsFrom time.Time `json:"signs_from"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &rotated) != nil || rotated.Kid == "" || rotated.Kid == oldKid {
		t.Fatalf("POST /admin/identity-assertion/keys/rotate: %d %s", status, body)
	}
	if kids := published(t, g); !slices.Contains(kids, oldKid) || !slices.Contains(kids, rotated.Kid) {
		t.Fatalf("after the rotation the JWKS lists %v; want both %s and the new %s", kids, oldKid, rotated.Kid)
	}
	if _, err := call(t, fed, "direct-whoami"); err != nil {
		t.Fatalf("a call right after the rotation: %v", err)
	}
	if kid := kidOf(t, direct.lastCall(t).raw); kid != oldKid && time.Now().Before(rotated.SignsFrom) {
		t.Errorf("signed with %s before the new key's signs_from %s; want the old key %s", kid, rotated.SignsFrom, oldKid)
	}
	time.Sleep(time.Until(rotated.SignsFrom.Add(50 * time.Millisecond))) // the new key's time to sign: a point in time, not a signal
	if text, err := call(t, fed, "direct-whoami"); err != nil || text != "tenant=acme" {
		t.Fatalf("a call after the new key began to sign: %q %v%s", text, err, describe(direct.received()))
	}
	if kid := kidOf(t, direct.lastCall(t).raw); kid != rotated.Kid {
		t.Errorf("after signs_from the assertion is signed with %s, want the new key %s", kid, rotated.Kid)
	}
	if !slices.Contains(published(t, g), oldKid) {
		t.Errorf("the old key %s left the JWKS while assertions it signed may still be valid", oldKid)
	}
	deadline := rotated.SignsFrom.Add(ttl + 30*time.Second)
	for slices.Contains(published(t, g), oldKid) {
		if time.Now().After(deadline) {
			t.Fatalf("the old key %s is still published %s after the new one began to sign", oldKid, time.Since(rotated.SignsFrom))
		}
		time.Sleep(100 * time.Millisecond) // polling the JWKS: mcpgate's maintenance pass has no signal to wait for
	}
	if gone := time.Since(rotated.SignsFrom); gone < ttl {
		t.Errorf("the old key left the JWKS %s after the new one began to sign, before its last assertion expired (TTL %s)", gone, ttl)
	}
}
