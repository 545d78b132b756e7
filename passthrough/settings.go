package passthrough

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Source says where the global allowlist comes from (spec §3).
type Source string

// The values of PASSTHROUGH_HEADERS_SOURCE.
const (
	// SourceEnv uses DEFAULT_PASSTHROUGH_HEADERS; the database is not read.
	SourceEnv Source = "env"
	// SourceDB uses the stored list when it exists and is non-empty, else the env list.
	SourceDB Source = "db"
	// SourceMerge uses the env list followed by the stored one, de-duplicated.
	SourceMerge Source = "merge"
)

// Settings are the passthrough settings of spec §1. The environment names are
// ContextForge's, so an existing deployment keeps its configuration.
type Settings struct {
	// EnableHeaderPassthrough (ENABLE_HEADER_PASSTHROUGH) is the master switch
	// for allowlist copying. X-Upstream-Authorization works without it.
	EnableHeaderPassthrough bool
	// EnableOverwriteBaseHeaders (ENABLE_OVERWRITE_BASE_HEADERS) lets an
	// allowlisted header replace a base header.
	EnableOverwriteBaseHeaders bool
	// DefaultPassthroughHeaders (DEFAULT_PASSTHROUGH_HEADERS) is the env allowlist.
	// Names are kept as given; invalid ones are skipped, with a warning, when used.
	DefaultPassthroughHeaders []string
	// Source (PASSTHROUGH_HEADERS_SOURCE) picks the global allowlist.
	Source Source
	// GlobalConfigCacheTTL (GLOBAL_CONFIG_CACHE_TTL, seconds) bounds how long a
	// resolved global allowlist is reused (deviation D9: ContextForge ignores it).
	GlobalConfigCacheTTL time.Duration
	// ProxyUserHeader (PROXY_USER_HEADER) is mcpgate's internal identity
	// header; it is never forwarded from a client.
	ProxyUserHeader string
	// AuthHeaderName (AUTH_HEADER_NAME) carries the client's credential to mcpgate.
	AuthHeaderName string
	// AuthenticatesClients says whether mcpgate reads AuthHeaderName to
	// authenticate clients. When it does, that header is mcpgate's credential
	// and never reaches an upstream (deviation D4). The gateway sets it from
	// AUTH_REQUIRED; it is true unless switched off.
	AuthenticatesClients bool
}

// Setting names, as read from the environment (spec §1).
const (
	EnvEnableHeaderPassthrough    = "ENABLE_HEADER_PASSTHROUGH"
	EnvEnableOverwriteBaseHeaders = "ENABLE_OVERWRITE_BASE_HEADERS"
	EnvDefaultPassthroughHeaders  = "DEFAULT_PASSTHROUGH_HEADERS"
	EnvPassthroughHeadersSource   = "PASSTHROUGH_HEADERS_SOURCE"
	EnvGlobalConfigCacheTTL       = "GLOBAL_CONFIG_CACHE_TTL"
	EnvProxyUserHeader            = "PROXY_USER_HEADER"
	EnvAuthHeaderName             = "AUTH_HEADER_NAME"
)

// SettingDoc describes one setting for help texts and flags.
type SettingDoc struct {
	Name    string // environment name
	Default string // default, as it would be written in the environment
	Usage   string
	Bool    bool // a switch: true or false
}

// SettingDocs lists the settings ParseSettings reads, in the order of spec §1.
func SettingDocs() []SettingDoc {
	return []SettingDoc{
		{EnvEnableHeaderPassthrough, "false", "copy allowlisted client headers to upstreams", true},
		{EnvEnableOverwriteBaseHeaders, "false", "let allowlisted headers replace base headers", true},
		{EnvDefaultPassthroughHeaders, `["X-Tenant-Id","X-Trace-Id"]`, fmt.Sprintf("env allowlist: a JSON array or a comma list, at most %d names of at most %d bytes", MaxAllowlistNames, MaxNameLength), false},
		{EnvPassthroughHeadersSource, "db", "global allowlist source: env, db or merge", false},
		{EnvGlobalConfigCacheTTL, "60", "seconds a resolved global allowlist is cached", false},
		{EnvProxyUserHeader, "X-Authenticated-User", "internal identity header, never forwarded; not Authorization nor a name refused for AUTH_HEADER_NAME", false},
		{EnvAuthHeaderName, "Authorization", "header carrying the client's credential to mcpgate; not X-Upstream-Authorization(-*), an MCP per-hop or connection header, a header mcpgate sets, nor PROXY_USER_HEADER", false},
	}
}

