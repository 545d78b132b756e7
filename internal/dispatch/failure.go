package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpgate/mcpgate/internal/jsonrpc"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// What an upstream's failure can be, as exchange sees it: marks wrapped
// around the cause, for tell.
var (
	errCredentials = errors.New("cannot get the upstream's credentials")
	errUnavailable = errors.New("the upstream is unavailable")
	errTimedOut    = errors.New("no answer within the upstream timeout")
	errCancelled   = errors.New("the request was cancelled")
)

// upstreamFailure is an upstream's failure as its client is told it. Its
// text is tell's; the cause, which may name upstream or token URLs or
// quote an identity provider, is for errors.Is and the log only.
type upstreamFailure struct {
	told  string
	cause error
}

func (e *upstreamFailure) Error() string { return e.told }
func (e *upstreamFailure) Unwrap() error { return e.cause }

// failed is the one way dispatch tells a client that an upstream failed
// (as httputil.ReverseProxy has one ErrorHandler): it logs the cause at
// warn and returns an error whose text names the upstream and the kind of
// failure and nothing internal — no upstream or token URL, no redirect
// target, no identity provider's or upstream's error text.
func (d *Dispatcher) failed(ctx context.Context, name, method string, err error, in Inbound) error {
	var told *upstreamFailure
	if errors.As(err, &told) {
		return told // told, and logged, already
	}
	attrs := []any{"upstream", name, "err", err.Error(), "request_id", in.RequestID}
	if method != "" {
		attrs = append(attrs, "method", method)
	}
	d.cfg.Logger.WarnContext(ctx, "upstream request failed", attrs...)
	return &upstreamFailure{told: tell(name, err, d.cfg.Timeout), cause: err}
}

// failedRPC is failed as a JSON-RPC error response.
func (d *Dispatcher) failedRPC(ctx context.Context, name, method string, err error, in Inbound) jsonrpc.Message {
	return failure(&jsonrpc.Error{Code: jsonrpc.CodeUpstreamError, Message: d.failed(ctx, name, method, err, in).Error()})
}

// tell words err for the client of upstream name: one fixed text per kind
// of failure.
func tell(name string, err error, timeout time.Duration) string {
	var redirect *upstream.RedirectError
	switch {
	case errors.Is(err, errTimedOut):
		return fmt.Sprintf("upstream %q did not answer within %s", name, timeout)
	case errors.Is(err, errCancelled):
		return fmt.Sprintf("request to upstream %q cancelled", name)
	case errors.Is(err, errAssertion):
		return fmt.Sprintf("upstream %q: cannot sign its identity assertion (mcpgate's log has the cause)", name)
	case errors.Is(err, errCredentials):
		return fmt.Sprintf("upstream %q: cannot get its credentials (mcpgate's log has the cause)", name)
	case errors.Is(err, errUnavailable):
		return fmt.Sprintf("upstream %q is unavailable (mcpgate's log has the cause)", name)
	case errors.As(err, &redirect):
		return fmt.Sprintf("upstream %q answered with a redirect (HTTP %d), which mcpgate does not follow", name, redirect.StatusCode)
	case errors.Is(err, upstream.ErrUnreachable):
		return fmt.Sprintf("upstream %q is not reachable", name)
	case errors.Is(err, upstream.ErrClosed):
		return fmt.Sprintf("upstream %q: mcpgate closed its connection during the request; try again", name)
	}
	if status, ok := httpStatus(err); ok {
		return fmt.Sprintf("upstream %q answered HTTP %d", name, status)
	}
	return fmt.Sprintf("upstream %q failed (mcpgate's log has the cause)", name)
}
