package upstream

import "testing"

func TestSetTopLevel(t *testing.T) {
	got := setTopLevel([]byte(`{"progressToken": 42, "progress": 1, "_meta": {"progressToken": 42}}`), "progressToken", []byte(`"tok"`))
	if want := `{"progressToken": "tok", "progress": 1, "_meta": {"progressToken": 42}}`; string(got) != want {
		t.Errorf("setTopLevel = %s, want %s", got, want)
	}
}
