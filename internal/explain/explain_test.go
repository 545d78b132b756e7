package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/passthrough"
)

// enabled is the settings most tests start from: the defaults with header
// passthrough switched on, so the env list is X-Tenant-Id, X-Trace-Id.
func enabled() passthrough.Settings {
	s := passthrough.DefaultSettings()
	s.EnableHeaderPassthrough = true
	return s
}

// run runs explain over input and returns its output, its messages and the
// number of failed lines.
func run(t *testing.T, base passthrough.Settings, format Format, input string) (out, errOut string, failed int) {
	t.Helper()
	var o, e bytes.Buffer
	failed, err := Run(context.Background(), strings.NewReader(input), &o, &e, base, format)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return o.String(), e.String(), failed
}

// answer is one line of FormatJSON output.
type answer struct {
	Headers   map[string]string `json:"headers"`
	Decisions []decision        `json:"decisions"`
	Line      int               `json:"line"`
	Error     string            `json:"error"`
}

type decision struct {
	Header, Action, Reason, Message string
}

// answers runs explain in JSON mode and decodes each output line.
func answers(t *testing.T, base passthrough.Settings, input string) ([]answer, string) {
	t.Helper()
	out, errOut, _ := run(t, base, FormatJSON, input)
	var as []answer
	for l := range strings.Lines(out) {
		var a answer
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("output line %q is not JSON: %v", l, err)
		}
		as = append(as, a)
	}
	return as, errOut
}

// one runs a single case that must succeed and returns its answer.
func one(t *testing.T, base passthrough.Settings, input string) answer {
	t.Helper()
	as, errOut := answers(t, base, input)
	if len(as) != 1 || as[0].Error != "" || errOut != "" {
		t.Fatalf("got %+v, errors %q; want one answer", as, errOut)
	}
	return as[0]
}

func TestRequestHeadersAsObjectOrPairs(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"object", `{"request_headers": {"X-Tenant-Id": "acme", "X-Trace-Id": "t1", "User-Agent": "curl"}}`},
		{"pairs", `{"request_headers": [["X-Tenant-Id", "acme"], ["X-Trace-Id", "t1"], ["User-Agent", "curl"]]}`},
		{"lower-case names", `{"request_headers": {"x-tenant-id": "acme", "x-trace-id": "t1"}}`},
	}
	want := map[string]string{"X-Tenant-Id": "acme", "X-Trace-Id": "t1"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := one(t, enabled(), tt.input).Headers; !reflect.DeepEqual(got, want) {
				t.Errorf("headers = %v, want %v", got, want)
			}
		})
	}
}

