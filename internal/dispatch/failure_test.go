package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
)

// TestFailuresAreToldWithoutTheirCause: each kind of upstream failure is
// told to the client in a fixed text naming the upstream, however its
// cause is worded and wrapped; the cause — here always naming an internal
// host — goes to the log, once.
func TestFailuresAreToldWithoutTheirCause(t *testing.T) {
	const internal = "idp.corp.internal"
	wrap := func(err error) error {
		return fmt.Errorf("call tools/call on upstream http://%s/mcp: POST: %w", internal, err)
	}
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: OAuth token request to https://%s/token: 401 Unauthorized: invalid_client", errCredentials, internal),
			`upstream "crm": cannot get its credentials (mcpgate's log has the cause)`},
		{fmt.Errorf("%w: connect to upstream http://%s/mcp: initialize: refused", errUnavailable, internal),
			`upstream "crm" is unavailable (mcpgate's log has the cause)`},
		{fmt.Errorf("%w: %w", errTimedOut, wrap(context.DeadlineExceeded)), `upstream "crm" did not answer within 5s`},
		{fmt.Errorf("%w: %w", errCancelled, wrap(context.Canceled)), `request to upstream "crm" cancelled`},
		{wrap(&upstream.RedirectError{StatusCode: 307, Location: "https://" + internal + "/login"}),
			`upstream "crm" answered with a redirect (HTTP 307), which mcpgate does not follow`},
		{wrap(&upstream.StatusError{StatusCode: 502, Body: internal}), `upstream "crm" answered HTTP 502`},
		{wrap(fmt.Errorf("%w", upstream.ErrUnreachable)), `upstream "crm" is not reachable`},
		{wrap(upstream.ErrClosed), `upstream "crm": mcpgate closed its connection during the request; try again`},
		{wrap(errors.New("the upstream's answer is not JSON-RPC: " + internal)), `upstream "crm" failed (mcpgate's log has the cause)`},
	}
	for _, tc := range tests {
		var log bytes.Buffer
		d := New(Config{Logger: slog.New(slog.NewTextHandler(&log, nil)), Timeout: 5 * time.Second})
		err := d.failed(context.Background(), "crm", "tools/call", tc.err, Inbound{RequestID: "r1"})
		if err.Error() != tc.want {
			t.Errorf("%v\n told %q\n want %q", tc.err, err, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%q does not unwrap to its cause", err)
		}
		logged := log.String()
		if !strings.Contains(logged, internal) || strings.Count(logged, "upstream request failed") != 1 {
			t.Errorf("the log should have the cause %q once: %s", tc.err, logged)
		}
		// Told once, logged once: a second telling changes nothing.
		if again := d.failed(context.Background(), "crm", "tools/call", err, Inbound{}); again.Error() != tc.want || log.String() != logged {
			t.Errorf("told again: %q, log %s", again, log.String())
		}
	}
}
