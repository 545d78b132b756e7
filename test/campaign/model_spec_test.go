package campaign

import (
	"slices"
	"strings"
	"testing"
)

// The model's own tests: cases worked out by hand from the spec's text, so
// that a slip in the model shows here rather than as a false violation (or
// a missed one) in the campaign.

func TestModelSanitises(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a\r\nb", "ab"},             // CR and LF removed
		{" \u00a0x\t\u3000", "x"},    // Unicode white space trimmed at both ends
		{"a\tb", "a\tb"},             // TAB kept inside
		{"a\x00b\x1fc\x7fd", "abcd"}, // control characters and DEL (D2) removed
		{"caf\xe9", "caf\xe9"},       // a byte that is not UTF-8 stays as it is
		{"\u00a0\u2003", ""},         // white space only
		{strings.Repeat("é", 5000), strings.Repeat("é", 4096)}, // code points, not bytes
	} {
		if got := sanitize(c.in); got != c.want {
			t.Errorf("sanitize(%q) = %q, want %q", shorten(c.in), shorten(got), shorten(c.want))
		}
	}
}

func TestModelEffectiveAllowlist(t *testing.T) {
	env := modelSettings{Source: "env", DefaultPassthroughHeaders: []string{"X-Tenant-Id", "X-Trace-Id"}}
	db, merge := env, env
	db.Source, merge.Source = "db", "merge"
	for _, c := range []struct {
		name         string
		s            modelSettings
		stored       []string
		storedExists bool
		own          optionalList
		want         []string
	}{
		{"an upstream's own list wins", db, []string{"A"}, true, optionalList{Set: true, List: []string{"B"}}, []string{"B"}},
		{"an empty own list forwards nothing", db, []string{"A"}, true, optionalList{Set: true, List: []string{}}, []string{}},
		{"null inherits the global list (D5)", db, []string{"A"}, true, optionalList{}, []string{"A"}},
		{"db: an empty stored list falls back to env", db, []string{}, true, optionalList{}, env.DefaultPassthroughHeaders},
		{"env: the database is not read", env, []string{"A"}, true, optionalList{}, env.DefaultPassthroughHeaders},
		{"merge: env order, then stored-only, stored spelling wins", merge, []string{"B", "x-trace-id"}, true, optionalList{},
			[]string{"X-Tenant-Id", "x-trace-id", "B"}},
	} {
		got := effectiveAllowlist(c.s, c.stored, c.storedExists, c.own.List, c.own.Set)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestModelExpectedHeaders(t *testing.T) {
	on := modelSettings{EnableHeaderPassthrough: true, ProxyUserHeader: "X-Authenticated-User", AuthHeaderName: "Authorization", AuthRequired: true}
	open := on
	open.AuthRequired = false
	overwrite := on
	overwrite.EnableOverwriteBaseHeaders = true
	off := on
	off.EnableHeaderPassthrough = false
	bearer := upstreamAuth{Type: "bearer", Base: headerSet{{"Authorization", "Bearer up"}}}
	keyed := upstreamAuth{Type: "headers", Base: headerSet{{"x-api-key", "base"}}}
	none := upstreamAuth{Type: "none"}
	for _, c := range []struct {
		name string
		s    modelSettings
		list []string
		up   upstreamAuth
		req  modelRequest
		want headerSet
	}{
		{"X-Upstream-Authorization replaces the base Authorization, even with the switch off (§2.2)", off, nil,
			upstreamAuth{Type: "headers", Base: headerSet{{"authorization", "base"}}},
			modelRequest{"x-upstream-authorization": " Bearer c "}, headerSet{{"Authorization", "Bearer c"}}},
		{"auth none: the client's Authorization goes when mcpgate did not read it (§2.2)", open, nil, none,
			modelRequest{"authorization": "Bearer c"}, headerSet{{"Authorization", "Bearer c"}}},
		{"auth none: mcpgate's own credential never goes (D4)", on, []string{"Authorization"}, none,
			modelRequest{"authorization": "Bearer gateway"}, nil},
		{"an allowlisted base header keeps the base value without overwrite (§2.3)", on, []string{"X-Api-Key"}, keyed,
			modelRequest{"x-api-key": "client"}, headerSet{{"x-api-key", "base"}}},
		{"with overwrite, the client's value replaces it, spelled as in the allowlist", overwrite, []string{"X-API-KEY"}, keyed,
			modelRequest{"x-api-key": "client"}, headerSet{{"X-API-KEY", "client"}}},
		{"Authorization is not copied to a bearer upstream, even with overwrite", overwrite, []string{"Authorization"}, bearer,
			modelRequest{"authorization": "c"}, headerSet{{"Authorization", "Bearer up"}}},
		{"never-forwarded, invalid, empty and absent names are skipped", open,
			[]string{"Content-Type", "Mcp-Session-Id", "Mcp-Param-X", "X-Authenticated-User", "X-Tenant-Id\n", "X_Odd", "X-Empty", "X-Absent", "X-Tenant-Id"},
			none, modelRequest{"content-type": "c", "mcp-session-id": "s", "mcp-param-x": "p", "x-authenticated-user": "u",
				"x-tenant-id": "t", "x_odd": "o", "x-empty": ""}, headerSet{{"X-Tenant-Id", "t"}}},
		{"a value that sanitises to nothing is skipped", on, []string{"X-Tenant-Id"}, none,
			modelRequest{"x-tenant-id": "\u00a0"}, nil},
		{"a later case variant replaces an earlier one (§2.4)", on, []string{"x-tenant-id", "X-TENANT-ID"}, none,
			modelRequest{"x-tenant-id": "t"}, headerSet{{"X-TENANT-ID", "t"}}},
	} {
		got := expectedHeaders(c.s, c.list, c.up, c.req)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
