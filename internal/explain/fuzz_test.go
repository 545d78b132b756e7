package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

// FuzzRun: whatever the input, explain answers every non-blank line with one
// JSON line, an answer or an error naming the line, and never stops early.
func FuzzRun(f *testing.F) {
	f.Add(`{"request_headers": {"X-Tenant-Id": "acme"}, "upstream": {"auth_type": "bearer"}}`)
	f.Add(`{"request_headers": [["X-A", "1"], ["x-a", "2"]], "global_allowlist": ["X-A"], "settings": {"enable_header_passthrough": true}}`)
	f.Add("{\"base_headers\": {\"A\": \"\\u0000\"}}\n\n{\"upstream\": {\"auth_type\": \"jwt\"}}\n[1]\n{")
	f.Add(`{"upstream": {"passthrough_headers": "X-A, X-B"}, "request_headers": {"x-b": "v\r\n"}}`)
	f.Fuzz(func(t *testing.T, input string) {
		var out, errOut bytes.Buffer
		failed, err := Run(context.Background(), strings.NewReader(input), &out, &errOut, passthrough.DefaultSettings(), FormatJSON)
		if err != nil {
			t.Fatalf("Run stopped: %v", err)
		}
		want := 0
		for _, line := range strings.Split(strings.ReplaceAll(input, "\r\n", "\n"), "\n") {
			if len(bytes.TrimSpace([]byte(line))) > 0 {
				want++
			}
		}
		dec := json.NewDecoder(&out)
		got, errors := 0, 0
		for {
			var answer struct {
				Headers   *json.RawMessage `json:"headers"`
				Decisions *json.RawMessage `json:"decisions"`
				Line      int              `json:"line"`
				Error     string           `json:"error"`
			}
			if err := dec.Decode(&answer); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("output is not JSON lines: %v", err)
			}
			got++
			switch {
			case answer.Error != "":
				errors++
				if answer.Line < 1 || !strings.HasPrefix(answer.Error, "line ") {
					t.Errorf("error %q does not name its line", answer.Error)
				}
			case answer.Headers == nil || answer.Decisions == nil:
				t.Errorf("answer %d lacks headers or decisions", got)
			}
		}
		if got != want || errors != failed {
			t.Errorf("%d answers (%d errors) for %d non-blank lines (%d failed)", got, errors, want, failed)
		}
	})
}
