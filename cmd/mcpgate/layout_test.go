package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcp/protocol"
)

const module = "github.com/mcpgate/mcpgate"

// goPackage is what the layout rules need of `go list -json`.
type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// modulePackages lists the module's packages, built without tests.
func modulePackages(t *testing.T) map[string]goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]goPackage{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	if _, ok := pkgs["passthrough"]; !ok {
		t.Fatalf("go list did not list passthrough among %d packages", len(pkgs))
	}
	return pkgs
}

// ours returns the module's packages among paths, by their path in the
// module.
func ours(paths []string) []string {
	var out []string
	for _, p := range paths {
		if rest, ok := strings.CutPrefix(p, module+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestDependenciesPointDownTheDataPath: the rules of the house about who
// imports whom (ARCHITECTURE.md), checked on the code rather than trusted.
func TestDependenciesPointDownTheDataPath(t *testing.T) {
	pkgs := modulePackages(t)

	t.Run("passthrough imports nothing of ours", func(t *testing.T) {
		if deps := ours(pkgs["passthrough"].Deps); len(deps) > 0 {
			t.Errorf("passthrough depends on %v; the engine must stay importable on its own", deps)
		}
	})
	t.Run("bus does not import frontdoor", func(t *testing.T) {
		if slices.Contains(ours(pkgs["internal/bus"].Deps), "internal/mcp/frontdoor") {
			t.Error("internal/bus depends on internal/mcp/frontdoor: the bus carries messages for the front doors, it is not built on them")
		}
	})
	t.Run("nothing imports cmd", func(t *testing.T) {
		for path, p := range pkgs {
			for _, dep := range ours(p.Imports) {
				if strings.HasPrefix(dep, "cmd/") {
					t.Errorf("%s imports %s", path, dep)
				}
			}
		}
	})
	t.Run("frontdoor uses dispatch only for what it routes", func(t *testing.T) {
		// A front door hands messages to a Handler; the protocol layer, not
		// dispatch, negotiates versions. What frontdoor names of dispatch
		// is the message's origin, dispatch.Inbound.
		allowed := []string{"Inbound"}
		p := pkgs["internal/mcp/frontdoor"]
		for _, name := range selectorsOf(t, p, module+"/internal/dispatch") {
			if !slices.Contains(allowed, name) {
				t.Errorf("frontdoor uses dispatch.%s; it may use only %v", name, allowed)
			}
		}
	})
	t.Run("only the protocol layer knows version strings", func(t *testing.T) {
		versions := protocol.Versions()
		for path, p := range pkgs {
			if path == "internal/mcp/protocol" {
				continue
			}
			for _, lit := range stringLiterals(t, p) {
				if slices.Contains(versions, lit.value) {
					t.Errorf("%s: %s spells the MCP version %q; use internal/mcp/protocol", path, lit.pos, lit.value)
				}
			}
		}
	})
}

// selectorsOf returns the names p's non-test files use of the package
// imported as importPath.
func selectorsOf(t *testing.T, p goPackage, importPath string) []string {
	t.Helper()
	var names []string
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == importPath {
				local = filepath.Base(importPath)
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && id.Obj == nil {
					names = append(names, sel.Sel.Name)
				}
			}
			return true
		})
	}
	return names
}

type literal struct{ pos, value string }

// stringLiterals returns the string literals of p's non-test files.
func stringLiterals(t *testing.T, p goPackage) []literal {
	t.Helper()
	var lits []literal
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if v, err := strconv.Unquote(bl.Value); err == nil {
					lits = append(lits, literal{pos: fset.Position(bl.Pos()).String(), value: v})
				}
			}
			return true
		})
	}
	return lits
}
