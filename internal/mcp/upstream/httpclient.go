package upstream

import (
	"net"
	"net/http"
	"time"
)

// NewHTTPClient returns the HTTP client mcpgate uses for upstream traffic
// when none is given: bounded dialling and TLS handshakes, pooled
// connections, and no overall Timeout, because event streams are long-lived;
// every request is bounded by its context instead.
//
// It does not follow redirects: an upstream request carries credentials and
// passthrough headers meant for the registered URL, not for wherever a
// redirect points (a 3xx answer is an error naming the new location).
func NewHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
