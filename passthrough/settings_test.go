package passthrough

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := kv[name]
		return v, ok
	}
}

func TestParseSettingsDefaults(t *testing.T) {
	s, err := ParseSettings(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	if s.EnableHeaderPassthrough || s.EnableOverwriteBaseHeaders || s.Source != SourceDB ||
		s.GlobalConfigCacheTTL != time.Minute || s.ProxyUserHeader != "X-Authenticated-User" ||
		s.AuthHeaderName != "Authorization" || !s.AuthenticatesClients ||
		!slices.Equal(s.DefaultPassthroughHeaders, want.DefaultPassthroughHeaders) {
		t.Errorf("defaults = %+v, want %+v", s, want)
	}
}

func TestParseSettingsValues(t *testing.T) {
	s, err := ParseSettings(env(map[string]string{
		EnvEnableHeaderPassthrough:    "TRUE",
		EnvEnableOverwriteBaseHeaders: "yes",
		EnvDefaultPassthroughHeaders:  " X-A , ,X-B ",
		EnvPassthroughHeadersSource:   "merge",
		EnvGlobalConfigCacheTTL:       "1.5",
		EnvProxyUserHeader:            "X-Identity",
		EnvAuthHeaderName:             "X-Api-Key",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.EnableHeaderPassthrough || !s.EnableOverwriteBaseHeaders || s.Source != SourceMerge ||
		s.GlobalConfigCacheTTL != 1500*time.Millisecond || s.ProxyUserHeader != "X-Identity" ||
		s.AuthHeaderName != "X-Api-Key" || !slices.Equal(s.DefaultPassthroughHeaders, []string{"X-A", "X-B"}) {
		t.Errorf("got %+v", s)
	}
}

// TestParseSettingsErrorsNameTheSetting: an unusable value stops start-up
// with a message naming the setting and what it accepts (spec §1).
func TestParseSettingsErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name, value, accepts string
	}{
		{EnvPassthroughHeadersSource, "database", "env, db, merge"},
		{EnvEnableHeaderPassthrough, "maybe", "true or false"},
		{EnvEnableOverwriteBaseHeaders, "2", "true or false"},
		{EnvGlobalConfigCacheTTL, "-1", "seconds"},
		{EnvGlobalConfigCacheTTL, "soon", "seconds"},
		{EnvGlobalConfigCacheTTL, "NaN", "seconds"},
		{EnvGlobalConfigCacheTTL, "1_000", "seconds"},
		{EnvGlobalConfigCacheTTL, "Inf", "seconds"},
		{EnvDefaultPassthroughHeaders, "[X-A, X-B]", "JSON array"},
		{EnvDefaultPassthroughHeaders, `["X-A", 3]`, "JSON array"},
		{EnvProxyUserHeader, "X Identity", "letters, digits and hyphens"},
		{EnvAuthHeaderName, "Auth:x", "letters, digits and hyphens"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := ParseSettings(env(map[string]string{tt.name: tt.value}))
			var se *SettingError
			if !errors.As(err, &se) || se.Name != tt.name {
				t.Fatalf("error = %v, want a SettingError naming %s", err, tt.name)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.accepts) {
				t.Errorf("message %q should name %s and say %q", msg, tt.name, tt.accepts)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`["X-A","X-B"]`, []string{"X-A", "X-B"}},
		{`[]`, []string{}},
		{`X-A,X-B`, []string{"X-A", "X-B"}},
		{` X-A , , X-B ,`, []string{"X-A", "X-B"}},
		{`[" X-A ", ""]`, []string{"X-A"}},
		{`{"a": 1}`, []string{`{"a": 1}`}}, // not an array: a comma list, as ContextForge
	}
	for _, tt := range tests {
		got, err := ParseList(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestDecodeListKeepsNullApartFromEmpty: null inherits, [] forwards nothing
// (spec §3, D5).
func TestDecodeListKeepsNullApartFromEmpty(t *testing.T) {
	if got, err := DecodeList(json.RawMessage(`null`)); err != nil || got != nil {
		t.Errorf("null = %v, %v; want nil (inherit)", got, err)
	}
	if got, err := DecodeList(json.RawMessage(`[]`)); err != nil || got == nil || len(*got) != 0 {
		t.Errorf("[] = %v, %v; want an empty list", got, err)
	}
	for _, bad := range []string{`12`, `true`, `{"a":1}`, `["X-A", 1]`, `[`} {
		if _, err := DecodeList(json.RawMessage(bad)); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("DecodeList(%s) error = %v, want one saying what is wanted", bad, err)
		}
	}
}

func TestSettingDocsCoverEverySetting(t *testing.T) {
	var names []string
	for _, d := range SettingDocs() {
		names = append(names, d.Name)
		if d.Usage == "" || d.Default == "" {
			t.Errorf("%s lacks usage or default", d.Name)
		}
		// Each documented default parses to the built-in default.
		got, err := ParseSettings(env(map[string]string{d.Name: d.Default}))
		if err != nil {
			t.Errorf("%s default %q does not parse: %v", d.Name, d.Default, err)
			continue
		}
		def := DefaultSettings()
		if !slices.Equal(got.DefaultPassthroughHeaders, def.DefaultPassthroughHeaders) ||
			got.Source != def.Source || got.GlobalConfigCacheTTL != def.GlobalConfigCacheTTL {
			t.Errorf("%s: documented default %q differs from the built-in one", d.Name, d.Default)
		}
	}
	want := []string{EnvEnableHeaderPassthrough, EnvEnableOverwriteBaseHeaders, EnvDefaultPassthroughHeaders,
		EnvPassthroughHeadersSource, EnvGlobalConfigCacheTTL, EnvProxyUserHeader, EnvAuthHeaderName}
	if !slices.Equal(names, want) {
		t.Errorf("documented %v, want %v", names, want)
	}
}
