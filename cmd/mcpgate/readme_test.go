package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeExample runs the README's first command on its example file and
// checks that the README shows exactly what it prints, so the documentation
// cannot drift from the program.
func TestReadmeExample(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const command = "go run ./cmd/mcpgate explain --format table < docs/example.jsonl"
	if !strings.Contains(string(readme), command) {
		t.Fatalf("README no longer shows the command %q", command)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- explain-example:begin -->\n```text\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- explain-example:end -->")
	if !ok || !ok2 {
		t.Fatal("README lacks the explain-example block")
	}
	cases, err := os.ReadFile(filepath.Join(root, "docs", "example.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMcpgate(t, string(cases), testEnviron(t), "explain", "--format", "table")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if strings.TrimSpace(stdout) != strings.TrimSpace(block) {
		t.Errorf("README shows:\n%s\nexplain prints:\n%s", block, stdout)
	}
}
