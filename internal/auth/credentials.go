package auth

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/passthrough"
)

// OAuth grant types an upstream's OAuth credentials may name.
const (
	// GrantClientCredentials is the OAuth 2.0 client credentials grant
	// (RFC 6749 §4.4): mcpgate gets a token for itself.
	GrantClientCredentials = "client_credentials"
	// GrantTokenExchange is reserved for OAuth token exchange (RFC 8693),
	// where the upstream's token is derived from the client's. Not supported
	// yet: Validate refuses it.
	GrantTokenExchange = "token_exchange"
)

// redacted replaces every secret in Credentials.Redacted.
const redacted = "****"

// Credentials are what mcpgate authenticates to one upstream with. Which
// fields are used depends on the upstream's auth type; Validate checks that
// exactly those are set. The caller stores them as one JSON document sealed
// with a Sealer.
//
// The String, GoString and LogValue methods show the Redacted form, so
// printing or logging Credentials never shows a secret. Marshalling them
// to JSON does (that is what is sealed): never log that.
type Credentials struct {
	Username string   `json:"username,omitempty"` // basic
	Password string   `json:"password,omitempty"` // basic; may be empty (RFC 7617)
	Token    string   `json:"token,omitempty"`    // bearer, without the "Bearer " prefix
	Headers  []Header `json:"headers,omitempty"`  // authheaders: static headers, in order, e.g. X-API-Key
	OAuth    *OAuth   `json:"oauth,omitempty"`    // oauth
}

// Header is one static header of an authheaders upstream.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// OAuth is how mcpgate gets an OAuth access token for an upstream.
type OAuth struct {
	// GrantType is GrantClientCredentials, the only one supported now.
	GrantType string `json:"grant_type"`
	// TokenURL is the authorisation server's token endpoint, an absolute
	// http or https URL.
	TokenURL string `json:"token_url"`
	// ClientID and ClientSecret authenticate mcpgate to the token endpoint,
	// with HTTP Basic authentication.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// Scopes are requested space-joined in the scope parameter; none sends
	// no scope parameter.
	Scopes []string `json:"scopes,omitempty"`
	// Audience, when set, is sent as the audience parameter (Auth0, Okta).
	Audience string `json:"audience,omitempty"`
}

// FieldError names the credentials field that is wrong and what is wrong
// with it. The message never contains the field's value.
type FieldError struct {
	Field   string // the JSON path, e.g. "auth.username", "auth.headers[1].name"
	Message string // e.g. "is required for auth type basic"
}

// Error returns "<field>: <message>", as registry.FieldError does.
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate checks the credentials for an upstream of the given auth type and
// returns a *FieldError for the first problem: a field the type needs is
// missing or unusable, or a field of another type is set.
func (c Credentials) Validate(authType passthrough.AuthType) error {
	known := false
	for _, t := range passthrough.AuthTypes() {
		known = known || t == authType
	}
	if !known {
		return &FieldError{"auth.type", fmt.Sprintf("must be one of %v", passthrough.AuthTypes())}
	}

	// Fields of another type: refused rather than ignored, so a wrongly
	// chosen type is noticed at registration and no forgotten secret lingers.
	uses := func(t passthrough.AuthType, set bool, field string) error {
		if set && authType != t {
			return &FieldError{field, fmt.Sprintf("is set, but auth type %s does not use it (it belongs to %s)", authType, t)}
		}
		return nil
	}
	for _, err := range []error{
		uses(passthrough.AuthBasic, c.Username != "", "auth.username"),
		uses(passthrough.AuthBasic, c.Password != "", "auth.password"),
		uses(passthrough.AuthBearer, c.Token != "", "auth.token"),
		uses(passthrough.AuthHeaders, len(c.Headers) > 0, "auth.headers"),
		uses(passthrough.AuthOAuth, c.OAuth != nil, "auth.oauth"),
	} {
		if err != nil {
			return err
		}
	}

	switch authType {
	case passthrough.AuthBasic:
		switch {
		case c.Username == "":
			return &FieldError{"auth.username", "is required for auth type basic"}
		case strings.Contains(c.Username, ":"):
			return &FieldError{"auth.username", "must not contain a colon (RFC 7617)"}
		case hasControl(c.Username):
			return &FieldError{"auth.username", controlRule}
		case hasControl(c.Password):
			return &FieldError{"auth.password", controlRule}
		}
	case passthrough.AuthBearer:
		switch {
		case c.Token == "":
			return &FieldError{"auth.token", "is required for auth type bearer"}
		case len(c.Token) > 7 && strings.EqualFold(c.Token[:7], "Bearer "):
			return &FieldError{"auth.token", `must be the token alone, without the "Bearer " prefix`}
		case !validValue(c.Token):
			return &FieldError{"auth.token", valueRule}
		}
	case passthrough.AuthHeaders:
		return validateHeaders(c.Headers)
	case passthrough.AuthOAuth:
		return c.OAuth.validate()
	}
	return nil
}

