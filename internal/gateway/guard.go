package gateway

import (
	"encoding/json"
	"fmt"
	"io"
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
func guardOrigin(next http.Handler, allowed []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Values("Origin")
		if len(origin) == 0 || len(origin) == 1 && origin[0] == "" {
			next.ServeHTTP(w, r) // a browser always sends one with a value
			return
		}
		own := len(origin) == 1 && config.NormalizeOrigin(origin[0]) == config.NormalizeOrigin(ownScheme(r)+"://"+r.Host)
		if !own && (len(origin) != 1 || !slices.Contains(allowed, config.NormalizeOrigin(origin[0]))) {
			body, _ := json.Marshal(map[string]string{"detail": fmt.Sprintf(
				"Origin %q is not allowed: a browser page may call mcpgate only from mcpgate's own origin (the scheme, host and port it was reached at, %q); "+
					"to let a web app on another origin call it, add that origin (scheme://host:port) to ALLOWED_HOSTS",
				strings.Join(origin, ", "), r.Host)})
			writeJSON(w, http.StatusForbidden, string(body))
			return
		}
		next.ServeHTTP(w, r)
	})
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
