package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestInstructionsAreBounded: however many upstreams give however long
// instructions, each quote is at most 2 KiB and the quotes together at most
// 16 KiB; the servers left out are counted, and every server is still
// named.
func TestInstructionsAreBounded(t *testing.T) {
	var routes []*Route
	for i := range 12 {
		routes = append(routes, &Route{Name: fmt.Sprintf("s%02d", i), Slug: fmt.Sprintf("s%02d", i),
			Catalogue: Catalogue{Instructions: strings.Repeat("ü", 3000)}})
	}
	// A 1900-byte text first: after it and seven 2 KiB quotes, 148 bytes
	// are left, too little to quote a ninth in, which is left out rather
	// than cut to a stub.
	routes[0].Catalogue.Instructions = strings.Repeat("a", 1900)
	text := federatedInstructions(routes, "-")
	if !utf8.ValidString(text) {
		t.Fatal("the instructions are not valid UTF-8")
	}
	quotes := strings.Split(text, "as it gave them:\n")[1:]
	if len(quotes) != 8 {
		t.Errorf("%d servers quoted, want 8 (the 1900-byte one and seven of 2 KiB)", len(quotes))
	}
	total := 0
	for _, q := range quotes {
		q, _, _ = strings.Cut(q, "\n")
		if len(q) > maxUpstreamInstructions || len(q) < 1900 {
			t.Errorf("a quote of %d bytes, more than %d", len(q), maxUpstreamInstructions)
		}
		total += len(q)
	}
	if total > maxInstructions {
		t.Errorf("the quotes are %d bytes together, more than %d", total, maxInstructions)
	}
	if !strings.HasSuffix(text, "(The instructions of 4 more servers are left out, for length.)") {
		t.Errorf("the text does not count the servers left out; it ends %q", text[len(text)-80:])
	}
	for _, r := range routes {
		if !strings.Contains(text, "- "+r.Name+": prefix") {
			t.Errorf("%s is not named", r.Name)
		}
	}
}
