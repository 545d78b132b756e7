package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/store"
)

// These tests check the egress policy (server-side request forgery) and
// that no credential hides in an upstream URL, end to end: registration
// through the admin API, connections over real sockets, and records left
// in the store by an earlier version.

// listener is a loopback TCP listener that counts the connections it
// accepts and does what serve says with each.
type listener struct {
	addr  string
	conns atomic.Int64
}

// listen starts a listener; serve gets every accepted connection and must
// close it.
func listen(t *testing.T, serve func(net.Conn)) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	l := &listener{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			go serve(c)
		}
	}()
	return l
}

func hangUp(c net.Conn) { c.Close() }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// storeUpstreams puts records in the database as an earlier mcpgate, with
// other settings, left them, before the gateway starts.
func storeUpstreams(t *testing.T, dbURL string, recs ...store.Upstream) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, rec := range recs {
		if rec.Transport == "" {
			rec.Transport = "STREAMABLEHTTP"
		}
		if rec.AuthType == "" {
			rec.AuthType = "none"
		}
		rec.Slug, rec.Enabled, rec.Status = rec.Name, true, "unavailable"
		if _, err := st.CreateUpstream(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
}

// upstreamView is what GET /gateways shows of one upstream.
type upstreamView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	URL    string `json:"url"`
	Status string `json:"status"`
	Reason string `json:"status_reason"`
}

// upstreams lists the registered upstreams by name, and the raw answer.
func (r *running) upstreams() (map[string]upstreamView, string) {
	r.t.Helper()
	status, out := r.do("GET", "/gateways", nil)
	if status != http.StatusOK {
		r.t.Fatalf("GET /gateways: %d %s", status, out)
	}
	var list []upstreamView
	if err := json.Unmarshal(out, &list); err != nil {
		r.t.Fatalf("GET /gateways: %v in %s", err, out)
	}
	byName := map[string]upstreamView{}
	for _, v := range list {
		byName[v.Name] = v
	}
	return byName, string(out)
}

// refusedField checks a 422 answer naming field, and returns its message.
func refusedField(t *testing.T, status int, out []byte, field string) string {
	t.Helper()
	var body struct {
		Detail []struct {
			Loc []string `json:"loc"`
			Msg string   `json:"msg"`
		} `json:"detail"`
	}
	_ = json.Unmarshal(out, &body)
	if status != http.StatusUnprocessableEntity || len(body.Detail) != 1 || strings.Join(body.Detail[0].Loc, ".") != "body."+field {
		t.Fatalf("got %d %s, want 422 naming %s", status, out, field)
	}
	return body.Detail[0].Msg
}

// TestForbiddenUpstreamHostsAreRefusedAtRegistration: link-local and cloud
// metadata addresses, in every spelling, and the metadata host names are
// refused with 422 naming the field, even where private addresses are
// allowed (a loopback listener, the default); nothing is stored.
func TestForbiddenUpstreamHostsAreRefusedAtRegistration(t *testing.T) {
	gw := startGateway(t, sqliteURL(t), nil)
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://2852039166/latest/meta-data/", // 169.254.169.254 in decimal
		"http://0xa9fea9fe/",
		"http://0251.0376.0251.0376/",
		"http://169.254.43518/",
		"http://[::ffff:169.254.169.254]/",
		"http://[::ffff:a9fe:a9fe]/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[fe80::1%25eth0]:8080/mcp",
		"http://[fd00:ec2::254]/",
		"http://100.100.100.200/latest/meta-data/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/",
		"http://metadata/computeMetadata/v1/",
	} {
		status, out := gw.do("POST", "/gateways", map[string]any{"name": "probe", "url": u})
		msg := refusedField(t, status, out, "url")
		if !strings.Contains(msg, "never connects") && !strings.Contains(msg, "metadata") {
			t.Errorf("%s: the refusal %q does not say why", u, msg)
		}
	}
	status, out := gw.do("POST", "/gateways", map[string]any{"name": "probe", "url": "http://" + closedPort(t) + "/mcp", "auth_type": "oauth",
		"oauth_config": map[string]any{"grant_type": "client_credentials", "token_url": "http://169.254.169.254/token",
			"client_id": "id", "client_secret": "client-secret-value"}})
	refusedField(t, status, out, "oauth_config.token_url")
	if list, raw := gw.upstreams(); len(list) != 0 {
		t.Errorf("refused registrations were stored: %s", raw)
	}
}

