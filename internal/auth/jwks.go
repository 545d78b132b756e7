package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JWKSConfig says where a JWKS comes from and how it is kept fresh.
type JWKSConfig struct {
	// URL is the key set's address (JWT_JWKS_URL). With Discovery it is
	// found instead from Issuer's OpenID configuration.
	URL string
	// Issuer and Discovery (JWT_OIDC_DISCOVERY): read jwks_uri from
	// Issuer + /.well-known/openid-configuration (OpenID Connect Discovery
	// 1.0 §4), whose issuer must be Issuer exactly (§4.3).
	Issuer    string
	Discovery bool
	// RefreshInterval re-reads the set in the background, so keys the
	// provider removed stop verifying; 0 means DefaultJWKSRefresh.
	RefreshInterval time.Duration
	// MinRefetchInterval bounds the re-reads a token with an unknown kid
	// causes; 0 means DefaultJWKSMinRefetch.
	MinRefetchInterval time.Duration
	// Client makes the requests; nil means one with a 10 s timeout. Either
	// way redirects are not followed: the keys come from the configured
	// address only.
	Client *http.Client
	Logger *slog.Logger
}

// JWKS defaults.
const (
	DefaultJWKSRefresh    = 5 * time.Minute
	DefaultJWKSMinRefetch = 10 * time.Second
	// maxJWKSBytes bounds a key set or discovery document; real ones are a
	// few kilobytes.
	maxJWKSBytes = 1 << 20
	jwksTimeout  = 10 * time.Second
)

// JWKS is an identity provider's key set, fetched from its URL and kept:
// re-read every RefreshInterval and when a token names a kid it does not
// know (at most once per MinRefetchInterval). A fetch that fails or returns
// garbage keeps the last good keys and is logged once, not per request,
// until a fetch succeeds again. Close stops its refresh.
type JWKS struct {
	cfg    JWKSConfig
	client *http.Client
	logger *slog.Logger

	keys       atomic.Pointer[[]publicKey]
	generation atomic.Uint64 // bumped whenever the key set changes
	fetches    atomic.Int64

	mu          sync.Mutex // serialises fetches
	lastRefetch time.Time  // the last fetch an unknown kid caused
	jwksURL     string     // the set's URL, found by discovery when Discovery
	failing     bool       // the last fetch failed (and was logged)

	stop chan struct{}
	done chan struct{}
}

// NewJWKS fetches the key set once, then keeps it fresh until Close. A
// first fetch that fails is logged and retried like any other: mcpgate
// starts, and tokens are refused as having an unknown key until the
// provider answers.
func NewJWKS(ctx context.Context, cfg JWKSConfig) (*JWKS, error) {
	if cfg.Discovery {
		if cfg.Issuer == "" {
			return nil, errors.New("OIDC discovery needs the issuer URL")
		}
		if err := checkKeyURL(strings.TrimRight(cfg.Issuer, "/") + "/.well-known/openid-configuration"); err != nil {
			return nil, fmt.Errorf("issuer %w", err)
		}
	} else if err := checkKeyURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultJWKSRefresh
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = DefaultJWKSMinRefetch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client := &http.Client{Timeout: jwksTimeout}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	k := &JWKS{cfg: cfg, client: client, logger: cfg.Logger, jwksURL: cfg.URL,
		stop: make(chan struct{}), done: make(chan struct{})}
	k.keys.Store(&[]publicKey{})
	k.refresh(ctx, false)
	go k.run()
	return k, nil
}

// checkKeyURL accepts the http and https URLs a key set may be read from.
func checkKeyURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("URL %q is not an http(s) URL without user information", raw)
	}
	return nil
}

// Close stops the background refresh.
func (k *JWKS) Close() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

// Fetches is how many times the key set was requested, for tests and
// metrics.
func (k *JWKS) Fetches() int64 { return k.fetches.Load() }

// Generation changes whenever the key set changes; a cache of verified
// tokens compares it to re-verify tokens after a rotation.
func (k *JWKS) Generation() uint64 { return k.generation.Load() }

