package upstream

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrClosed is returned by a Client's methods once Close has been called, and
// by the calls Close interrupted.
var ErrClosed = errors.New("upstream client closed")

// errSessionLost marks a failure that a fresh session can cure: the upstream
// answered 404 to a request carrying its session (Streamable HTTP), or the
// legacy event stream the session lived on is gone. A call is retried once on
// a new session (MCP 2025-06-18, basic/transports, "Session Management").
var errSessionLost = errors.New("upstream session lost")

// StatusError is an HTTP error status (400 or more) from the upstream.
//
// Error deliberately leaves the body out: errors end up in logs, and an
// upstream's body may echo what it was sent. Read Body where it is safe to.
type StatusError struct {
	StatusCode int
	// Body is the start of the response body (at most 1 KiB, valid UTF-8).
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("upstream answered HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// HTTPStatus returns the status code, for callers that only need that.
func (e *StatusError) HTTPStatus() int { return e.StatusCode }

// RedirectError is a redirect (HTTP 3xx) from the upstream, which mcpgate
// does not follow: the request carries credentials and passthrough headers
// meant for the registered URL. Its text names where it points (for the
// operator: logs, status_reason); clients are told only that the upstream
// redirected.
type RedirectError struct {
	StatusCode int
	// Location is where it points: scheme, host and path only, since a
	// query or user information may hold secrets.
	Location string
}

// Error implements error.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("the upstream redirects (HTTP %d) to %q; mcpgate does not follow redirects, register the final URL", e.StatusCode, e.Location)
}

// maxErrorBody bounds StatusError.Body.
const maxErrorBody = 1 << 10

// errStreamEnded is what waiting for an answer on an event stream returns
// when the stream ended first.
var errStreamEnded = errors.New("upstream event stream ended")
