package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcptest"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

// shortLivedTokens is an OAuth token endpoint on 127.0.0.1 issuing
// tok-1, tok-2, … that live lifetime, and an upstream guard that refuses,
// with 401, a token it did not issue or that has expired.
type shortLivedTokens struct {
	lifetime time.Duration
	tokens   *httptest.Server

	mu     sync.Mutex
	issued map[string]time.Time
	seen   []seenRequest // what the guard let through or refused
}

type seenRequest struct {
	method, rpc, token string
	refused            bool
}

func newShortLivedTokens(t *testing.T, lifetime time.Duration) *shortLivedTokens {
	st := &shortLivedTokens{lifetime: lifetime, issued: map[string]time.Time{}}
	st.tokens = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "mcpgate" || secret != "client-secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		st.mu.Lock()
		tok := fmt.Sprintf("tok-%d", len(st.issued)+1)
		st.issued[tok] = time.Now()
		st.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%g}`, tok, lifetime.Seconds())
	}))
	t.Cleanup(st.tokens.Close) // after the gateway stops: cleanups run last-in first-out
	return st
}

// guard returns an upstream URL in front of up that takes only live tokens.
func (st *shortLivedTokens) guard(t *testing.T, up *mcptest.Server) string {
	target, _ := url.Parse(up.URL)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(body, &m)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		st.mu.Lock()
		at, ok := st.issued[tok]
		live := ok && time.Since(at) < st.lifetime
		st.seen = append(st.seen, seenRequest{method: r.Method, rpc: m.Method, token: tok, refused: !live})
		st.mu.Unlock()
		if !live {
			http.Error(w, "token expired", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g.URL + target.Path
}

func (st *shortLivedTokens) issuedAt(tok string) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.issued[tok]
}

func (st *shortLivedTokens) requests() []seenRequest {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]seenRequest(nil), st.seen...)
}

// TestOAuthTokenRefreshedForTheSessionsOwnRequests: the requests the
// gateway's upstream session makes for itself take the OAuth token in force
// when each is sent. Once the token it connected with has expired and the
// upstream has forgotten the session, the re-initialization goes out with a
// fresh token, and the call that needed it succeeds.
func TestOAuthTokenRefreshedForTheSessionsOwnRequests(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dbURL func(*testing.T) string) {
		// A 1 s token is cached for 0.5 s (auth refetches halfway through
		// a short lifetime), and refused upstream after 1 s.
		st := newShortLivedTokens(t, time.Second)
		up := mcptest.NewStreamableHTTP(t)
		guarded := st.guard(t, up) // before the gateway, which stops first
		gw := startGateway(t, dbURL(t), nil)
		gw.register(map[string]any{"name": "crm", "url": guarded, "auth_type": "oauth",
			"oauth_config": map[string]any{"grant_type": "client_credentials", "token_url": st.tokens.URL,
				"client_id": "mcpgate", "client_secret": "client-secret"}})
		args := map[string]any{"name": "crm-echo", "arguments": map[string]any{"text": "x"}}
		if res := gw.call("tools/call", args); res.Error != nil {
			t.Fatalf("first call: %s", res.Error.Message)
		}
		// The expiry is what is tested: wait it out.
		time.Sleep(time.Until(st.issuedAt("tok-1").Add(st.lifetime + 100*time.Millisecond)))
		up.ExpireSessions()
		before := len(st.requests())
		if res := gw.call("tools/call", args); res.Error != nil {
			t.Fatalf("call after the token expired and the session was lost: %s", res.Error.Message)
		}
		var reinit []seenRequest
		for _, r := range st.requests()[before:] {
			if r.rpc == "initialize" {
				reinit = append(reinit, r)
			}
		}
		if len(reinit) == 0 {
			t.Fatal("the upstream saw no re-initialize")
		}
		for _, r := range reinit {
			if r.refused || r.token == "tok-1" {
				t.Errorf("re-initialize went out with %s (refused: %v), want a token fetched after tok-1 expired", r.token, r.refused)
			}
		}
	})
}

// TestRelaySSESecondInitializeIsRefused: a second initialize on one legacy
// SSE relay session, sent while the first is still opening its upstream
// session, is refused with -32600 saying why, and opens no upstream session
// of its own; when the client goes, the one upstream session is ended.
func TestRelaySSESecondInitializeIsRefused(t *testing.T) {
	up := mcptest.NewStreamableHTTP(t)
	target, _ := url.Parse(up.URL)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	var (
		hold        atomic.Bool // hold relayed initializes until release
		mu          sync.Mutex
		initializes int
		deletes     int
	)
	release := make(chan struct{})
	var releaseOnce sync.Once
	arrived := make(chan struct{}, 2)
	guard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if hold.Load() {
			mu.Lock()
			if r.Method == http.MethodDelete {
				deletes++
			}
			isInit := bytes.Contains(body, []byte(`"method":"initialize"`))
			if isInit {
				initializes++
				if initializes == 2 { // both are in: nothing more to wait for
					releaseOnce.Do(func() { close(release) })
				}
			}
			mu.Unlock()
			if isInit {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		// A leaked upstream session would hold its stream open for ever.
		guard.CloseClientConnections()
		guard.Close()
	})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	gw := startGateway(t, "sqlite:///"+t.TempDir()+"/mcpgate.db", nil)
	id := gw.register(map[string]any{"name": "crm", "url": guard.URL + target.Path})
	hold.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", gw.url+"/gateways/"+id+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+gw.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	endpoint, err := readEndpoint(br)
	if err != nil {
		t.Fatal(err)
	}
	initialize := func(id int) {
		t.Helper()
		msg := relayInitialize()
		msg["id"] = id
		if status, out := gw.do("POST", endpoint, msg); status != http.StatusAccepted {
			t.Fatalf("initialize %d: %d %s", id, status, out)
		}
	}
	initialize(1)
	select {
	case <-arrived: // the first is opening the upstream session, held there
	case <-ctx.Done():
		t.Fatal("the first initialize never reached the upstream")
	}
	initialize(2)

	answers := map[string]string{}
	for len(answers) < 2 {
		ev, err := mcptest.ReadEvent(br)
		if err != nil {
			t.Fatalf("reading the answers (have %v): %v", answers, err)
		}
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if ev.Name != "message" || json.Unmarshal([]byte(ev.Data), &m) != nil {
			continue
		}
		answers[string(m.ID)] = ev.Data
		if string(m.ID) == "2" { // the refusal is in: let the first go on
			releaseOnce.Do(func() { close(release) })
		}
	}
	if a := answers["2"]; !strings.Contains(a, `"code":-32600`) || !strings.Contains(a, "already initialized") {
		t.Errorf("second initialize answered %s, want -32600 saying the session is already initialized", a)
	}
	if a := answers["1"]; !strings.Contains(a, `"protocolVersion"`) {
		t.Errorf("first initialize answered %s, want the upstream's result", a)
	}
	mu.Lock()
	n := initializes
	mu.Unlock()
	if n != 1 {
		t.Errorf("the upstream was sent %d initialize requests for one relay session, want 1", n)
	}
	resp.Body.Close() // the client goes: its upstream session must end
	testenv.WaitFor(t, 10*time.Second, "the SSE relay session to end", func() bool { return gw.gateway.relaySSE.Sessions() == 0 })
	testenv.WaitFor(t, 10*time.Second, "every upstream session opened to be ended with DELETE", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return deletes >= initializes
	})
}
