package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/passthrough"
)

// The client ID and secret hold characters that RFC 6749 §2.3.1 says are
// form-encoded before HTTP Basic, so the encoding is checked too.
const (
	testClientID     = "mcp gate:1"
	testClientSecret = "s3cr:et/+never-shown"
)

// clock is a settable clock for UpstreamAuth.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// tokenServer is a real OAuth token endpoint on 127.0.0.1 that checks each
// request like an authorisation server would and counts them.
type tokenServer struct {
	*httptest.Server
	requests atomic.Int32
	// answer writes the response to request n (1-based) that passed the
	// checks; nil answers {"access_token":"tok-<n>", "expires_in":3600}.
	answer func(w http.ResponseWriter, r *http.Request, n int)
}

func newTokenServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *tokenServer {
	t.Helper()
	ts := &tokenServer{answer: answer}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve(t)))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := int(ts.requests.Add(1))
		fail := func(status int, code, desc string) {
			t.Errorf("token request %d: %s", n, desc)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
		}
		user, pass, ok := r.BasicAuth()
		id, _ := url.QueryUnescape(user)
		secret, _ := url.QueryUnescape(pass)
		switch {
		case r.Method != http.MethodPost:
			fail(405, "invalid_request", "method "+r.Method)
			return
		case r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
			fail(400, "invalid_request", "content type "+r.Header.Get("Content-Type"))
			return
		case !ok || id != testClientID || secret != testClientSecret:
			fail(401, "invalid_client", "bad client authentication")
			return
		}
		if err := r.ParseForm(); err != nil {
			fail(400, "invalid_request", err.Error())
			return
		}
		if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
			fail(400, "unsupported_grant_type", "grant_type "+g)
			return
		}
		if s := r.PostForm.Get("scope"); s != "mcp:read mcp:write" {
			fail(400, "invalid_scope", "scope "+s)
			return
		}
		if r.PostForm.Has("client_secret") {
			fail(400, "invalid_request", "client_secret in the body as well as Basic")
			return
		}
		if ts.answer != nil {
			ts.answer(w, r, n)
			return
		}
		writeJSON(w, 200, fmt.Sprintf(`{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n))
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (ts *tokenServer) credentials() Credentials {
	return Credentials{OAuth: &OAuth{
		GrantType: GrantClientCredentials, TokenURL: ts.URL + "/oauth/token",
		ClientID: testClientID, ClientSecret: testClientSecret, Scopes: []string{"mcp:read", "mcp:write"},
	}}
}

func (ts *tokenServer) auth(clk *clock) *UpstreamAuth {
	var now func() time.Time
	if clk != nil {
		now = clk.Now
	}
	return NewUpstreamAuth(passthrough.AuthOAuth, ts.credentials(), ts.Client(), now)
}

func wantAuthorization(t *testing.T, a *UpstreamAuth, want string) {
	t.Helper()
	hs, err := a.BaseHeaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0] != (passthrough.Header{Name: "Authorization", Value: want}) {
		t.Fatalf("BaseHeaders = %v, want Authorization: %s", hs, want)
	}
}

func TestBaseHeadersPerAuthType(t *testing.T) {
	for _, tc := range []struct {
		name     string
		authType passthrough.AuthType
		c        Credentials
		want     []passthrough.Header
	}{
		{"none", passthrough.AuthNone, Credentials{}, nil},
		{"no upstream auth type", passthrough.AuthUnspecified, Credentials{}, nil},
		{"basic", passthrough.AuthBasic, Credentials{Username: "Aladdin", Password: "open sesame"},
			[]passthrough.Header{{Name: "Authorization", Value: "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}}},
		{"basic with empty password", passthrough.AuthBasic, Credentials{Username: "sk_test_1"},
			[]passthrough.Header{{Name: "Authorization", Value: "Basic " + base64.StdEncoding.EncodeToString([]byte("sk_test_1:"))}}},
		{"bearer", passthrough.AuthBearer, Credentials{Token: "abc.def"},
			[]passthrough.Header{{Name: "Authorization", Value: "Bearer abc.def"}}},
		{"authheaders in order", passthrough.AuthHeaders, Credentials{Headers: []Header{{"X-Tenant", "acme"}, {"X-API-Key", "k1"}, {"Authorization", "ApiKey k2"}}},
			[]passthrough.Header{{Name: "X-Tenant", Value: "acme"}, {Name: "X-API-Key", Value: "k1"}, {Name: "Authorization", Value: "ApiKey k2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewUpstreamAuth(tc.authType, tc.c, nil, nil)
			got, err := a.BaseHeaders(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("BaseHeaders = %v, want %v", got, tc.want)
			}
			// The caller owns the slice: changing it changes nothing.
			for i := range got {
				got[i].Value = "changed"
			}
			again, _ := a.BaseHeaders(context.Background())
			if fmt.Sprint(again) != fmt.Sprint(tc.want) {
				t.Fatalf("after changing the returned slice, BaseHeaders = %v", again)
			}
			if a.TokenExchange() {
				t.Error("TokenExchange = true")
			}
		})
	}
}

func TestBaseHeadersUseACopyOfTheCredentials(t *testing.T) {
	c := Credentials{Headers: []Header{{"X-API-Key", "k1"}}}
	a := NewUpstreamAuth(passthrough.AuthHeaders, c, nil, nil)
	c.Headers[0].Value = "changed later"
	hs, _ := a.BaseHeaders(context.Background())
	if hs[0].Value != "k1" {
		t.Fatalf("BaseHeaders = %v", hs)
	}
}

func TestBaseHeadersReportUnusableCredentialsWithoutTheSecret(t *testing.T) {
	a := NewUpstreamAuth(passthrough.AuthBearer, Credentials{Token: "Bearer sekrit-token"}, nil, nil)
	_, err := a.BaseHeaders(context.Background())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "auth.token" {
		t.Fatalf("BaseHeaders error = %v, want a FieldError for auth.token", err)
	}
	if strings.Contains(err.Error(), "sekrit") {
		t.Errorf("error %q shows the token", err)
	}
}

func TestOAuthTokenIsFetchedOnceAndCached(t *testing.T) {
	ts := newTokenServer(t, nil)
	a := ts.auth(nil)
	for range 10 {
		wantAuthorization(t, a, "Bearer tok-1")
	}
	if n := ts.requests.Load(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func TestOAuthSendsAudienceWhenSet(t *testing.T) {
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if got := r.PostForm.Get("audience"); got != "https://api.example.com" {
			t.Errorf("audience = %q", got)
		}
		writeJSON(w, 200, `{"access_token":"aud-token","token_type":"bearer"}`)
	})
	c := ts.credentials()
	c.OAuth.Audience = "https://api.example.com"
	wantAuthorization(t, NewUpstreamAuth(passthrough.AuthOAuth, c, ts.Client(), nil), "Bearer aud-token")
}

func TestOAuthTokenIsRefetchedBeforeItExpires(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn string // JSON value, "" = absent
		cachedFor time.Duration
	}{
		{"an hour: replaced 30 s early", "3600", 3570 * time.Second},
		{"no expires_in: five minutes", "", 5 * time.Minute},
		{"expires_in as a string", `"120"`, 90 * time.Second},
		{"shorter than a minute: replaced halfway", "20", 10 * time.Second},
		{"zero: five minutes", "0", 5 * time.Minute},
		{"absurdly long: capped at a day", "1e300", 24*time.Hour - 30*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				exp := ""
				if tc.expiresIn != "" {
					exp = `,"expires_in":` + tc.expiresIn
				}
				writeJSON(w, 200, fmt.Sprintf(`{"access_token":"tok-%d","token_type":"Bearer"%s}`, n, exp))
			})
			clk := &clock{now: testNow}
			a := ts.auth(clk)
			wantAuthorization(t, a, "Bearer tok-1")
			clk.Advance(tc.cachedFor - time.Second)
			wantAuthorization(t, a, "Bearer tok-1")
			clk.Advance(time.Second)
			wantAuthorization(t, a, "Bearer tok-2")
			if n := ts.requests.Load(); n != 2 {
				t.Fatalf("%d token requests, want 2", n)
			}
		})
	}
}

func TestInvalidateMakesTheNextCallFetchANewToken(t *testing.T) {
	ts := newTokenServer(t, nil)
	a := ts.auth(nil)
	wantAuthorization(t, a, "Bearer tok-1")
	a.Invalidate() // the upstream answered 401
	wantAuthorization(t, a, "Bearer tok-2")
	wantAuthorization(t, a, "Bearer tok-2")
	if n := ts.requests.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
}

func TestConcurrentCallersShareOneTokenFetch(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		once.Do(func() { close(arrived) })
		<-release
		writeJSON(w, 200, fmt.Sprintf(`{"access_token":"tok-%d","expires_in":3600}`, n))
	})
	a := ts.auth(nil)
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			hs, err := a.BaseHeaders(context.Background())
			if err == nil && (len(hs) != 1 || hs[0].Value != "Bearer tok-1") {
				err = fmt.Errorf("BaseHeaders = %v", hs)
			}
			errs <- err
		})
	}
	<-arrived
	time.Sleep(50 * time.Millisecond) // let the other callers join the fetch
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := ts.requests.Load(); n != 1 {
		t.Fatalf("%d token requests for %d concurrent callers, want 1", n, callers)
	}
}

func TestTokenEndpointErrorsSayWhatWentWrongWithoutTheSecret(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		says   []string
	}{
		{"client refused", 401, `{"error":"invalid_client","error_description":"Client authentication failed"}`,
			[]string{"401 Unauthorized", "invalid_client", "Client authentication failed"}},
		{"server echoes the secret", 400, `{"error":"invalid_scope","error_description":"client s3cr:et/+never-shown may not ask for mcp:write"}`,
			[]string{"400 Bad Request", "invalid_scope", "client **** may not"}},
		{"error without description", 400, `{"error":"unauthorized_client"}`,
			[]string{"400 Bad Request", "unauthorized_client"}},
		{"not JSON", 502, `<html>Bad Gateway</html>`,
			[]string{"502 Bad Gateway", "no OAuth error"}},
		{"success status with an error field", 200, `{"error":"invalid_grant"}`,
			[]string{"200 OK", "invalid_grant"}},
		{"success without access_token", 200, `{"token_type":"Bearer"}`,
			[]string{"no access_token"}},
		{"success that is not JSON", 200, `access_token=abc&token_type=bearer`,
			[]string{"not a JSON token response"}},
		{"unsupported token type", 200, `{"access_token":"abc","token_type":"DPoP"}`,
			[]string{`token_type "DPoP"`, "only Bearer"}},
		{"access token with a line break", 200, `{"access_token":"abc\r\nX-Evil: 1","token_type":"Bearer"}`,
			[]string{"cannot be sent in a header"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, tc.status, tc.body)
			})
			a := ts.auth(nil)
			_, err := a.BaseHeaders(context.Background())
			if err == nil {
				t.Fatal("BaseHeaders succeeded")
			}
			msg := err.Error()
			for _, want := range append(tc.says, ts.URL+"/oauth/token") {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			for _, secret := range []string{testClientSecret, url.QueryEscape(testClientSecret), "never-shown"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows the client secret", msg)
				}
			}
			// Failures are not cached: the next call asks again.
			a.BaseHeaders(context.Background())
			if n := ts.requests.Load(); n != 2 {
				t.Errorf("%d token requests after two failing calls, want 2", n)
			}
		})
	}
}

func TestUnreachableTokenEndpointIsNamed(t *testing.T) {
	ts := newTokenServer(t, nil)
	a := ts.auth(nil)
	ts.Close()
	_, err := a.BaseHeaders(context.Background())
	if err == nil || !strings.Contains(err.Error(), ts.URL+"/oauth/token") || strings.Count(err.Error(), ts.URL) != 1 {
		t.Fatalf("BaseHeaders error = %v, want one naming the token URL once", err)
	}
}

// hangingTokenServer accepts token requests and never answers until the
// client gives up or the test ends. It signals each request on arrived.
func hangingTokenServer(t *testing.T, arrived chan<- struct{}) *tokenServer {
	release := make(chan struct{})
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n > 1 { // only the first request hangs
			writeJSON(w, 200, fmt.Sprintf(`{"access_token":"tok-%d"}`, n))
			return
		}
		if arrived != nil {
			arrived <- struct{}{}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before ts.Close
	return ts
}

func TestHangingTokenServerIsBoundedByTheContext(t *testing.T) {
	ts := hangingTokenServer(t, nil)
	a := ts.auth(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.BaseHeaders(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BaseHeaders error = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("BaseHeaders took %v", d)
	}
	if !strings.Contains(err.Error(), ts.URL) {
		t.Errorf("error %q does not name the token URL", err)
	}
}

func TestWaiterFetchesItselfWhenTheFetchingCallerGivesUp(t *testing.T) {
	arrived := make(chan struct{}, 1)
	ts := hangingTokenServer(t, arrived)
	a := ts.auth(nil)

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := a.BaseHeaders(leaderCtx)
		leaderErr <- err
	}()
	<-arrived // the leader's fetch is in flight

	waiter := make(chan error, 1)
	go func() {
		hs, err := a.BaseHeaders(context.Background())
		if err == nil && hs[0].Value != "Bearer tok-2" {
			err = fmt.Errorf("BaseHeaders = %v", hs)
		}
		waiter <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter join the flight
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leader error = %v, want context.Canceled", err)
	}
	if err := <-waiter; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestWaiterGivesUpWithItsOwnContext(t *testing.T) {
	arrived := make(chan struct{}, 1)
	ts := hangingTokenServer(t, arrived)
	a := ts.auth(nil)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	defer cancelLeader()
	go a.BaseHeaders(leaderCtx)
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.BaseHeaders(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter error = %v, want its own deadline", err)
	}
}
