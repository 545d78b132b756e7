package config

import (
	"strings"
	"testing"
)

func TestDotenvSyntax(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string // value of KEY
	}{
		{"plain value", "KEY=value", "value"},
		{"unquoted value is trimmed", "KEY =   value  ", "value"},
		{"export prefix", "export KEY=value", "value"},
		{"export prefix with tab", "export\tKEY=value", "value"},
		{"inline comment after a blank", "KEY=value # comment", "value"},
		{"inline comment after a tab", "KEY=value\t# comment", "value"},
		{"hash without a blank is data", "KEY=a#b", "a#b"},
		{"value starting with hash is data", "KEY=#b", "#b"},
		{"only a comment is empty", "KEY= # comment", ""},
		{"empty value", "KEY=", ""},
		{"single quotes are literal", `KEY='a \n "b" # c'`, `a \n "b" # c`},
		{"single quotes then comment", `KEY='a b' # c`, "a b"},
		{"double quotes keep blanks", `KEY="  a b  "`, "  a b  "},
		{"double quote newline escape", `KEY="a\nb"`, "a\nb"},
		{"double quote quote escape", `KEY="say \"hi\""`, `say "hi"`},
		{"double quote backslash escape", `KEY="a\\b"`, `a\b`},
		{"other backslashes are kept", `KEY="C:\data"`, `C:\data`},
		{"hash inside double quotes is data", `KEY="a # b" # c`, "a # b"},
		{"JSON array unquoted", `KEY=["X-A","X-B"]`, `["X-A","X-B"]`},
		{"JSON array single quoted", `KEY='["X-A", "X-B"]'`, `["X-A", "X-B"]`},
		{"CRLF line ending", "KEY=value\r\n", "value"},
		{"equals sign in value", "KEY=a=b", "a=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := parseDotenv(".env", strings.NewReader(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			if e := entries[0]; e.key != "KEY" || e.value != tt.want {
				t.Errorf("got %s=%q, want KEY=%q", e.key, e.value, tt.want)
			}
		})
	}
}

func TestDotenvNamesMayHoldDotsAndUnderscores(t *testing.T) {
	entries, err := parseDotenv(".env", strings.NewReader("_app.DB_URL2=x"))
	if err != nil || len(entries) != 1 || entries[0].key != "_app.DB_URL2" {
		t.Fatalf("got %v, %v", entries, err)
	}
}

func TestDotenvSkipsBlankAndCommentLines(t *testing.T) {
	in := "\ufeff# a comment\n\n   \n  # indented comment\nA=1\n\nB=2"
	entries, err := parseDotenv(".env", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []dotenvEntry{{"A", "1", 5}, {"B", "2", 7}}
	if len(entries) != len(want) {
		t.Fatalf("got %v, want %v", entries, want)
	}
	for i := range want {
		if entries[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, entries[i], want[i])
		}
	}
}

func TestDotenvMalformedLineNamesFileAndLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no equals sign", "A=1\n# fine\nNOT A SETTING\n", "parse app.env line 3: want KEY=VALUE"},
		{"export without assignment", "export A\n", "parse app.env line 1: want KEY=VALUE"},
		{"empty name", "=value\n", `parse app.env line 1: invalid name ""`},
		{"name with a blank", "A B=1\n", `parse app.env line 1: invalid name "A B"`},
		{"name starting with a digit", "1A=1\n", `parse app.env line 1: invalid name "1A"`},
		{"unclosed single quote", "A=1\nB='open\n", "parse app.env line 2: B: single-quoted value has no closing quote"},
		{"unclosed double quote", `B="open\"`, "parse app.env line 1: B: double-quoted value has no closing quote"},
		{"text after closing quote", `B="a" b`, "parse app.env line 1: B: unexpected text after the closing quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDotenv("app.env", strings.NewReader(tt.in))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestDotenvErrorDoesNotRepeatTheValue(t *testing.T) {
	_, err := parseDotenv(".env", strings.NewReader(`JWT_SECRET="s3cret`))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error = %v, want one without the value", err)
	}
}
