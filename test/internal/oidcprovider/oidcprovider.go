// Package oidcprovider starts a real OpenID provider for tests: panva's
// oidc-provider (OpenID Certified, from the npm registry; scripts/oidc.sh
// installs it and names it in MCPGATE_TEST_OIDC_PROVIDER) on a loopback
// port of the test's own, with static confidential clients using the
// client_credentials grant and RFC 8707 resource indicators: a token asked
// for a resource is a JWT signed with the provider's RS256 key, whose aud is
// that resource and whose scope is what the client asked for and may have.
// The provider publishes its keys at its jwks_uri (found through
// /.well-known/openid-configuration) and can rotate them while it runs.
package oidcprovider

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Env is the variable scripts/oidc.sh sets: "NODE PACKAGE-DIR".
const Env = "MCPGATE_TEST_OIDC_PROVIDER"

//go:embed provider.mjs
var script []byte

// Client is a confidential client of the provider.
type Client struct {
	ID     string
	Secret string
	// Scope is the space-separated scopes it may be given.
	Scope string
}

// Provider is one running provider.
type Provider struct {
	// Issuer is its issuer URL, http://127.0.0.1:PORT (no trailing slash).
	Issuer string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	mu   sync.Mutex
	log  strings.Builder // its stdout and stderr
}

const startTimeout = 20 * time.Second

// Start runs a provider with clients; it is stopped when the test ends, and
// its log shown when the test failed. Without MCPGATE_TEST_OIDC_PROVIDER it
// fails the test saying how to install the provider; it never skips.
func Start(t testing.TB, clients ...Client) *Provider {
	t.Helper()
	node, pkg, ok := strings.Cut(strings.TrimSpace(os.Getenv(Env)), " ")
	if !ok {
		t.Fatalf("%s is not set: this test runs a real OpenID provider (oidc-provider, from npm). Install it with\n"+
			"\teval \"$(scripts/oidc.sh install ~/.cache/mcpgate/oidc)\"\n"+
			"(from the repository root; scripts/test.sh does it), then run the test again", Env)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "provider.mjs")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	type clientJSON struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
		Scope  string `json:"scope"`
	}
	var cs []clientJSON
	for _, c := range clients {
		cs = append(cs, clientJSON{c.ID, c.Secret, c.Scope})
	}
	clientsJSON, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	p := &Provider{Issuer: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	p.cmd = exec.Command(strings.TrimSpace(node), path)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "OIDC_PROVIDER_DIR=" + strings.TrimSpace(pkg),
		"OIDC_PORT=" + strconv.Itoa(port), "OIDC_CLIENTS=" + string(clientsJSON)}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = writerFunc(p.appendLog)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start the OpenID provider (%s): %v", Env, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.appendLog([]byte(line + "\n"))
			if issuer, ok := strings.CutPrefix(line, "ready "); ok {
				select {
				case ready <- issuer:
				default:
				}
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("the OpenID provider's log:\n%s", p.logText())
		}
	})
	select {
	case issuer := <-ready:
		if issuer != p.Issuer {
			t.Fatalf("the provider says its issuer is %q, want %q", issuer, p.Issuer)
		}
	case <-p.done:
		t.Fatalf("the OpenID provider exited before it was ready; its log:\n%s", p.logText())
	case <-time.After(startTimeout):
		t.Fatalf("the OpenID provider was not ready within %s; its log:\n%s", startTimeout, p.logText())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *Provider) appendLog(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log.Write(b)
	return len(b), nil
}

func (p *Provider) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *Provider) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Token obtains an access token with the client_credentials grant for
// resource (RFC 8707) with the space-separated scope; it fails the test if
// the provider refuses.
func (p *Provider) Token(t testing.TB, c Client, scope, resource string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	req, err := http.NewRequest(http.MethodPost, p.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret)) // RFC 6749 §2.3.1
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if status, raw := p.do(t, req, &body); status != http.StatusOK || body.AccessToken == "" {
		t.Fatalf("token for %s (scope %q, resource %q): %d %s", c.ID, scope, resource, status, raw)
	}
	return body.AccessToken
}

// RotateKeys makes the provider sign with a new key from now on, keeping
// the previous ones in its JWKS, and returns the new key's kid.
func (p *Provider) RotateKeys(t testing.TB) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.Issuer+"/_test/rotate", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Kid string `json:"kid"`
	}
	if status, raw := p.do(t, req, &body); status != http.StatusOK || body.Kid == "" {
		t.Fatalf("rotate the provider's keys: %d %s", status, raw)
	}
	return body.Kid
}

func (p *Provider) do(t testing.TB, req *http.Request, into any) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: %v in %s", req.Method, req.URL, err, raw)
		}
	}
	return resp.StatusCode, fmt.Sprintf("%.500s", raw)
}
