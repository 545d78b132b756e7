package passthrough

import (
	"fmt"
	"log/slog"
)

// Action is what happened to a header.
type Action uint8

// Actions.
const (
	Forwarded Action = iota + 1
	Skipped
)

func (a Action) String() string {
	switch a {
	case Forwarded:
		return "forwarded"
	case Skipped:
		return "skipped"
	}
	return "unknown"
}

// Reason is why a header was forwarded or skipped. Its String form is a stable
// code for logs, metrics labels and scripts; new reasons may be added, the
// existing codes do not change.
type Reason uint8

// Reasons, with the spec rule each one comes from.
const (
	_ Reason = iota

	// Forwarded.
	ReasonAllowlisted           // spec §2.3: on the allowlist and present
	ReasonOverwroteBase         // spec §2.3: allowlisted and replaced a base header (ENABLE_OVERWRITE_BASE_HEADERS)
	ReasonUpstreamAuthorization // spec §2.2: X-Upstream-Authorization became Authorization
	ReasonClientAuthorization   // spec §2.2: client Authorization forwarded to an auth_type none upstream

	// Skipped.
	ReasonPassthroughDisabled    // spec §2.3: ENABLE_HEADER_PASSTHROUGH is off
	ReasonInvalidName            // spec §2.3: name fails ^[A-Za-z0-9-]+$
	ReasonProtocolHeader         // spec §2.3: protocol-level header (Host, Content-Length, ...)
	ReasonMCPHeader              // spec §2.3: MCP per-hop header (Mcp-Session-Id, ...), D11
	ReasonInternalHeader         // spec §2.3: PROXY_USER_HEADER or a header mcpgate sets for its own use
	ReasonClientCredential       // spec §2.2-2.3: mcpgate's own client credential (AUTH_HEADER_NAME), D4
	ReasonNotInRequest           // spec §2.3: the request lacks it
	ReasonEmptyValue             // spec §2.3: the request has it with an empty value
	ReasonEmptyAfterSanitising   // spec §2.3: the value was nothing but removed characters
	ReasonBaseConflict           // spec §2.3: names a base header and overwriting is off
	ReasonUpstreamAuthConflict   // spec §2.3: Authorization to a basic or bearer upstream
	ReasonTokenExchange          // spec §2.2: the upstream's credential comes from OAuth token exchange
	ReasonReplacedByLaterEntry   // spec §2.4: a later allowlist entry with the same name, in any case, replaced it
	ReasonBaseAuthorizationIsSet // spec §2.2: client Authorization not forwarded, a base Authorization exists
	ReasonClientCredentialValue  // spec §2.2-2.3: its value is mcpgate's own client credential, under another name, D4
	ReasonOwnAuthorization       // spec §2.2: the client's Authorization is what mcpgate authenticated it with, D4
)

// String returns the stable reason code.
func (r Reason) String() string {
	switch r {
	case ReasonAllowlisted:
		return "allowlisted"
	case ReasonOverwroteBase:
		return "overwrote_base_header"
	case ReasonUpstreamAuthorization:
		return "x_upstream_authorization"
	case ReasonClientAuthorization:
		return "client_authorization_auth_none"
	case ReasonPassthroughDisabled:
		return "passthrough_disabled"
	case ReasonInvalidName:
		return "invalid_name"
	case ReasonProtocolHeader:
		return "protocol_header"
	case ReasonMCPHeader:
		return "mcp_header"
	case ReasonInternalHeader:
		return "internal_header"
	case ReasonClientCredential:
		return "client_credential"
	case ReasonNotInRequest:
		return "not_in_request"
	case ReasonEmptyValue:
		return "empty_value"
	case ReasonEmptyAfterSanitising:
		return "empty_after_sanitising"
	case ReasonBaseConflict:
		return "base_header_conflict"
	case ReasonUpstreamAuthConflict:
		return "upstream_auth_conflict"
	case ReasonTokenExchange:
		return "token_exchange"
	case ReasonReplacedByLaterEntry:
		return "replaced_by_later_entry"
	case ReasonBaseAuthorizationIsSet:
		return "base_authorization_set"
	case ReasonClientCredentialValue:
		return "client_credential_value"
	case ReasonOwnAuthorization:
		return "client_authorization_is_mcpgate_credential"
	}
	return "unknown"
}

// lastReason is the highest Reason value.
const lastReason = ReasonOwnAuthorization

// Reasons returns every reason, for documentation and metric pre-registration.
func Reasons() []Reason {
	out := make([]Reason, 0, lastReason)
	for r := Reason(1); r <= lastReason; r++ {
		out = append(out, r)
	}
	return out
}