// controlRule is what hasControl checks, said for a FieldError.
const controlRule = "must not contain control characters such as CR, LF or NUL (RFC 7617 §2)"

// hasControl reports whether s holds a control character (RFC 5234 CTL:
// 0x00-0x1F and DEL), which RFC 7617 §2 forbids in a basic user-id and
// password: a CR or LF there is a header injection waiting for any code
// that ever writes the value unencoded.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// valueRule is what validValue checks, said for a FieldError.
const valueRule = "must not contain line breaks or control characters, start or end with white space, or exceed 4096 characters"

// validValue reports whether v can be sent as a header value unchanged: it is
// what passthrough's sanitiser would leave as it is (spec §2, "Sanitising a
// value").
func validValue(v string) bool { return passthrough.SanitizeValue(v) == v }

func validateHeaders(hs []Header) error {
	if len(hs) == 0 {
		return &FieldError{"auth.headers", "needs at least one header for auth type authheaders"}
	}
	// A zero policy knows which headers belong to the HTTP connection and to
	// MCP's hop: mcpgate's transport sets those, an upstream's static
	// headers may not. Authorization is allowed.
	policy := passthrough.NewPolicy(passthrough.Settings{})
	for i, h := range hs {
		field := fmt.Sprintf("auth.headers[%d]", i)
		reason := policy.NeverForwarded(h.Name)
		switch {
		case !passthrough.ValidName(h.Name):
			return &FieldError{field + ".name", "must be letters, digits and hyphens only"}
		case reason == passthrough.ReasonProtocolHeader, reason == passthrough.ReasonMCPHeader:
			return &FieldError{field + ".name", fmt.Sprintf("%s is set by mcpgate's transport and cannot be a static header", h.Name)}
		case h.Value == "":
			return &FieldError{field + ".value", "is required"}
		case !validValue(h.Value):
			return &FieldError{field + ".value", valueRule}
		}
		for j := range i {
			if strings.EqualFold(hs[j].Name, h.Name) {
				return &FieldError{field + ".name", fmt.Sprintf("repeats auth.headers[%d].name (names are case-insensitive)", j)}
			}
		}
	}
	return nil
}

func (o *OAuth) validate() error {
	if o == nil {
		return &FieldError{"auth.oauth", "is required for auth type oauth"}
	}
	switch o.GrantType {
	case GrantClientCredentials:
	case "":
		return &FieldError{"auth.oauth.grant_type", "is required (" + GrantClientCredentials + ")"}
	case GrantTokenExchange:
		return &FieldError{"auth.oauth.grant_type", GrantTokenExchange + " is reserved and not supported yet; use " + GrantClientCredentials}
	default:
		return &FieldError{"auth.oauth.grant_type", "is unknown; the supported grant type is " + GrantClientCredentials}
	}
	if o.TokenURL == "" {
		return &FieldError{"auth.oauth.token_url", "is required"}
	}
	// The URL is not echoed: a misplaced secret may be in it.
	u, err := url.Parse(o.TokenURL)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return &FieldError{"auth.oauth.token_url", "must be an absolute http or https URL"}
	case u.Scheme != "http" && u.Scheme != "https":
		return &FieldError{"auth.oauth.token_url", "must be an http or https URL"}
	case u.User != nil:
		return &FieldError{"auth.oauth.token_url", "must not contain user information; put the client credentials in client_id and client_secret"}
	case u.Fragment != "":
		return &FieldError{"auth.oauth.token_url", "must not have a fragment (RFC 6749 §3.2)"}
	}
	switch {
	case o.ClientID == "":
		return &FieldError{"auth.oauth.client_id", "is required for grant type " + GrantClientCredentials}
	case o.ClientSecret == "":
		return &FieldError{"auth.oauth.client_secret", "is required for grant type " + GrantClientCredentials}
	}
	for i, s := range o.Scopes {
		// RFC 6749 §3.3: scope tokens are printable ASCII, no space, '"' or '\'.
		for j := 0; j < len(s); j++ {
			if c := s[j]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return &FieldError{fmt.Sprintf("auth.oauth.scopes[%d]", i), `must be printable ASCII without spaces, '"' or '\' (RFC 6749 §3.3)`}
			}
		}
		if s == "" {
			return &FieldError{fmt.Sprintf("auth.oauth.scopes[%d]", i), "is empty"}
		}
	}
	return nil
}

