package campaign

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the campaign's model of header passthrough, written from
// the text of the spec (/work/shared/spec/passthrough.md, "spec" below)
// and from nothing else: it does not import or mirror the engine in
// passthrough/. Given a round's settings, the allowlists in force, an
// upstream's base headers and auth type, and the client's headers as Go's
// HTTP server parsed them, it says exactly which headers (name and value)
// the upstream must receive.

// modelSettings are the settings of spec §1 that the model reads.
type modelSettings struct {
	EnableHeaderPassthrough    bool     // ENABLE_HEADER_PASSTHROUGH
	EnableOverwriteBaseHeaders bool     // ENABLE_OVERWRITE_BASE_HEADERS
	DefaultPassthroughHeaders  []string // DEFAULT_PASSTHROUGH_HEADERS, parsed
	Source                     string   // PASSTHROUGH_HEADERS_SOURCE: env, db or merge
	ProxyUserHeader            string   // PROXY_USER_HEADER
	AuthHeaderName             string   // AUTH_HEADER_NAME
	AuthRequired               bool     // AUTH_REQUIRED: mcpgate reads AUTH_HEADER_NAME
}

// header is one header name and value.
type header struct{ Name, Value string }

// headerSet is a list of headers in which no two names differ only in
// case (spec §2.4): set replaces a name whatever its casing.
type headerSet []header

func (s headerSet) index(name string) int {
	return slices.IndexFunc(s, func(h header) bool { return strings.EqualFold(h.Name, name) })
}

func (s headerSet) has(name string) bool { return s.index(name) >= 0 }

func (s headerSet) get(name string) (string, bool) {
	if i := s.index(name); i >= 0 {
		return s[i].Value, true
	}
	return "", false
}

// set writes name: value; a later write replaces an earlier one whatever
// its casing (spec §2.4).
func (s *headerSet) set(name, value string) {
	s.del(name)
	*s = append(*s, header{name, value})
}

func (s *headerSet) del(name string) {
	*s = slices.DeleteFunc(*s, func(h header) bool { return strings.EqualFold(h.Name, name) })
}

// modelRequest is the client's request as the gateway's handlers see it:
// names are case-insensitive and, when a name repeats, the later value
// wins (spec §2, "Inputs").
type modelRequest map[string]string // lower-case name → value

// newModelRequest folds Go's parsed header (canonical name → values in
// order) into the spec's view of it.
func newModelRequest(parsed map[string][]string) modelRequest {
	r := modelRequest{}
	for name, values := range parsed {
		if len(values) > 0 {
			r[strings.ToLower(name)] = values[len(values)-1]
		}
	}
	return r
}

// effectiveAllowlist is spec §3: an upstream's own list wins when set, nil
// (unset) inherits the global list, an empty list forwards nothing. The
// global list follows PASSTHROUGH_HEADERS_SOURCE. stored is the stored
// global list (nil: no row; on first start with the switch on and source
// not env the row is created from the valid env names, spec §3, which the
// caller models by passing them).
func effectiveAllowlist(s modelSettings, stored []string, storedExists bool, upstream []string, upstreamSet bool) []string {
	if upstreamSet {
		return upstream
	}
	switch s.Source {
	case "env":
		return s.DefaultPassthroughHeaders
	case "db":
		if storedExists && len(stored) > 0 {
			return stored
		}
		return s.DefaultPassthroughHeaders
	case "merge":
		// env entries in env order, then stored-only entries in stored
		// order, de-duplicated case-insensitively, the stored spelling
		// winning.
		var out []string
		for _, e := range s.DefaultPassthroughHeaders {
			if slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, e) }) {
				continue
			}
			spelling := e
			if i := slices.IndexFunc(stored, func(st string) bool { return strings.EqualFold(st, e) }); i >= 0 {
				spelling = stored[i]
			}
			out = append(out, spelling)
		}
		for _, st := range stored {
			if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, st) }) {
				out = append(out, st)
			}
		}
		return out
	}
	panic("model: unknown source " + s.Source)
}

