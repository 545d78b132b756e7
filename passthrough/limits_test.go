package passthrough

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCheckListBounds(t *testing.T) {
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("X-%d", i)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		list  []string
		entry int // -2: no error
	}{
		{"empty", nil, -2},
		{"at the limits", append(names(MaxAllowlistNames-1), strings.Repeat("A", MaxNameLength)), -2},
		{"one name too many", names(MaxAllowlistNames + 1), -1},
		{"one byte too long", []string{"X-Ok", strings.Repeat("A", MaxNameLength+1)}, 1},
	} {
		err := CheckListBounds(c.list)
		var be *BoundsError
		switch {
		case c.entry == -2 && err != nil:
			t.Errorf("%s: %v, want no error", c.name, err)
		case c.entry != -2 && (!errors.As(err, &be) || be.Entry != c.entry):
			t.Errorf("%s: %v, want a BoundsError for entry %d", c.name, err, c.entry)
		}
	}
}

func TestParseSettingsBoundsDefaultList(t *testing.T) {
	long := strings.Repeat("A", MaxNameLength+1)
	_, err := ParseSettings(func(name string) (string, bool) {
		if name == EnvDefaultPassthroughHeaders {
			return "X-Ok," + long, true
		}
		return "", false
	})
	var se *SettingError
	if !errors.As(err, &se) || se.Name != EnvDefaultPassthroughHeaders || !strings.Contains(se.Reason, "entry 1") || len(se.Value) > 300 {
		t.Errorf("ParseSettings with a %d-byte name: %v; want a SettingError naming %s and entry 1, its value shortened", len(long), err, EnvDefaultPassthroughHeaders)
	}
}

// TestProblemsAreWhatComputeDecidesForTheList: an allowlist's problems are
// exactly the list-only decisions Compute makes for it, whatever the
// request holds.
func TestProblemsAreWhatComputeDecidesForTheList(t *testing.T) {
	p := NewPolicy(settingsOn())
	a := p.Compile([]string{"X-Tenant-Id", "bad name", "Content-Length", "Mcp-Session-Id", "X-Authenticated-User", "x-tenant-id", "X-TENANT-ID"})
	want := []Decision{
		{"bad name", Skipped, ReasonInvalidName},
		{"Content-Length", Skipped, ReasonProtocolHeader},
		{"Mcp-Session-Id", Skipped, ReasonMCPHeader},
		{"X-Authenticated-User", Skipped, ReasonInternalHeader},
		{"X-Tenant-Id", Skipped, ReasonReplacedByLaterEntry},
		{"x-tenant-id", Skipped, ReasonReplacedByLaterEntry},
	}
	if got := a.Problems(); !slices.Equal(got, want) {
		t.Errorf("Problems() = %v\nwant %v", got, want)
	}
	res := p.Compute(Call{Request: hdr("X-Tenant-Id", "acme", "Content-Length", "3"), Allowlist: a})
	for _, d := range want {
		if !slices.Contains(res.Decisions, d) {
			t.Errorf("Compute did not decide %v", d)
		}
	}
	if got := p.Compile([]string{"X-Tenant-Id"}).Problems(); got != nil {
		t.Errorf("a sound list has problems %v", got)
	}
	if got := (*Allowlist)(nil).Problems(); got != nil {
		t.Errorf("a nil list has problems %v", got)
	}
}
