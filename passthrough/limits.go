package passthrough

import (
	"errors"
	"fmt"
)

// Bounds of an allowlist. A header name is an HTTP token (RFC 9110 §5.1)
// that real deployments keep short (X-Tenant-Id, X-Request-Id,
// X-Amzn-Trace-Id), and a list names the few headers an upstream needs;
// the bounds leave room for generous use and keep the per-call work and the
// log lines of one list small (computing headers walks the whole list).
const (
	// MaxAllowlistNames is the most names one allowlist may hold: an
	// upstream's passthrough_headers, the stored global list, or
	// DEFAULT_PASSTHROUGH_HEADERS.
	MaxAllowlistNames = 100
	// MaxNameLength is the longest allowlist name, in bytes.
	MaxNameLength = 256
)

// BoundsError says which bound a list exceeds. It does not say which field
// or setting holds the list: the caller names that.
type BoundsError struct {
	// Entry is the index of the name that is too long, or -1 when the
	// list has too many names.
	Entry   int
	Message string
}

func (e *BoundsError) Error() string { return e.Message }

// CheckListBounds returns a *BoundsError when names holds more than
// MaxAllowlistNames names or a name longer than MaxNameLength bytes.
func CheckListBounds(names []string) error {
	if len(names) > MaxAllowlistNames {
		return &BoundsError{-1, fmt.Sprintf("has %d names; at most %d are allowed", len(names), MaxAllowlistNames)}
	}
	for i, n := range names {
		if len(n) > MaxNameLength {
			return &BoundsError{i, fmt.Sprintf("is %d bytes long; a header name may be at most %d bytes", len(n), MaxNameLength)}
		}
	}
	return nil
}

// boundsReason is a SettingError reason for a list out of bounds.
func boundsReason(err error) string {
	var be *BoundsError
	if errors.As(err, &be) && be.Entry >= 0 {
		return fmt.Sprintf("entry %d %s", be.Entry, be.Message)
	}
	return "the list " + err.Error()
}

// shorten cuts a setting's value for an error message: a list out of
// bounds may be megabytes long.
func shorten(v string) string {
	const most = 200
	if len(v) <= most {
		return v
	}
	return v[:most] + "…"
}