// Redacted returns a copy with every secret replaced by "****": the
// password, the bearer token, every static header value (any of them may be
// a key) and the OAuth client secret. An empty secret stays empty, so the
// copy still shows which are set. Usernames, header names, the token URL,
// client ID, scopes and audience are kept. Use it for API responses and logs.
func (c Credentials) Redacted() Credentials {
	r := Credentials{Username: c.Username, Password: mask(c.Password), Token: mask(c.Token)}
	if c.Headers != nil {
		r.Headers = make([]Header, len(c.Headers))
		for i, h := range c.Headers {
			r.Headers[i] = Header{Name: h.Name, Value: mask(h.Value)}
		}
	}
	if c.OAuth != nil {
		o := *c.OAuth
		o.ClientSecret = mask(o.ClientSecret)
		o.Scopes = append([]string(nil), o.Scopes...)
		r.OAuth = &o
	}
	return r
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}

// clone returns a deep copy, so a holder is unaffected by the caller's
// later changes to slices or the OAuth struct.
func (c Credentials) clone() Credentials {
	c.Headers = append([]Header(nil), c.Headers...)
	if c.OAuth != nil {
		o := *c.OAuth
		o.Scopes = append([]string(nil), o.Scopes...)
		c.OAuth = &o
	}
	return c
}

// The printing methods below show only redacted values, so that
// fmt.Print, %v, %#v and slog (whose JSON handler would otherwise marshal
// every field) never show a secret. Each converts to a method-less twin
// type, so formatting does not recurse.
type (
	redactedCredentials Credentials
	redactedOAuth       OAuth
	redactedHeader      Header
)

// String returns the Redacted credentials, for %v and %s.
func (c Credentials) String() string { return fmt.Sprintf("%+v", redactedCredentials(c.Redacted())) }

// GoString returns the Redacted credentials, for %#v.
func (c Credentials) GoString() string { return fmt.Sprintf("%#v", redactedCredentials(c.Redacted())) }

// LogValue makes slog log the Redacted credentials.
func (c Credentials) LogValue() slog.Value { return slog.AnyValue(redactedCredentials(c.Redacted())) }

func (o OAuth) redacted() redactedOAuth {
	o.ClientSecret = mask(o.ClientSecret)
	return redactedOAuth(o)
}

// String returns the OAuth settings with the client secret redacted.
func (o OAuth) String() string { return fmt.Sprintf("%+v", o.redacted()) }

// GoString returns the OAuth settings with the client secret redacted.
func (o OAuth) GoString() string { return fmt.Sprintf("%#v", o.redacted()) }

// LogValue makes slog log the OAuth settings with the client secret redacted.
func (o OAuth) LogValue() slog.Value { return slog.AnyValue(o.redacted()) }

// String returns the header with its value redacted.
func (h Header) String() string { return fmt.Sprintf("%+v", redactedHeader{h.Name, mask(h.Value)}) }

// GoString returns the header with its value redacted.
func (h Header) GoString() string { return fmt.Sprintf("%#v", redactedHeader{h.Name, mask(h.Value)}) }

// LogValue makes slog log the header with its value redacted.
func (h Header) LogValue() slog.Value { return slog.AnyValue(redactedHeader{h.Name, mask(h.Value)}) }