// DefaultSettings returns the settings of spec §1 with nothing configured.
func DefaultSettings() Settings {
	return Settings{
		DefaultPassthroughHeaders: []string{"X-Tenant-Id", "X-Trace-Id"},
		Source:                    SourceDB,
		GlobalConfigCacheTTL:      60 * time.Second,
		ProxyUserHeader:           "X-Authenticated-User",
		AuthHeaderName:            "Authorization",
		AuthenticatesClients:      true,
	}
}

// Lookup returns a setting's raw value and whether it is set at all.
// os.LookupEnv is one; a layered lookup over flags, the environment and a
// .env file is another.
type Lookup func(name string) (value string, ok bool)

// SettingError names a setting whose value cannot be used.
type SettingError struct {
	Name   string // environment name, e.g. PASSTHROUGH_HEADERS_SOURCE
	Value  string
	Reason string // what is accepted
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("setting %s=%q: %s", e.Name, e.Value, e.Reason)
}

// ParseSettings reads the settings of spec §1 through lookup, starting from
// DefaultSettings. An unset or empty value keeps the default. An unusable
// value is a *SettingError naming the setting and what it accepts.
func ParseSettings(lookup Lookup) (Settings, error) {
	s := DefaultSettings()
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	var err error
	if v, ok := get(EnvEnableHeaderPassthrough); ok {
		if s.EnableHeaderPassthrough, err = ParseBool(EnvEnableHeaderPassthrough, v); err != nil {
			return s, err
		}
	}
	if v, ok := get(EnvEnableOverwriteBaseHeaders); ok {
		if s.EnableOverwriteBaseHeaders, err = ParseBool(EnvEnableOverwriteBaseHeaders, v); err != nil {
			return s, err
		}
	}
	// An empty DEFAULT_PASSTHROUGH_HEADERS keeps the default, as in
	// ContextForge; "[]" sets an empty list.
	if v, ok := get(EnvDefaultPassthroughHeaders); ok {
		if s.DefaultPassthroughHeaders, err = ParseList(v); err != nil {
			return s, &SettingError{EnvDefaultPassthroughHeaders, v, err.Error()}
		}
		if err := CheckListBounds(s.DefaultPassthroughHeaders); err != nil {
			return s, &SettingError{EnvDefaultPassthroughHeaders, shorten(v), boundsReason(err)}
		}
	}
	if v, ok := get(EnvPassthroughHeadersSource); ok {
		switch src := Source(strings.ToLower(v)); src {
		case SourceEnv, SourceDB, SourceMerge:
			s.Source = src
		default:
			return s, &SettingError{EnvPassthroughHeadersSource, v, "must be one of env, db, merge"}
		}
	}
	if v, ok := get(EnvGlobalConfigCacheTTL); ok {
		secs, perr := strconv.ParseFloat(v, 64)
		if perr != nil || !(secs >= 0 && secs <= 1e9) || strings.ContainsAny(v, "_xXpPnNiI") {
			return s, &SettingError{EnvGlobalConfigCacheTTL, v, "must be a number of seconds, 0 or more"}
		}
		s.GlobalConfigCacheTTL = time.Duration(secs * float64(time.Second))
	}
	if v, ok := get(EnvProxyUserHeader); ok {
		s.ProxyUserHeader = v
	}
	if v, ok := get(EnvAuthHeaderName); ok {
		s.AuthHeaderName = v
	}
	return s, s.CheckHeaderNames()
}