func (k *JWKS) run() {
	defer close(k.done)
	t := time.NewTicker(k.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
			k.refresh(ctx, false)
			cancel()
		}
	}
}

// lookup returns the key for a token's alg and kid. A kid the set does not
// have causes one re-read, unless one happened less than MinRefetchInterval
// ago. A token without kid uses the set's one key for its algorithm.
func (k *JWKS) lookup(ctx context.Context, alg, kid string) (publicKey, error) {
	if pk, ok := find(*k.keys.Load(), alg, kid); ok {
		return pk, nil
	}
	// Another request's fetch may have brought the key meanwhile: look again
	// whether or not this one fetched. The fetch outlives a client that
	// hangs up (the client's timeout bounds it): one that did so on purpose
	// must not leave the others with a failed read and no refetch for
	// MinRefetchInterval.
	k.refresh(context.WithoutCancel(ctx), true)
	if pk, ok := find(*k.keys.Load(), alg, kid); ok {
		return pk, nil
	}
	return publicKey{}, errUnknownKey
}

// errUnknownKey is a token whose kid (or, without kid, whose algorithm)
// matches no key.
var errUnknownKey = errors.New("no key of the identity provider matches the token's kid")

func find(keys []publicKey, alg, kid string) (publicKey, bool) {
	var only publicKey
	n := 0
	for _, pk := range keys {
		if pk.alg != alg {
			continue
		}
		if kid != "" && pk.kid == kid {
			return pk, true
		}
		only, n = pk, n+1
	}
	return only, kid == "" && n == 1
}

// refresh fetches the key set; for an unknown kid (unknownKid) only if no
// other unknown kid caused a fetch in the last MinRefetchInterval.
// Concurrent callers wait for one fetch.
func (k *JWKS) refresh(ctx context.Context, unknownKid bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if unknownKid {
		if time.Since(k.lastRefetch) < k.cfg.MinRefetchInterval {
			return
		}
		k.lastRefetch = time.Now()
	}
	keys, err := k.fetch(ctx)
	if err != nil {
		if !k.failing {
			k.logger.Warn("identity provider keys could not be read; the last good keys stay in use",
				"url", k.describeURL(), "error", err.Error(), "keys_kept", len(*k.keys.Load()))
		}
		k.failing = true
		return
	}
	if k.failing {
		k.logger.Info("identity provider keys are readable again", "url", k.describeURL(), "keys", len(keys))
	}
	k.failing = false
	if !sameKeys(*k.keys.Load(), keys) {
		k.keys.Store(&keys)
		k.generation.Add(1)
	}
}

func (k *JWKS) describeURL() string {
	if k.jwksURL != "" {
		return k.jwksURL
	}
	return k.cfg.Issuer
}

func sameKeys(a, b []publicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		eq, ok := a[i].key.(interface{ Equal(x any) bool })
		if a[i].kid != b[i].kid || a[i].alg != b[i].alg || !ok || !eq.Equal(b[i].key) {
			return false
		}
	}
	return true
}

func (k *JWKS) fetch(ctx context.Context) ([]publicKey, error) {
	k.fetches.Add(1)
	if k.cfg.Discovery && k.jwksURL == "" {
		u, err := k.discover(ctx)
		if err != nil {
			return nil, err
		}
		k.jwksURL = u
	}
	b, err := k.get(ctx, k.jwksURL)
	if err != nil {
		return nil, err
	}
	return parseJWKS(b)
}

// discover reads jwks_uri from the issuer's OpenID configuration.
func (k *JWKS) discover(ctx context.Context) (string, error) {
	b, err := k.get(ctx, strings.TrimRight(k.cfg.Issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("OIDC discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("OIDC discovery: the configuration is not JSON: %w", err)
	}
	if doc.Issuer != k.cfg.Issuer {
		return "", fmt.Errorf("OIDC discovery: the configuration names issuer %q, not %q (OpenID Connect Discovery §4.3)", doc.Issuer, k.cfg.Issuer)
	}
	if err := checkKeyURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("OIDC discovery: jwks_uri %w", err)
	}
	return doc.JWKSURI, nil
}

func (k *JWKS) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", u, maxJWKSBytes)
	}
	return b, nil
}
