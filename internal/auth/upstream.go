package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/passthrough"
)

const (
	// tokenExpiryMargin is how long before its expiry a cached OAuth token
	// is replaced, so it does not expire on the way to the upstream.
	tokenExpiryMargin = 30 * time.Second
	// defaultTokenLifetime is how long a token is cached when the token
	// endpoint gives no expires_in.
	defaultTokenLifetime = 5 * time.Minute
	// maxTokenResponse bounds what is read of a token endpoint's answer.
	maxTokenResponse = 1 << 20
	// maxTokenLifetime caps how long a token is cached, whatever
	// expires_in says.
	maxTokenLifetime = 24 * time.Hour
	// maxErrorDescription bounds the error_description quoted in an error.
	maxErrorDescription = 300
)

// UpstreamAuth produces the base headers (spec §2: mcpgate's own headers for
// the upstream) that carry mcpgate's credentials for one upstream. It is safe
// for concurrent use; build one per upstream and keep it, so OAuth tokens are
// cached across requests.
type UpstreamAuth struct {
	authType passthrough.AuthType
	headers  []passthrough.Header // the fixed base headers (none, basic, bearer, authheaders)
	oauth    *OAuth               // oauth only
	err      error                // the credentials are unusable; BaseHeaders returns it
	client   *http.Client
	now      func() time.Time

	mu     sync.Mutex
	token  string    // cached OAuth access token, "" when none
	expiry time.Time // when token must be replaced
	flight *tokenFetch
}

// tokenFetch is one token request that concurrent callers share.
type tokenFetch struct {
	done  chan struct{} // closed when the fields below are set
	token string
	err   error
	// abandoned says the caller running the fetch gave up (its context
	// ended): a waiter whose own context is alive runs a fetch itself
	// rather than fail with another caller's cancellation.
	abandoned bool
}

// NewUpstreamAuth returns the authenticator of an upstream registered with
// authType and credentials c (copied). client makes the OAuth token requests:
// pass the gateway's one upstream client (upstream.NewHTTPClient), which
// connects only where the egress policy allows and follows no redirect, so
// the client secret cannot be sent to a metadata service or a private
// address. Nil means http.DefaultClient, which has no such policy: for
// tests only. now is the clock (nil means time.Now).
//
// Credentials that fail Validate are not refused here: BaseHeaders returns
// the problem, so one bad upstream does not stop the others from loading.
func NewUpstreamAuth(authType passthrough.AuthType, c Credentials, client *http.Client, now func() time.Time) *UpstreamAuth {
	if client == nil {
		client = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	a := &UpstreamAuth{authType: authType, client: client, now: now}
	if authType == passthrough.AuthUnspecified {
		return a // no credentials: like none
	}
	if err := c.Validate(authType); err != nil {
		a.err = fmt.Errorf("upstream credentials (auth type %s): %w", authType, err)
		return a
	}
	c = c.clone()
	switch authType {
	case passthrough.AuthBasic:
		// RFC 7617; the password may be empty.
		cred := base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))
		a.headers = []passthrough.Header{{Name: "Authorization", Value: "Basic " + cred}}
	case passthrough.AuthBearer:
		a.headers = []passthrough.Header{{Name: "Authorization", Value: "Bearer " + c.Token}}
	case passthrough.AuthHeaders:
		for _, h := range c.Headers {
			a.headers = append(a.headers, passthrough.Header{Name: h.Name, Value: h.Value})
		}
	case passthrough.AuthOAuth:
		a.oauth = c.OAuth
	}
	return a
}

// TokenExchange reports whether the upstream's credential comes from an OAuth
// token exchange, the value of passthrough.Upstream.TokenExchange. It is
// false for now: the token_exchange grant type is reserved and Validate
// refuses it.
func (a *UpstreamAuth) TokenExchange() bool { return false }

// BaseHeaders returns the headers carrying mcpgate's credentials for the
// upstream, in order, as a new slice the caller may keep or change:
//   - none: nil;
//   - basic: Authorization: Basic base64(username:password);
//   - bearer: Authorization: Bearer <token>;
//   - authheaders: the static headers, in order;
//   - oauth: Authorization: Bearer <access token>, from the cache or, when
//     there is none or it is about to expire, from the token endpoint.
//
// Only the oauth type does I/O, bounded by ctx. Concurrent callers share one
// token request.
func (a *UpstreamAuth) BaseHeaders(ctx context.Context) ([]passthrough.Header, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.authType != passthrough.AuthOAuth {
		if a.headers == nil {
			return nil, nil
		}
		return append([]passthrough.Header(nil), a.headers...), nil
	}
	tok, err := a.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	return []passthrough.Header{{Name: "Authorization", Value: "Bearer " + tok}}, nil
}

// Invalidate drops the cached OAuth token, so the next BaseHeaders fetches a
// new one. Call it when the upstream answers 401, then retry the request
// once. It does nothing for the other auth types.
func (a *UpstreamAuth) Invalidate() {
	a.mu.Lock()
	a.token, a.expiry = "", time.Time{}
	a.mu.Unlock()
}

