package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

// guardOrigin refuses, with 403, a request from a browser page of another
// origin: one whose Origin header is neither mcpgate's own origin as the
// request reached it nor one of allowed (ALLOWED_HOSTS entries written as
// origins). Any page may otherwise make a browser send a "simple" POST
// (text/plain, a form) to mcpgate and, with AUTH_REQUIRED=false, register
// upstreams (MCP basic/transports, "Security Warning": servers must
// validate the Origin header). A request without Origin, from a client that
// is not a browser, passes.
//
// mcpgate's own origin is the whole of it — scheme, host and port — taken
// from the Host header: the Origin's host and port (its scheme's default
// when it has none) must be the Host's (the same default when it has
// none), so http://localhost:9999 is refused by mcpgate at localhost:4444,
// and the scheme must be the one the request came in with: https when
// mcpgate terminated TLS, or when the proxy in front of it says so in
// X-Forwarded-Proto (https://gw.example.com passes behind a TLS proxy that
// keeps the Host gw.example.com and sets it), http otherwise. A browser
// cannot add X-Forwarded-Proto to a cross-origin request without a
// preflight, which this guard refuses.
//
// The Host is the page's to choose, though: a page at
// http://evil.example:4444 whose name DNS rebinding pointed at mcpgate sends
// Host and Origin alike. So an Origin counts as mcpgate's own only when its
// host is an IP address, localhost, or a name in hosts (ALLOWED_HOSTS; "*"
// trusts every name): no page can rebind those.
func guardOrigin(next http.Handler, allowed, hosts []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Values("Origin")
		if len(origin) == 0 || len(origin) == 1 && origin[0] == "" {
			next.ServeHTTP(w, r) // a browser always sends one with a value
			return
		}
		o := ""
		if len(origin) == 1 {
			o = config.NormalizeOrigin(origin[0])
		}
		same := o != "" && o == config.NormalizeOrigin(ownScheme(r)+"://"+r.Host)
		switch {
		case same && unrebindable(r.Host, hosts), o != "" && slices.Contains(allowed, o):
		case same:
			refuseOrigin(w, fmt.Sprintf("Origin %q names mcpgate by a host name that is not in ALLOWED_HOSTS, as a page that DNS rebinding pointed at mcpgate would; "+
				"if mcpgate serves pages under that name, add it to ALLOWED_HOSTS", origin[0]))
			return
		default:
			refuseOrigin(w, fmt.Sprintf("Origin %q is not allowed: a browser page may call mcpgate only from mcpgate's own origin (the scheme, host and port it was reached at, %q); "+
				"to let a web app on another origin call it, add that origin (scheme://host:port) to ALLOWED_HOSTS",
				strings.Join(origin, ", "), r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func refuseOrigin(w http.ResponseWriter, msg string) {
	body, _ := json.Marshal(map[string]string{"detail": msg})
	writeJSON(w, http.StatusForbidden, string(body))
}

// unrebindable reports whether host, a request's Host, names mcpgate in a
// way DNS rebinding cannot forge: an IP address, localhost, or a name the
// operator listed in hosts (ALLOWED_HOSTS, where "*" lists every name).
func unrebindable(host string, hosts []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	return slices.Contains(hosts, host) || slices.Contains(hosts, "*")
}

// ownScheme is the scheme a request reached mcpgate, or the TLS proxy in
// front of it, with.
func ownScheme(r *http.Request) string {
	if p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// withBodyDeadline gives a request's body timeout to arrive
// (REQUEST_BODY_TIMEOUT): a client that
// trickles it gets 408 and its connection closed, instead of holding a
// handler and a connection indefinitely (ReadHeaderTimeout covers only the
// headers). The deadline is lifted once the body has been read to its end,
// so an answer that streams for as long as a call lasts (SSE on POST /mcp)
// is not cut; requests without a body (the GET streams, the WebSocket
// upgrade) get none. http.Server's ReadTimeout cannot do this: it also
// ends those streams.
func withBodyDeadline(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(timeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts its request's read deadline at the body's end.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