// TestPrivateUpstreamsNeedEgressSettings: with SSRF_ALLOW_LOCALHOST and
// SSRF_ALLOW_PRIVATE_NETWORKS false a loopback upstream is refused at registration (422 naming the setting)
// and, when its record was stored before, at connect time: the address its
// name resolves to is checked before connecting, so nothing reaches the
// upstream. SSRF_ALLOWED_NETWORKS lets it in again; with the settings on it
// works.
func TestPrivateUpstreamsNeedEgressSettings(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	t.Run("allowed", func(t *testing.T) {
		gw := startGateway(t, sqliteURL(t), map[string]string{"SSRF_ALLOW_LOCALHOST": "true", "SSRF_ALLOW_PRIVATE_NETWORKS": "true"})
		gw.register(map[string]any{"name": "local", "url": up.URL})
		if res := gw.call("tools/call", map[string]any{"name": "local-echo", "arguments": map[string]any{"text": "x"}}); res.Error != nil {
			t.Fatalf("call: %s", res.Error.Message)
		}
	})
	t.Run("listed network", func(t *testing.T) {
		gw := startGateway(t, sqliteURL(t), map[string]string{"SSRF_ALLOW_LOCALHOST": "false", "SSRF_ALLOW_PRIVATE_NETWORKS": "false", "SSRF_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1"})
		gw.register(map[string]any{"name": "local", "url": up.URL})
	})
	t.Run("refused", func(t *testing.T) {
		target := listen(t, hangUp)
		db := sqliteURL(t)
		storeUpstreams(t, db, store.Upstream{Name: "old", URL: "http://localhost:" + strings.Split(target.addr, ":")[1] + "/mcp"})
		gw := startGateway(t, db, map[string]string{"SSRF_ALLOW_LOCALHOST": "false", "SSRF_ALLOW_PRIVATE_NETWORKS": "false"})
		for _, u := range []string{up.URL, "http://" + target.addr + "/mcp", "http://localhost:1/mcp", "http://[::1]:1/", "http://10.0.0.1/", "http://0.0.0.0:1/"} {
			status, out := gw.do("POST", "/gateways", map[string]any{"name": "new", "url": u})
			if msg := refusedField(t, status, out, "url"); !strings.Contains(msg, "SSRF_ALLOW") {
				t.Errorf("%s: the refusal %q does not name the SSRF_ALLOW_* setting that would allow it", u, msg)
			}
		}
		list, raw := gw.upstreams()
		if v := list["old"]; v.Status != "unavailable" || v.Reason != "not reachable (mcpgate's log has the cause)" {
			t.Errorf("the stored loopback upstream: %s", raw)
		}
		if n := target.conns.Load(); n != 0 {
			t.Errorf("the refused upstream got %d connections", n)
		}
	})
}

// TestUnreachableReasonsAreAlike: status_reason says "not reachable" and
// nothing more, whether the port is closed, the listener hangs up, it does
// not speak HTTP, it never answers, or the egress policy refused the
// address: registering upstreams cannot be used to scan ports. A record
// stored by an earlier version with credentials in its URL is loaded
// without failing, and GET /gateways shows it redacted.
func TestUnreachableReasonsAreAlike(t *testing.T) {
	db := sqliteURL(t)
	storeUpstreams(t, db, store.Upstream{Name: "old-metadata",
		URL: "http://admin:pw-SECRET-1@169.254.169.254/latest/?api_key=KEY-SECRET-2&tenant=acme&X-Amz-Signature=SIG-SECRET-3"})
	gw := startGateway(t, db, map[string]string{"UPSTREAM_TIMEOUT": "1s"})
	silent := make(chan struct{})
	t.Cleanup(func() { close(silent) })
	targets := map[string]string{
		"closed":   closedPort(t),
		"hang-up":  listen(t, hangUp).addr,
		"not-http": listen(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); c.Close() }).addr,
		"silent":   listen(t, func(c net.Conn) { <-silent; c.Close() }).addr,
	}
	for name, addr := range targets {
		status, out := gw.do("POST", "/gateways", map[string]any{"name": name, "url": "http://" + addr + "/mcp?tenant=acme"})
		if status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", name, status, out)
		}
	}
	list, raw := gw.upstreams()
	want := list["old-metadata"].Reason
	if want != "not reachable (mcpgate's log has the cause)" {
		t.Errorf("the metadata upstream's status_reason is %q", want)
	}
	for name := range targets {
		if got := list[name]; got.Status != "unavailable" || got.Reason != want {
			t.Errorf("%s: status %q, status_reason %q; want unavailable and %q", name, got.Status, got.Reason, want)
		}
	}
	for _, secret := range []string{"pw-SECRET-1", "KEY-SECRET-2", "SIG-SECRET-3"} {
		if strings.Contains(raw, secret) {
			t.Errorf("GET /gateways shows %s: %s", secret, raw)
		}
	}
	if got := list["old-metadata"].URL; got != "http://****@169.254.169.254/latest/?api_key=****&tenant=acme&X-Amz-Signature=****" {
		t.Errorf("the stored URL is shown as %q", got)
	}
	// A client calling it is told no more.
	res := gw.call("tools/call", map[string]any{"name": "closed-anything", "arguments": map[string]any{}})
	if res.Error == nil || strings.Contains(res.Error.Message, "refused") {
		t.Errorf("calling an unreachable upstream: %+v", res)
	}
}