func TestLaterDuplicateRequestHeaderWins(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"object, case variant", `{"request_headers": {"X-Tenant-Id": "first", "x-tenant-id": "second"}}`},
		{"object, same spelling", `{"request_headers": {"X-Tenant-Id": "first", "X-Tenant-Id": "second"}}`},
		{"pairs", `{"request_headers": [["x-TENANT-id", "first"], ["X-Tenant-Id", "second"]]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := one(t, enabled(), tt.input).Headers["X-Tenant-Id"]; got != "second" {
				t.Errorf("X-Tenant-Id = %q, want the later value", got)
			}
		})
	}
}

func TestOutputHeadersKeepResultOrder(t *testing.T) {
	// Base headers in their order, then forwarded ones in allowlist order;
	// a Go map would sort them.
	out, _, _ := run(t, enabled(), FormatJSON,
		`{"request_headers": {"X-Trace-Id": "t1", "X-Tenant-Id": "acme"},`+
			` "base_headers": [["Z-Base", "1"], ["A-Base", "2"]], "global_allowlist": ["X-Trace-Id", "X-Tenant-Id"]}`)
	want := `{"headers":{"Z-Base":"1","A-Base":"2","X-Trace-Id":"t1","X-Tenant-Id":"acme"},"decisions":[`
	if !strings.HasPrefix(out, want) {
		t.Errorf("output\n%s\nwant prefix\n%s", out, want)
	}
}

func TestDecisionsCarryReasonCodeAndMessage(t *testing.T) {
	a := one(t, enabled(), `{"request_headers": {"X-Tenant-Id": "acme"}, "upstream": {"name": "crm", "auth_type": "none"}}`)
	want := []decision{
		{"X-Tenant-Id", "forwarded", "allowlisted", "Added passthrough header: X-Tenant-Id"},
		{"X-Trace-Id", "skipped", "not_in_request", "Header X-Trace-Id not found in request headers, skipping passthrough"},
	}
	if !reflect.DeepEqual(a.Decisions, want) {
		t.Errorf("decisions =\n%+v, want\n%+v", a.Decisions, want)
	}
}

func TestNullPassthroughHeadersInheritsEmptyForwardsNothing(t *testing.T) {
	tests := []struct {
		name     string
		upstream string
		want     map[string]string
	}{
		{"null inherits the global list", `{"passthrough_headers": null}`, map[string]string{"X-Tenant-Id": "acme"}},
		{"absent inherits the global list", `{"name": "crm"}`, map[string]string{"X-Tenant-Id": "acme"}},
		{"empty list forwards nothing", `{"passthrough_headers": []}`, map[string]string{}},
		{"own list replaces the global one", `{"passthrough_headers": ["X-Other"]}`, map[string]string{"X-Other": "o"}},
		{"own list as a comma string", `{"passthrough_headers": "X-Other, X-Tenant-Id"}`, map[string]string{"X-Other": "o", "X-Tenant-Id": "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := one(t, enabled(), `{"request_headers": {"X-Tenant-Id": "acme", "X-Other": "o"}, "upstream": `+tt.upstream+`}`)
			if !reflect.DeepEqual(a.Headers, tt.want) {
				t.Errorf("headers = %v, want %v", a.Headers, tt.want)
			}
		})
	}
}

func TestAbsentGlobalAllowlistUsesEnvList(t *testing.T) {
	base := enabled()
	base.DefaultPassthroughHeaders = []string{"X-From-Env"}
	request := `"request_headers": {"X-From-Env": "e", "X-Given": "g"}`
	tests := []struct {
		name  string
		input string
		want  map[string]string
	}{
		{"absent", `{` + request + `}`, map[string]string{"X-From-Env": "e"}},
		{"null", `{` + request + `, "global_allowlist": null}`, map[string]string{"X-From-Env": "e"}},
		{"given", `{` + request + `, "global_allowlist": ["X-Given"]}`, map[string]string{"X-Given": "g"}},
		{"given empty", `{` + request + `, "global_allowlist": []}`, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := one(t, base, tt.input).Headers; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("headers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCaseSettingsOverrideLoadedSettings(t *testing.T) {
	off := passthrough.DefaultSettings() // passthrough off, clients authenticated
	tests := []struct {
		name  string
		input string
		want  map[string]string
	}{
		{"loaded settings: passthrough off",
			`{"request_headers": {"X-Tenant-Id": "acme"}}`, map[string]string{}},
		{"case switches passthrough on",
			`{"request_headers": {"X-Tenant-Id": "acme"}, "settings": {"enable_header_passthrough": true}}`,
			map[string]string{"X-Tenant-Id": "acme"}},
		{"base header kept without overwrite",
			`{"request_headers": {"X-Tenant-Id": "acme"}, "base_headers": {"X-Tenant-Id": "base"}, "settings": {"enable_header_passthrough": true}}`,
			map[string]string{"X-Tenant-Id": "base"}},
		{"base header replaced with overwrite",
			`{"request_headers": {"X-Tenant-Id": "acme"}, "base_headers": {"X-Tenant-Id": "base"}, "settings": {"enable_header_passthrough": true, "enable_overwrite_base_headers": true}}`,
			map[string]string{"X-Tenant-Id": "acme"}},
		{"client credential kept when mcpgate authenticates clients",
			`{"request_headers": {"Authorization": "Bearer mcpgate"}, "upstream": {"auth_type": "none"}}`,
			map[string]string{}},
		{"client Authorization forwarded when mcpgate does not",
			`{"request_headers": {"Authorization": "Bearer up"}, "upstream": {"auth_type": "none"}, "settings": {"authenticates_clients": false}}`,
			map[string]string{"Authorization": "Bearer up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := one(t, off, tt.input).Headers; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("headers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBadInputIsAnErrorNamingTheField(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // the whole message, after "line 1: "
	}{
		{"unknown top-level field",
			`{"request_header": {}}`,
			`unknown field "request_header" (want request_headers, base_headers, global_allowlist, upstream, settings)`},
		{"unknown settings field",
			`{"settings": {"enable_passthrough": true}}`,
			`unknown field "settings.enable_passthrough" (want enable_header_passthrough, enable_overwrite_base_headers, authenticates_clients)`},
		{"unknown upstream field",
			`{"upstream": {"authtype": "none"}}`,
			`unknown field "upstream.authtype" (want name, auth_type, token_exchange, passthrough_headers)`},
		{"bad auth_type",
			`{"upstream": {"auth_type": "jwt"}}`,
			`field upstream.auth_type: got "jwt", want one of none, basic, bearer, authheaders, oauth`},
		{"empty auth_type",
			`{"upstream": {"auth_type": ""}}`,
			`field upstream.auth_type: got "", want one of none, basic, bearer, authheaders, oauth`},
		{"auth_type not a string",
			`{"upstream": {"auth_type": 1}}`,
			`field upstream.auth_type: got a number, want a string`},
		{"request headers not an object",
			`{"request_headers": "X-A: 1"}`,
			`field request_headers: got a string, want an object or a list of [name, value] pairs`},
		{"header value not a string",
			`{"request_headers": {"X-A": 1}}`,
			`field request_headers.X-A: got a number, want a string`},
		{"pair too long",
			`{"base_headers": [["X-A", "1", "2"]]}`,
			`field base_headers[0]: want a [name, value] pair, got more than two entries`},
		{"pair not a list",
			`{"base_headers": [{"X-A": "1"}]}`,
			`field base_headers[0]: got an object, want a [name, value] pair`},
		{"switch not a boolean",
			`{"settings": {"enable_header_passthrough": "true"}}`,
			`field settings.enable_header_passthrough: got a string, want true or false`},
		{"list entry not a name",
			`{"global_allowlist": ["X-A", 2]}`,
			`field global_allowlist: entry 1 is a number, want a header name`},
		{"field given twice",
			`{"upstream": null, "upstream": {}}`,
			`field upstream: given twice`},
		{"not an object",
			`["X-A"]`,
			`got a list, want a JSON object`},
		{"text after the object",
			`{} {}`,
			`unexpected text after the case's closing brace`},
		{"invalid JSON",
			`{"request_headers": {"X-A": "1",}}`,
			`invalid JSON: invalid character '}' looking for beginning of object key string`},
		{"truncated JSON",
			`{"request_headers": {"X-A": "1"`,
			`field request_headers: invalid JSON: unexpected EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, errOut := answers(t, enabled(), tt.input)
			want := "line 1: " + tt.want
			if len(as) != 1 || as[0].Line != 1 || as[0].Error != want {
				t.Errorf("got %+v\nwant error %q", as, want)
			}
			if errOut != want+"\n" {
				t.Errorf("stderr = %q, want %q", errOut, want+"\n")
			}
		})
	}
}

func TestErrorLineDoesNotStopLaterLines(t *testing.T) {
	input := `{"request_headers": {"X-Tenant-Id": "a"}}
{"upstream": {"auth_type": "jwt"}}

{"request_headers": {"X-Tenant-Id": "c"}}
`
	out, errOut, failed := run(t, enabled(), FormatJSON, input)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d output lines, want 3 (the blank line is skipped):\n%s", len(lines), out)
	}
	if want := `{"line":2,"error":"line 2: field upstream.auth_type: got \"jwt\", want one of none, basic, bearer, authheaders, oauth"}`; lines[1] != want {
		t.Errorf("line 2 = %s\nwant     %s", lines[1], want)
	}
	if !strings.Contains(lines[2], `"X-Tenant-Id":"c"`) {
		t.Errorf("line 3 = %s, want the answer to input line 4", lines[2])
	}
	if failed != 1 || !strings.HasPrefix(errOut, "line 2: field upstream.auth_type") {
		t.Errorf("failed = %d, stderr = %q; want 1 and the message", failed, errOut)
	}
}

func TestBlankLinesAreSkipped(t *testing.T) {
	out, _, failed := run(t, enabled(), FormatJSON, "\n  \r\n{}\n\t\n{}")
	if n := strings.Count(out, "\n"); n != 2 || failed != 0 {
		t.Errorf("got %d lines, %d failed, want 2 lines:\n%s", n, failed, out)
	}
}

func TestTableFormatShowsHeadersAndDecisions(t *testing.T) {
	input := `{"request_headers": {"X-Tenant-Id": "acme", "Host": "h"}, "base_headers": {"Content-Type": "application/json"}, "global_allowlist": ["X-Tenant-Id", "Host", "X-Trace-Id"]}
{"upstream": {"auth_type": "jwt"}}`
	out, errOut, failed := run(t, enabled(), FormatTable, input)
	want := `case 1
  headers:
    Content-Type: application/json
    X-Tenant-Id: acme
  decisions:
    HEADER       ACTION     REASON           MESSAGE
    X-Tenant-Id  forwarded  allowlisted      Added passthrough header: X-Tenant-Id
    Host         skipped    protocol_header  Refusing inbound passthrough of protocol-level header 'Host'
    X-Trace-Id   skipped    not_in_request   Header X-Trace-Id not found in request headers, skipping passthrough

case 2
  error: line 2: field upstream.auth_type: got "jwt", want one of none, basic, bearer, authheaders, oauth
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if failed != 1 || !strings.HasPrefix(errOut, "line 2: ") {
		t.Errorf("failed = %d, stderr = %q", failed, errOut)
	}
}

func TestTableFormatQuotesControlCharacters(t *testing.T) {
	out, _, _ := run(t, enabled(), FormatTable, `{"base_headers": {"X-Base": "a\nb"}}`)
	if !strings.Contains(out, `X-Base: "a\nb"`) {
		t.Errorf("output:\n%s\nwant the value quoted", out)
	}
}

func TestLongLinesAreRead(t *testing.T) {
	long := strings.Repeat("v", 3<<20) // longer than any bufio default
	a := one(t, enabled(), `{"request_headers": {"X-Tenant-Id": "acme"}, "base_headers": {"X-Big": "`+long+`"}}`)
	if len(a.Headers["X-Big"]) != len(long) || a.Headers["X-Tenant-Id"] != "acme" {
		t.Errorf("long line not read whole")
	}
}

func TestUnknownFormatIsAnError(t *testing.T) {
	if _, err := Run(context.Background(), strings.NewReader("{}"), io.Discard, io.Discard, enabled(), "xml"); err == nil {
		t.Error("Run with format xml: no error")
	}
	var f Format
	if err := f.Set("xml"); err == nil || !strings.Contains(err.Error(), "json or table") {
		t.Errorf("Set(xml) = %v, want an error listing the formats", err)
	}
}

// failingWriter fails every write, like a closed pipe.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteErrorStopsTheRun(t *testing.T) {
	for _, format := range []Format{FormatJSON, FormatTable} {
		_, err := Run(context.Background(), bytes.NewReader(generatedCases(2000)), failingWriter{}, io.Discard, enabled(), format)
		if err == nil || !strings.Contains(err.Error(), "broken pipe") {
			t.Errorf("%s: err = %v, want the write error", format, err)
		}
	}
}

func TestCancelledContextStopsTheRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, strings.NewReader("{}\n"), io.Discard, io.Discard, enabled(), FormatJSON); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestJSONStringsAreEscapedLikeEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 𝄞", "invalid \xff utf-8 \xc3", "line\u2028sep\u2029", "<html>&amp;",
	} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q encodes as %s, not JSON: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q round-trips as %q, encoding/json as %q", s, back, wantBack)
		}
	}
}