// Level is the log level a decision deserves (spec §2.3): skips that point at
// a configuration problem or a suspicious request are warnings; a header that
// is simply absent, everything forwarded, and the client's Authorization
// withheld because mcpgate authenticated the client with it (step 2 has no
// warning: every authenticated client's every call would log one), is debug.
func (r Reason) Level() slog.Level {
	switch r {
	case ReasonInvalidName, ReasonProtocolHeader, ReasonMCPHeader, ReasonInternalHeader,
		ReasonClientCredential, ReasonClientCredentialValue, ReasonEmptyAfterSanitising, ReasonBaseConflict,
		ReasonUpstreamAuthConflict, ReasonReplacedByLaterEntry:
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// Decision says what happened to one allowlisted or special header.
type Decision struct {
	// Header is the name as configured (the allowlist spelling), or
	// X-Upstream-Authorization / Authorization for the special rules.
	Header string
	Action Action
	Reason Reason
}

// Message is a sentence for a person. It is built on demand so that
// computing headers costs no formatting. Where ContextForge logs the same
// event, the wording follows its log line so existing log searches still match.
// up is the upstream the decision was made for (Result.Upstream).
func (d Decision) Message(up Upstream) string {
	on := ""
	if up.Name != "" {
		on = " on upstream " + up.Name
	}
	h := d.Header
	switch d.Reason {
	case ReasonAllowlisted:
		return fmt.Sprintf("Added passthrough header: %s", h)
	case ReasonOverwroteBase:
		return fmt.Sprintf("Added passthrough header: %s, replacing the base header (ENABLE_OVERWRITE_BASE_HEADERS)", h)
	case ReasonUpstreamAuthorization:
		return "Renamed X-Upstream-Authorization to Authorization for upstream passthrough"
	case ReasonClientAuthorization:
		return "Passing through client Authorization header (auth_type=none)"
	case ReasonPassthroughDisabled:
		return fmt.Sprintf("Header %s not forwarded: header passthrough is disabled via ENABLE_HEADER_PASSTHROUGH", h)
	case ReasonInvalidName:
		return fmt.Sprintf("Invalid header name %q - skipping (must match pattern: ^[A-Za-z0-9-]+$)", h)
	case ReasonProtocolHeader:
		return fmt.Sprintf("Refusing inbound passthrough of protocol-level header '%s'", h)
	case ReasonMCPHeader:
		return fmt.Sprintf("Refusing inbound passthrough of MCP per-hop header '%s': each hop has its own", h)
	case ReasonInternalHeader:
		return fmt.Sprintf("Refusing inbound passthrough of internal header '%s': mcpgate sets it for its own use", h)
	case ReasonClientCredential:
		return fmt.Sprintf("Refusing inbound passthrough of '%s': it carries the client's credential for mcpgate, not for the upstream", h)
	case ReasonNotInRequest:
		return fmt.Sprintf("Header %s not found in request headers, skipping passthrough", h)
	case ReasonEmptyValue:
		return fmt.Sprintf("Header %s is empty in the request, skipping passthrough", h)
	case ReasonEmptyAfterSanitising:
		return fmt.Sprintf("Header %s value became empty after sanitization - skipping", h)
	case ReasonBaseConflict:
		return fmt.Sprintf("Skipping %s header passthrough as it conflicts with pre-defined headers", h)
	case ReasonUpstreamAuthConflict:
		return fmt.Sprintf("Skipping %s header passthrough due to %s auth configuration%s", h, up.AuthType, on)
	case ReasonTokenExchange:
		return fmt.Sprintf("Skipping %s header passthrough: the upstream's credential comes from OAuth token exchange%s", h, on)
	case ReasonReplacedByLaterEntry:
		return fmt.Sprintf("Header %s replaced by a later allowlist entry with the same name (names are case-insensitive)", h)
	case ReasonBaseAuthorizationIsSet:
		return fmt.Sprintf("Client %s not forwarded: the upstream already has a base Authorization header", h)
	case ReasonClientCredentialValue:
		return fmt.Sprintf("Refusing inbound passthrough of '%s': its value is the client's credential for mcpgate (the AUTH_HEADER_NAME header), not the upstream's", h)
	case ReasonOwnAuthorization:
		return fmt.Sprintf("Client %s not forwarded: mcpgate authenticated the client with it; an upstream credential goes in X-Upstream-Authorization", h)
	}
	return fmt.Sprintf("%s %s (%s)", h, d.Action, d.Reason)
}