// accessToken returns a cached token that is still good, or fetches one.
func (a *UpstreamAuth) accessToken(ctx context.Context) (string, error) {
	for {
		a.mu.Lock()
		if a.token != "" && a.now().Before(a.expiry) {
			tok := a.token
			a.mu.Unlock()
			return tok, nil
		}
		if f := a.flight; f != nil {
			a.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", fmt.Errorf("wait for the OAuth token from %s: %w", a.tokenURL(), ctx.Err())
			}
			if f.abandoned && f.err != nil && ctx.Err() == nil {
				continue
			}
			return f.token, f.err
		}
		f := &tokenFetch{done: make(chan struct{})}
		a.flight = f
		a.mu.Unlock()

		tok, expiry, err := a.fetchToken(ctx)

		a.mu.Lock()
		if err == nil {
			a.token, a.expiry = tok, expiry
		}
		a.flight = nil
		a.mu.Unlock()
		f.token, f.err, f.abandoned = tok, err, ctx.Err() != nil
		close(f.done)
		return tok, err
	}
}

// tokenResponse is a token endpoint's answer, success or error
// (RFC 6749 §5.1, §5.2).
type tokenResponse struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresIn        expiresIn `json:"expires_in"`
	Error            string    `json:"error"`
	ErrorDescription string    `json:"error_description"`
}

// expiresIn is a lifetime in seconds. Some servers send it as a string.
type expiresIn float64

// UnmarshalJSON accepts a number or a string holding one.
func (e *expiresIn) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("expires_in is not a number")
	}
	*e = expiresIn(f)
	return nil
}

// fetchToken runs the client credentials grant (RFC 6749 §4.4) against the
// token endpoint and returns the access token and when to replace it.
//
// mcpgate authenticates with HTTP Basic (client_secret_basic, RFC 6749
// §2.3.1: client ID and secret form-encoded, then joined by a colon), the
// method every server must support; the client_secret_post fallback is not
// tried.
func (a *UpstreamAuth) fetchToken(ctx context.Context) (string, time.Time, error) {
	o := a.oauth
	form := url.Values{"grant_type": {GrantClientCredentials}}
	if len(o.Scopes) > 0 {
		form.Set("scope", strings.Join(o.Scopes, " "))
	}
	if o.Audience != "" {
		form.Set("audience", o.Audience)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: %w", a.tokenURL(), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))

	start := a.now()
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: %w", a.tokenURL(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: read the answer: %w", a.tokenURL(), err)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)

	if resp.StatusCode < 200 || resp.StatusCode > 299 || tr.Error != "" {
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: %s%s", a.tokenURL(), resp.Status, a.oauthError(tr))
	}
	switch {
	case jsonErr != nil:
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: %s with a body that is not a JSON token response (content type %q)", a.tokenURL(), resp.Status, ct)
	case tr.AccessToken == "":
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: the answer has no access_token", a.tokenURL())
	case !validValue(tr.AccessToken) || strings.ContainsAny(tr.AccessToken, " \t"):
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: the access_token cannot be sent in a header (white space or control characters)", a.tokenURL())
	case tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "Bearer"):
		return "", time.Time{}, fmt.Errorf("OAuth token request to %s: token_type %q is not supported, only Bearer", a.tokenURL(), printable(tr.TokenType, 20))
	}

	// Replace the token tokenExpiryMargin before it expires, or halfway
	// through a lifetime shorter than twice that; counted from when the
	// request was sent, to be safe. No (or a non-positive) expires_in
	// caches defaultTokenLifetime; a huge one is capped at maxTokenLifetime.
	life := defaultTokenLifetime
	if tr.ExpiresIn > 0 {
		life = maxTokenLifetime
		if secs := float64(tr.ExpiresIn); secs < life.Seconds() {
			life = time.Duration(secs * float64(time.Second))
		}
		life -= min(tokenExpiryMargin, life/2)
	}
	return tr.AccessToken, start.Add(life), nil
}

// oauthError formats the error and error_description of a token endpoint's
// error answer, with the client secret cut out should the server echo it.
func (a *UpstreamAuth) oauthError(tr tokenResponse) string {
	if tr.Error == "" {
		return " (no OAuth error in the answer)"
	}
	scrub := func(s string) string {
		if a.oauth.ClientSecret != "" {
			s = strings.ReplaceAll(s, a.oauth.ClientSecret, redacted)
		}
		return s
	}
	// Scrubbed before and after cleaning: before, so cutting cannot leave
	// part of the secret; after, in case removed characters split it.
	s := ": " + printable(scrub(tr.Error), 64)
	if tr.ErrorDescription != "" {
		s += ": " + printable(scrub(tr.ErrorDescription), maxErrorDescription)
	}
	return scrub(s)
}

// printable returns s sanitised as a header value would be, cut to max
// bytes: text from a server is safe to put in a one-line message.
func printable(s string, max int) string {
	s = passthrough.SanitizeValue(s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// tokenURL returns the token URL for messages: scheme, host and path only.
// User information (Validate refuses it, but be safe) and the query may
// hold secrets, and these messages reach status_reason and logs.
func (a *UpstreamAuth) tokenURL() string {
	u, err := url.Parse(a.oauth.TokenURL)
	if err != nil {
		return "the token URL"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