// TestTokenURLOnRefusedAddressGetsNoSecret: an OAuth upstream stored with a
// token URL on a loopback address, loaded by a gateway that refuses private
// addresses, never connects there (so never sends its client secret), and
// says only that it is not reachable.
func TestTokenURLOnRefusedAddressGetsNoSecret(t *testing.T) {
	tokens := listen(t, hangUp)
	upstreamL := listen(t, hangUp)
	sealer, err := auth.NewSealer("test-encryption-secret")
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(auth.Credentials{OAuth: &auth.OAuth{GrantType: auth.GrantClientCredentials,
		TokenURL: "http://" + tokens.addr + "/token", ClientID: "mcpgate", ClientSecret: "client-secret-value"}})
	secret, _ := sealer.Seal(plain)
	db := sqliteURL(t)
	storeUpstreams(t, db, store.Upstream{Name: "oauth", URL: "http://" + upstreamL.addr + "/mcp", AuthType: "oauth", AuthSecret: secret})
	gw := startGateway(t, db, map[string]string{"SSRF_ALLOW_LOCALHOST": "false", "SSRF_ALLOW_PRIVATE_NETWORKS": "false"})
	list, raw := gw.upstreams()
	if v := list["oauth"]; v.Status != "unavailable" || v.Reason != "not reachable (mcpgate's log has the cause)" {
		t.Errorf("the OAuth upstream: %s", raw)
	}
	if n := tokens.conns.Load() + upstreamL.conns.Load(); n != 0 {
		t.Errorf("%d connections reached the token endpoint or the upstream", n)
	}
}

// TestCredentialsInUpstreamURLsAreRefused: user information and
// credential-looking query parameters are refused with 422 naming url (and
// the parameter), saying where the credential belongs and never echoing it;
// other query parameters are fine.
func TestCredentialsInUpstreamURLsAreRefused(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	gw := startGateway(t, sqliteURL(t), nil)
	base := strings.TrimSuffix(up.URL, "/")
	host := strings.TrimPrefix(base, "http://")
	status, out := gw.do("POST", "/gateways", map[string]any{"name": "creds", "url": "http://alice:pw-SECRET@" + host})
	if msg := refusedField(t, status, out, "url"); !strings.Contains(msg, "auth_type basic") || strings.Contains(msg, "SECRET") {
		t.Errorf("user information: %q, want a hint to auth_type basic and no value", msg)
	}
	for _, tc := range []struct{ url, param string }{
		{base + "?api_key=SECRET", "api_key"},
		{base + "?tenant=a&APIKEY=SECRET", "APIKEY"},
		{base + "?access_token=SECRET", "access_token"},
		{base + "?X-Api-Key=SECRET", "X-Api-Key"},
		{base + "?client_secret=SECRET", "client_secret"},
		{base + "?Signature=SECRET", "Signature"},
		{base + "?sig=SECRET", "sig"},
		{base + "?subscription-key=SECRET", "subscription-key"},
		{base + "?password=SECRET", "password"},
		{base + "?token=SECRET", "token"},
		{base + "?key=SECRET", "key"},
	} {
		status, out := gw.do("POST", "/gateways", map[string]any{"name": "creds", "url": tc.url})
		msg := refusedField(t, status, out, "url")
		if !strings.Contains(msg, `"`+tc.param+`"`) || !strings.Contains(msg, "authheaders") || strings.Contains(msg, "SECRET") {
			t.Errorf("%s: %q, want the parameter named, a hint and no value", tc.url, msg)
		}
	}
	id := gw.register(map[string]any{"name": "fine", "url": base + "?tenant=acme&page=2"})
	status, out = gw.do("PUT", "/gateways/"+id, map[string]any{"url": base + "?token=SECRET"})
	refusedField(t, status, out, "url")
}

// sqliteURL is a fresh SQLite database.
func sqliteURL(t *testing.T) string { return databases()[0].url(t) }