// seededGlobal is the stored row created on first start (spec §3): the
// valid names of the env list, when the switch is on and source is not env.
func seededGlobal(s modelSettings) (names []string, exists bool) {
	if !s.EnableHeaderPassthrough || s.Source == "env" {
		return nil, false
	}
	for _, n := range s.DefaultPassthroughHeaders {
		if validName.MatchString(n) {
			names = append(names, n)
		}
	}
	return names, true
}

// validName is the strict name rule of spec §2.3 (D1): Go's $ without the
// m flag matches only at the very end of the text, so a name with a
// trailing newline does not pass.
var validName = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// neverForwarded is the never-forwarded set of spec §2.3, for name.
func neverForwarded(s modelSettings, name string) bool {
	n := strings.ToLower(name)
	switch n {
	// the protocol denylist
	case "content-type", "content-length", "host", "transfer-encoding", "connection", "keep-alive",
		"proxy-connection", "te", "trailer", "upgrade":
		return true
	// MCP per-hop headers (D11)
	case "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "x-mcp-session-id":
		return true
	}
	if strings.HasPrefix(n, "mcp-param-") {
		return true
	}
	if strings.EqualFold(name, s.ProxyUserHeader) {
		return true
	}
	// mcpgate's own credential (D4)
	return s.AuthRequired && strings.EqualFold(name, s.AuthHeaderName)
}

// sanitize is "Sanitising a value" in spec §2: remove every CR and LF; cut
// to 4096 code points; remove every character below 0x20 except TAB, and
// DEL; trim Unicode white space at both ends.
func sanitize(v string) string {
	v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
	if n := 0; len(v) > 4096 {
		for i := range v { // i steps by code point
			if n == 4096 {
				v = v[:i]
				break
			}
			n++
		}
	}
	// Byte by byte, so that bytes that are not UTF-8 (obs-text a client
	// may send) stay as they are: the spec removes characters, it does not
	// re-encode (strings.Map would turn them into U+FFFD).
	var b strings.Builder
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if !((r < 0x20 && r != '\t') || r == 0x7f) {
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	return strings.TrimFunc(b.String(), unicode.IsSpace)
}

// upstreamAuth is what the model knows of an upstream (spec §2 "Inputs"):
// its auth type and its base headers (spec vocabulary: credentials and
// static headers mcpgate itself puts on the request).
type upstreamAuth struct {
	Type string // none, bearer, basic or headers
	Base headerSet
}

// expectedHeaders is spec §2, steps 1-4, for one call: the headers the
// upstream must receive, base headers included, apart from the headers
// mcpgate adds for its own use (see ownHeaders in check_test.go).
func expectedHeaders(s modelSettings, allowlist []string, up upstreamAuth, req modelRequest) headerSet {
	// D4: the header mcpgate authenticated the client with is its own
	// credential; it is never forwarded, under any name (spec §2.2 "only
	// when mcpgate itself did not consume", §2.3 never-forwarded set). The
	// model drops it from the request before any rule reads it.
	if s.AuthRequired {
		delete(req, strings.ToLower(s.AuthHeaderName))
	}

	// Step 1: a copy of the base headers.
	out := slices.Clone(up.Base)

	// Step 2: upstream authorization, always on.
	if v := req["x-upstream-authorization"]; v != "" {
		if sv := sanitize(v); sv != "" {
			out.set("Authorization", sv) // replaces the base one whatever its casing
		}
	} else if up.Type == "none" && !out.has("Authorization") {
		if v, ok := req["authorization"]; ok {
			if sv := sanitize(v); sv != "" {
				out.set("Authorization", sv)
			}
		}
	}

	// Step 3: the allowlist, only with the switch on.
	if !s.EnableHeaderPassthrough {
		return out
	}
	base := slices.Clone(out) // the base set after step 2
	for _, name := range allowlist {
		if !validName.MatchString(name) || neverForwarded(s, name) {
			continue
		}
		v, ok := req[strings.ToLower(name)]
		if !ok || v == "" {
			continue
		}
		sv := sanitize(v)
		if sv == "" {
			continue
		}
		if base.has(name) && !s.EnableOverwriteBaseHeaders {
			continue
		}
		if strings.EqualFold(name, "Authorization") && (up.Type == "basic" || up.Type == "bearer") {
			continue
		}
		out.set(name, sv) // step 4: a later write replaces an earlier one
	}
	return out
}