// CheckHeaderNames reports, as a *SettingError, a PROXY_USER_HEADER or
// AUTH_HEADER_NAME the engine cannot use: not a header name, or a name it
// already treats in its own way. ParseSettings calls it; a program that builds
// Settings itself should too.
//
// Such a name would mix mcpgate's own headers with what clients send
// upstreams: AUTH_HEADER_NAME=X-Upstream-Authorization, say, would turn every
// client's mcpgate token into the upstream's Authorization (spec §2.2,
// deviation D4). The refused names are X-Upstream-Authorization and the
// X-Upstream-Authorization-* family, reserved for credentials meant for
// upstreams; the fixed never-forwarded set of spec §2.3 (connection and
// framing headers, the MCP per-hop headers, the headers mcpgate sets for its
// own use); for PROXY_USER_HEADER also Authorization, the upstream's
// credential header; and the same name for both settings.
func (s Settings) CheckHeaderNames() error {
	for _, n := range []struct{ setting, value string }{
		{EnvProxyUserHeader, s.ProxyUserHeader}, {EnvAuthHeaderName, s.AuthHeaderName},
	} {
		if !ValidName(n.value) {
			return &SettingError{n.setting, n.value, "must be a header name of letters, digits and hyphens"}
		}
		if why := reservedHeaderName(n.value); why != "" {
			return &SettingError{n.setting, n.value, "must not be " + why}
		}
	}
	if sameName(s.ProxyUserHeader, authorization) {
		return &SettingError{EnvProxyUserHeader, s.ProxyUserHeader,
			"must not be Authorization: that is where an upstream's credential goes (spec §2.2); pick a header of its own such as X-Authenticated-User"}
	}
	if sameName(s.AuthHeaderName, s.ProxyUserHeader) {
		return &SettingError{EnvAuthHeaderName, s.AuthHeaderName,
			"must differ from " + EnvProxyUserHeader + ": the client's credential and mcpgate's identity header are two headers"}
	}
	return nil
}

// reservedHeaderName says why a header name cannot name one of mcpgate's own
// headers (AUTH_HEADER_NAME, PROXY_USER_HEADER), or "" when it can.
func reservedHeaderName(name string) string {
	lower := lowerASCII(name)
	switch {
	case lower == "x-upstream-authorization":
		return "X-Upstream-Authorization: its value is sent to upstreams as their Authorization (spec §2.2), so mcpgate's credential would reach every upstream; use Authorization or a header of its own"
	case strings.HasPrefix(lower, "x-upstream-authorization-"):
		return "an X-Upstream-Authorization-* header: these are reserved for credentials meant for upstreams"
	}
	switch fixedNeverForwarded(lower) {
	case ReasonProtocolHeader:
		return "a header of the HTTP connection or of message framing (spec §2.3)"
	case ReasonMCPHeader:
		return "an MCP per-hop header, which each hop sets for itself (spec §2.3)"
	case ReasonInternalHeader:
		return "a header mcpgate sets or withholds for its own use (spec §2.3)"
	}
	return ""
}

// ParseBool reads the switch named name the way every mcpgate switch is read:
// true, 1, yes or on; false, 0, no or off; in any case. Anything else is a
// *SettingError naming the setting.
func ParseBool(name, v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, &SettingError{name, v, "must be true or false (or 1/0, yes/no, on/off)"}
}

// ParseList reads a list of header names written either as a JSON array of
// strings or as a comma list (deviation D8). Parts are trimmed and empty ones
// dropped. Text that starts with "[" must be a valid JSON array of strings;
// anything else is a comma list. Names are not validated here: an invalid name
// is skipped, with a warning, where the list is used (spec §2.3).
func ParseList(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") {
		var names []string
		if err := json.Unmarshal([]byte(v), &names); err != nil {
			return nil, fmt.Errorf(`must be a JSON array of strings like ["X-Tenant-Id"] or a comma list like X-Tenant-Id,X-Trace-Id`)
		}
		return compact(names), nil
	}
	return compact(strings.Split(v, ",")), nil
}

func compact(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// DecodeList reads a list of header names as the admin API receives one,
// such as an upstream's passthrough_headers: JSON null (for an upstream,
// inherit the global list: nil), an array of strings, or a string holding a
// comma list or a JSON array, as ContextForge accepts. An empty array is an
// empty list: the upstream forwards nothing (spec §3). Errors say what is
// wrong, not where: the caller names the field.
func DecodeList(raw json.RawMessage) (*[]string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("not valid JSON (%v); want null, a list of header names or a comma-separated string", err)
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		names, err := ParseList(v)
		if err != nil {
			return nil, err
		}
		return &names, nil
	case []any:
		names := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("entry %d is %s, want a header name", i, jsonKind(e))
			}
			if s = strings.TrimSpace(s); s != "" {
				names = append(names, s)
			}
		}
		return &names, nil
	default:
		return nil, fmt.Errorf("got %s, want null, a list of header names or a comma-separated string", jsonKind(v))
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	default:
		return "an object"
	}
}
