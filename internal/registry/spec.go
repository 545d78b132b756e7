package registry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/auth"
	"github.com/mcpgate/mcpgate/internal/egress"
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
	// IdentityAssertion asks for mcpgate's signed identity assertion on
	// every request forwarded there (docs/identity-assertion.md).
	IdentityAssertion bool
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
	IdentityAssertion  *bool
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

// validate checks s; policy is the egress policy the upstream's URL and its
// OAuth token URL must satisfy. For an update, patch (nil for a new
// upstream) says which fields were given: the URL, the credentials and the
// allowlist are checked only when given, since a record stored under older
// rules — a credential-like query parameter in its URL, an address the
// policy now refuses, a list beyond today's bounds — must stay updatable
// (to disable it, say); the dialer enforces the egress policy on every
// connection anyway.
func (s Spec) validate(policy egress.Policy, patch *Patch) error {
	if strings.TrimSpace(s.Name) == "" {
		return &FieldError{"name", "must not be empty"}
	}
	if len(s.Name) > 200 {
		return &FieldError{"name", "must be at most 200 characters"}
	}
	if slug(s.Name) == "" {
		return &FieldError{"name", "must contain at least one letter or digit"}
	}
	if patch == nil || patch.URL != nil {
		if err := validateURL(s.URL, policy); err != nil {
			return err
		}
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
	if patch == nil || patch.AuthType != nil || patch.Credentials != nil {
		if err := s.validateCredentials(policy); err != nil {
			return err
		}
	}
	if patch == nil || patch.PassthroughHeaders.Set {
		return s.validateList()
	}
	return nil
}

// validateCredentials checks s's credentials for its auth type.
func (s Spec) validateCredentials(policy egress.Policy) error {
	if err := s.Credentials.Validate(s.AuthType); err != nil {
		var fe *auth.FieldError
		if errors.As(err, &fe) {
			return &FieldError{fe.Field, fe.Message}
		}
		return &FieldError{"auth", err.Error()}
	}
	if s.AuthType == passthrough.AuthOAuth && s.Credentials.OAuth != nil {
		// Validate has parsed it. The token request carries the client
		// secret: it must not reach a metadata service or a private
		// address either (connections are checked again when made).
		if u, err := url.Parse(s.Credentials.OAuth.TokenURL); err == nil {
			if err := policy.CheckHost(u.Hostname()); err != nil {
				return &FieldError{"auth.oauth.token_url", err.Error()}
			}
		}
	}
	return nil
}

// validateList checks s's allowlist.
func (s Spec) validateList() error {
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

// validateURL checks an upstream URL. It never echoes the URL: a misplaced
// secret may be in it.
func validateURL(raw string, policy egress.Policy) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{"url", "must be an absolute http or https URL"}
	}
	// Upstream URLs are stored as they are and shown by GET /gateways;
	// only credentials are sealed. So no credential may hide in one.
	if u.User != nil {
		return &FieldError{"url", "must not contain user information (user:password@): URLs are shown by GET /gateways and not encrypted; " +
			"use auth_type basic with auth_username and auth_password instead"}
	}
	for _, pair := range strings.Split(u.RawQuery, "&") {
		if name, ok := secretParam(pair); ok {
			return &FieldError{"url", fmt.Sprintf("query parameter %q looks like a credential: URLs are shown by GET /gateways and not encrypted; "+
				"send it in a header instead (auth_type authheaders, e.g. X-API-Key, or auth_type bearer)", name)}
		}
	}
	if err := policy.CheckHost(u.Hostname()); err != nil {
		return &FieldError{"url", err.Error()}
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

// secretParams are query parameter names that carry credentials, folded as
// secretParam folds them (lower case, '-' as '_'). Names ending in
// secretSuffixes count too (subscription_key, private_token, x_amz_signature).
var secretParams = map[string]bool{
	"key": true, "apikey": true, "token": true, "secret": true, "password": true, "passwd": true, "pwd": true,
	"auth": true, "authorization": true, "bearer": true, "jwt": true, "sig": true, "signature": true,
	"credential": true, "credentials": true, "x_amz_credential": true, "x_goog_credential": true,
}

var secretSuffixes = []string{"_key", "_token", "_secret", "_password", "_signature", "_sig", "_credential"}

// secretParam returns the name of one name=value pair of a raw query, and
// whether it names a credential (compared case-insensitively).
func secretParam(pair string) (string, bool) {
	name, _, _ := strings.Cut(pair, "=")
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	folded := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
	if folded == "" {
		return name, false
	}
	if secretParams[folded] {
		return name, true
	}
	for _, suffix := range secretSuffixes {
		if strings.HasSuffix(folded, suffix) || folded == suffix[1:] {
			return name, true
		}
	}
	return name, false
}

// redactURL returns a stored upstream URL fit to show: user information and
// the values of credential query parameters replaced by "****". Validation
// refuses both now; records stored before may still hold them.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "****" // unparseable: show nothing that might be a secret
	}
	userinfo := u.User != nil
	u.User = nil
	if u.RawQuery != "" {
		pairs := strings.Split(u.RawQuery, "&")
		for i, pair := range pairs {
			if name, ok := secretParam(pair); ok {
				pairs[i] = url.QueryEscape(name) + "=****"
			}
		}
		u.RawQuery = strings.Join(pairs, "&")
	}
	shown := u.String()
	if userinfo {
		shown = strings.Replace(shown, "://", "://****@", 1)
	}
	return shown
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
