package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

// sampleCase is a case as a user would write it.
const sampleCase = `{"request_headers": {"X-Tenant-Id": "acme", "X-Upstream-Authorization": "Bearer up"}, "upstream": {"name": "crm", "auth_type": "bearer"}}` + "\n"

// testEnviron is a process environment holding vars and naming an empty
// .env file, so that no .env file of the working directory is read.
func testEnviron(t *testing.T, vars ...string) func(string) (string, bool) {
	t.Helper()
	envFile := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{config.EnvEnvFile: envFile}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// runMcpgate runs the command line and returns its exit status and outputs.
func runMcpgate(t *testing.T, stdin string, environ func(string) (string, bool), args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, environ)
	return code, out.String(), errOut.String()
}

func TestExplainAnswersACase(t *testing.T) {
	code, stdout, stderr := runMcpgate(t, sampleCase, testEnviron(t, "ENABLE_HEADER_PASSTHROUGH=true"), "explain")
	want := `{"headers":{"Authorization":"Bearer up","X-Tenant-Id":"acme"},"decisions":[` +
		`{"header":"X-Upstream-Authorization","action":"forwarded","reason":"x_upstream_authorization","message":"Renamed X-Upstream-Authorization to Authorization for upstream passthrough"},` +
		`{"header":"X-Tenant-Id","action":"forwarded","reason":"allowlisted","message":"Added passthrough header: X-Tenant-Id"},` +
		`{"header":"X-Trace-Id","action":"skipped","reason":"not_in_request","message":"Header X-Trace-Id not found in request headers, skipping passthrough"}]}` + "\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %q\nwant exit 0, stdout:\n%s", code, stdout, stderr, want)
	}
}

func TestExplainFlagBeatsEnvironment(t *testing.T) {
	environ := testEnviron(t, "ENABLE_HEADER_PASSTHROUGH=true", "DEFAULT_PASSTHROUGH_HEADERS=X-Tenant-Id")
	code, stdout, _ := runMcpgate(t, sampleCase, environ, "explain", "--enable-header-passthrough=false")
	if code != exitOK || !strings.Contains(stdout, `"reason":"passthrough_disabled"`) || strings.Contains(stdout, `"X-Tenant-Id":"acme"`) {
		t.Errorf("exit %d, stdout %s; want X-Tenant-Id skipped, passthrough disabled", code, stdout)
	}
}

func TestExplainTableFormat(t *testing.T) {
	code, stdout, _ := runMcpgate(t, sampleCase, testEnviron(t), "explain", "--format", "table", "--enable-header-passthrough")
	for _, want := range []string{"case 1\n", "    Authorization: Bearer up\n", "HEADER", "x_upstream_authorization", "not_in_request"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, stdout)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d, want 0", code)
	}
}

func TestExitStatus(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.env")
	tests := []struct {
		name    string
		args    []string
		stdin   string
		environ []string
		code    int
		stderr  []string // substrings of stderr
		stdout  []string // substrings of stdout
	}{
		{"bad PASSTHROUGH_HEADERS_SOURCE", []string{"explain"}, sampleCase, []string{"PASSTHROUGH_HEADERS_SOURCE=everywhere"},
			exitUsage, []string{"mcpgate: ", "PASSTHROUGH_HEADERS_SOURCE", `"everywhere"`, "env, db, merge"}, nil},
		{"bad setting flag", []string{"explain", "--passthrough-headers-source=x"}, sampleCase, nil,
			exitUsage, []string{"PASSTHROUGH_HEADERS_SOURCE", "env, db, merge", "flag --passthrough-headers-source"}, nil},
		{"bad AUTH_REQUIRED", []string{"explain"}, sampleCase, []string{"AUTH_REQUIRED=maybe"},
			exitUsage, []string{"AUTH_REQUIRED", "true or false"}, nil},
		{"missing explicit env file", []string{"explain", "--env-file", missing}, sampleCase, nil,
			exitUsage, []string{"mcpgate: ", missing}, nil},
		{"unknown flag", []string{"explain", "--enable-everything"}, sampleCase, nil,
			exitUsage, []string{"flag provided but not defined", "Usage: mcpgate explain"}, nil},
		{"bad format", []string{"explain", "--format=xml"}, sampleCase, nil,
			exitUsage, []string{`unknown format "xml"`}, nil},
		{"extra argument", []string{"explain", "cases.jsonl"}, sampleCase, nil,
			exitUsage, []string{`unexpected argument "cases.jsonl"`}, nil},
		{"unknown command", []string{"serve-all"}, "", nil,
			exitUsage, []string{`unknown command "serve-all"`, "Commands:"}, nil},
		{"no command", nil, "", nil,
			exitUsage, []string{"Usage: mcpgate <command>"}, nil},
		{"a case that cannot be read", []string{"explain"}, sampleCase + `{"upstream": {"auth_type": "jwt"}}` + "\n", nil,
			exitFailed, []string{"line 2: field upstream.auth_type"}, []string{`{"line":2,"error":"line 2: field upstream.auth_type`}},
		{"help", []string{"help"}, "", nil,
			exitOK, nil, []string{"explain", "version"}},
		{"-h", []string{"-h"}, "", nil,
			exitOK, nil, []string{"Commands:"}},
		{"explain -h", []string{"explain", "-h"}, "", nil,
			exitOK, nil, []string{"Usage: mcpgate explain"}},
		{"version", []string{"version"}, "", nil,
			exitOK, nil, []string{"mcpgate "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMcpgate(t, tt.stdin, testEnviron(t, tt.environ...), tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

func TestExplainHelpListsEverySetting(t *testing.T) {
	_, stdout, _ := runMcpgate(t, "", testEnviron(t), "help", "explain")
	for _, d := range config.SettingDocs() {
		for _, want := range []string{"--" + config.FlagName(d.Name), d.Name, d.Default} {
			if !strings.Contains(stdout, want) {
				t.Errorf("help lacks %q", want)
			}
		}
	}
}
