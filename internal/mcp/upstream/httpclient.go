package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpgate/mcpgate/internal/egress"
)

// ErrUnreachable marks a request that never got an HTTP answer: the
// connection was refused, timed out, was reset or hung up, TLS failed, the
// name did not resolve, the egress policy refused the address, or what
// answered did not speak HTTP. Its text is only "not reachable": which of
// those happened would tell whoever registers upstreams what listens where
// (a port scanner), so the detail goes to the log alone.
var ErrUnreachable = errors.New("not reachable")

// unreachableError is ErrUnreachable with its cause, for errors.Is and
// errors.As; its text is ErrUnreachable's.
type unreachableError struct{ cause error }

func (e *unreachableError) Error() string        { return ErrUnreachable.Error() }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.cause }

// NewHTTPClient returns the HTTP client mcpgate uses for upstream traffic
// and OAuth token fetches: bounded dialling and TLS handshakes, pooled
// connections, and no overall Timeout, because event streams are long-lived;
// every request is bounded by its context instead.
//
// Every connection it makes is checked against policy on the resolved
// address, by the dialer, before it is made (so DNS rebinding cannot dodge
// the check). A request that gets no HTTP answer fails with ErrUnreachable;
// logger (nil discards) gets the detail at warn.
//
// It does not follow redirects: an upstream request carries credentials and
// passthrough headers meant for the registered URL, not for wherever a
// redirect points (a 3xx answer is an error naming the new location), and
// a redirect could point at an address the policy refuses.
func NewHTTPClient(policy egress.Policy, logger *slog.Logger) *http.Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: policy.Control}
	return &http.Client{
		Transport: &unreachableTransport{log: logger, base: &http.Transport{
			Proxy:                 proxyChecked(&policy, http.ProxyFromEnvironment),
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Pool returns the connection pool of a client from NewHTTPClient, to size
// it; nil for any other client.
func Pool(hc *http.Client) *http.Transport {
	if t, ok := hc.Transport.(*unreachableTransport); ok {
		return t.base
	}
	return nil
}

// proxyChecked is proxy (http.ProxyFromEnvironment), except that a request
// sent through a proxy — which resolves and connects on mcpgate's behalf,
// out of the dialer's sight — is checked here: its host as written, then
// every address it resolves to now. The proxy's own address is checked by
// the dialer: list it in SSRF_ALLOWED_NETWORKS when it is private.
//
// A name that does not resolve here is refused: what the proxy would
// resolve it to (a split-horizon internal name, a name an attacker answers
// only to the proxy's resolver) cannot be checked, so it fails closed.
// Only a policy that allows both loopback and private addresses lets it go
// to the proxy, since then only the forbidden class matters, and the name
// check has already refused the metadata names. The proxy resolves again
// after this check, so against DNS rebinding it must enforce egress itself.
func proxyChecked(policy *egress.Policy, proxy func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		via, err := proxy(req)
		if err != nil || via == nil {
			return via, err
		}
		host := req.URL.Hostname()
		if err := policy.CheckHost(host); err != nil {
			return nil, err
		}
		addrs, err := net.DefaultResolver.LookupNetIP(req.Context(), "ip", host)
		if err != nil {
			if policy.AllowLoopback && policy.AllowPrivate {
				return via, nil
			}
			// via.Host only: a proxy URL may carry credentials.
			return nil, fmt.Errorf("egress policy: %s does not resolve here, so its address cannot be checked before the request goes to the proxy %s: %w", host, via.Host, err)
		}
		for _, a := range addrs {
			if err := policy.CheckAddr(a); err != nil {
				return nil, err
			}
		}
		return via, nil
	}
}

// unreachableTransport turns every failure to get an HTTP answer into
// ErrUnreachable, logging what it was.
type unreachableTransport struct {
	base *http.Transport
	log  *slog.Logger
}

func (t *unreachableTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	if ctxErr := req.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return nil, err // the caller gave up (or Close did): nothing to hide or report
	}
	// No query, no user information: they may hold secrets.
	where := (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path}).String()
	t.log.Warn("upstream not reachable", "method", req.Method, "url", where, "cause", err.Error())
	return nil, &unreachableError{cause: err}
}

// CloseIdleConnections closes the pool's idle connections, for
// http.Client.CloseIdleConnections.
func (t *unreachableTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }
