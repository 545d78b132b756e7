package registry

import "testing"

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"crm": "crm", "Alpha": "alpha", "My CRM (prod)": "my-crm-prod", "a--b": "a-b", "  x  ": "x", "Ärzte": "rzte", "!!!": "",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
