package registry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/mcp/upstream"
	"github.com/mcpgate/mcpgate/passthrough"
)

// Spec is what an upstream is registered with.
type Spec struct {
	Name        string
	URL         string
	Transport   upstream.Transport
	AuthType    passthrough.AuthType
	Credentials auth.Credentials
	// PassthroughHeaders is the upstream's own allowlist; nil inherits the
	// global one, an empty list forwards nothing (spec §3).
	PassthroughHeaders *[]string
	Enabled            bool
}

// Patch changes some fields of a registered upstream; nil fields stay as
// they are.
type Patch struct {
	Name        *string
	URL         *string
	Transport   *upstream.Transport
	AuthType    *passthrough.AuthType
	Credentials *auth.Credentials
	// PassthroughHeaders, when Set, replaces the list: List nil puts the
	// upstream back to inheriting the global list.
	PassthroughHeaders OptionalList
	Enabled            *bool
}

// OptionalList is a list field of a Patch that may be absent, null or a list.
type OptionalList struct {
	Set  bool
	List *[]string
}

// FieldError says which field of a request is wrong and why; the admin API
// answers it with 422 naming the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// ErrNotFound and ErrConflict are the registry's answers for an unknown
// upstream and a clash with another one (a duplicate name).
var (
	ErrNotFound = errors.New("upstream not found")
	ErrConflict = errors.New("conflict")
)

func (s Spec) validate() error {
	if strings.TrimSpace(s.Name) == "" {
		return &FieldError{"name", "must not be empty"}
	}
	if len(s.Name) > 200 {
		return &FieldError{"name", "must be at most 200 characters"}
	}
	if slug(s.Name) == "" {
		return &FieldError{"name", "must contain at least one letter or digit"}
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{"url", fmt.Sprintf("%q is not an absolute http or https URL", s.URL)}
	}
	switch s.Transport {
	case upstream.StreamableHTTP, upstream.SSE:
	default:
		return &FieldError{"transport", fmt.Sprintf("%q is not one of STREAMABLEHTTP, SSE", s.Transport)}
	}
	known := false
	for _, t := range passthrough.AuthTypes() {
		known = known || t == s.AuthType
	}
	if !known {
		return &FieldError{"auth_type", fmt.Sprintf("%q is not one of none, basic, bearer, authheaders, oauth", s.AuthType)}
	}
	if err := s.Credentials.Validate(s.AuthType); err != nil {
		var fe *auth.FieldError
		if errors.As(err, &fe) {
			return &FieldError{fe.Field, fe.Message}
		}
		return &FieldError{"auth", err.Error()}
	}
	if s.PassthroughHeaders != nil {
		if err := checkListBounds(*s.PassthroughHeaders); err != nil {
			return err
		}
		for i, n := range *s.PassthroughHeaders {
			if !passthrough.ValidName(n) {
				return &FieldError{fmt.Sprintf("passthrough_headers[%d]", i), fmt.Sprintf("%q is not a header name of letters, digits and hyphens", n)}
			}
		}
	}
	return nil
}

// checkListBounds refuses a passthrough_headers list beyond
// passthrough.MaxAllowlistNames names or passthrough.MaxNameLength bytes a
// name, naming the field; checked before the names, so that a huge list is
// not echoed back.
func checkListBounds(names []string) error {
	var be *passthrough.BoundsError
	if err := passthrough.CheckListBounds(names); errors.As(err, &be) {
		field := "passthrough_headers"
		if be.Entry >= 0 {
			field = fmt.Sprintf("passthrough_headers[%d]", be.Entry)
		}
		return &FieldError{field, be.Message}
	}
	return nil
}

// slug makes the upstream's name usable as a prefix: lower case letters,
// digits and single hyphens.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// ValidateGlobalList checks a global passthrough list (spec §3).
func ValidateGlobalList(names *[]string) error {
	if names == nil {
		return nil
	}
	if err := checkListBounds(*names); err != nil {
		return err
	}
	for i, n := range *names {
		if !passthrough.ValidName(n) {
			return &FieldError{fmt.Sprintf("passthrough_headers[%d]", i), fmt.Sprintf("%q is not a header name of letters, digits and hyphens", n)}
		}
	}
	return nil
}