// generatedCases returns n varied cases, one per line.
func generatedCases(n int) []byte {
	auth := []string{"none", "basic", "bearer", "authheaders", "oauth"}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"request_headers": {"X-Tenant-Id": "tenant-%d", "X-Trace-Id": "trace-%d", "Authorization": "Bearer t%d", "User-Agent": "test/1.0", "x-tenant-id": "later-%d"}, `+
			`"base_headers": {"Content-Type": "application/json", "Authorization": "Basic dXA="}, `+
			`"upstream": {"name": "up-%d", "auth_type": %q, "passthrough_headers": %s}, `+
			`"settings": {"enable_overwrite_base_headers": %t}}`+"\n",
			i, i, i, i, i%7, auth[i%len(auth)], []string{"null", `["X-Tenant-Id", "Authorization"]`, "[]"}[i%3], i%2 == 0)
	}
	return b.Bytes()
}

func TestHundredThousandCases(t *testing.T) {
	if testing.Short() {
		t.Skip("100 000 cases")
	}
	const n = 100_000
	var out, errOut bytes.Buffer
	failed, err := Run(context.Background(), bytes.NewReader(generatedCases(n)), &out, &errOut, enabled(), FormatJSON)
	if err != nil || failed != 0 || errOut.Len() != 0 {
		t.Fatalf("Run: failed %d, err %v, stderr %.200s", failed, err, errOut.String())
	}
	if lines := bytes.Count(out.Bytes(), []byte("\n")); lines != n {
		t.Errorf("got %d output lines, want %d", lines, n)
	}
}

func BenchmarkExplain(b *testing.B) {
	const perRun = 1000
	input := generatedCases(perRun)
	base := enabled()
	b.SetBytes(int64(len(input)))
	runs := 0
	for b.Loop() {
		if failed, err := Run(context.Background(), bytes.NewReader(input), io.Discard, io.Discard, base, FormatJSON); err != nil || failed != 0 {
			b.Fatalf("Run: failed %d, err %v", failed, err)
		}
		runs++
	}
	b.ReportMetric(float64(runs*perRun)/b.Elapsed().Seconds(), "cases/s")
}
