package bus

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBusDoesNotImportTheTransports: dependencies point down the data path.
// The bus carries what the front door shares (sessions, routed messages) as
// bytes, so it imports none of the client- or upstream-facing packages.
func TestBusDoesNotImportTheTransports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, above := range []string{"/internal/mcp/", "/internal/dispatch", "/internal/gateway"} {
				if strings.Contains(path, "github.com/mcpgate/mcpgate"+above) {
					t.Errorf("%s imports %s: the bus sits below the transports and must not", name, path)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}
