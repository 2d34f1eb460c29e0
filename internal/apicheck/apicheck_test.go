package apicheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// root is the module's root folder, found from this package's folder.
func root(t *testing.T) string {
	dir, err := filepath.Abs("../..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "go.mod"))
	require.NoError(t, err, "module root not found above internal/apicheck")
	return dir
}

// publicDirs are the folders of the module's public library packages: not
// under internal/, examples/ or testdata/.
func publicDirs(t *testing.T, mod string) []string {
	var dirs []string
	err := filepath.WalkDir(mod, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(mod, path)
		base := d.Name()
		if rel != "." && (strings.HasPrefix(base, ".") || base == "internal" || base == "examples" || base == "testdata" || base == "docs") {
			return filepath.SkipDir
		}
		if files, _ := filepath.Glob(filepath.Join(path, "*.go")); len(files) > 0 {
			dirs = append(dirs, path)
		}
		return nil
	})
	require.NoError(t, err)
	return dirs
}

// pkgFiles parses the non-test Go files of a folder (every build tag).
func pkgFiles(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		if f.Name.Name == "main" {
			return nil
		}
		files = append(files, f)
	}
	return files
}

// checker records violations in one file.
type checker struct {
	fset     *token.FileSet
	internal map[string]string // import name → path, for internal imports
	unsafe   string            // the name unsafe is imported as, or ""
	found    []string
}

func newChecker(fset *token.FileSet, f *ast.File) *checker {
	c := &checker{fset: fset, internal: map[string]string{}}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		if strings.Contains(path, "/internal/") {
			c.internal[name] = path
		}
		if path == "unsafe" {
			c.unsafe = name
		}
	}
	return c
}

// expr reports every reference to an internal package's identifier (or to
// unsafe.Pointer) inside e, as part of what.
func (c *checker) expr(what string, e ast.Node) {
	if e == nil {
		return
	}
	ast.Inspect(e, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		if path, ok := c.internal[x.Name]; ok {
			c.found = append(c.found, fmt.Sprintf("%s: %s names %s.%s (%s)", c.fset.Position(sel.Pos()), what, x.Name, sel.Sel.Name, path))
		}
		if c.unsafe != "" && x.Name == c.unsafe && sel.Sel.Name == "Pointer" {
			c.found = append(c.found, fmt.Sprintf("%s: %s takes or returns unsafe.Pointer", c.fset.Position(sel.Pos()), what))
		}
		return true
	})
}

// fields checks the exported fields (or interface methods) of a list.
func (c *checker) fields(what string, fl *ast.FieldList) {
	if fl == nil {
		return
	}
	for _, f := range fl.List {
		exported := len(f.Names) == 0 // embedded: its methods are promoted
		for _, n := range f.Names {
			exported = exported || n.IsExported()
		}
		if exported {
			c.expr(what, f.Type)
		}
	}
}

// typ checks a type's exported surface: struct fields, interface methods,
// the whole of any other type expression.
func (c *checker) typ(what string, e ast.Expr) {
	switch t := e.(type) {
	case *ast.StructType:
		c.fields(what, t.Fields)
	case *ast.InterfaceType:
		c.fields(what, t.Methods)
	default:
		c.expr(what, e)
	}
}

// receiverExported says whether a method's receiver type is exported.
func receiverExported(fd *ast.FuncDecl) bool {
	e := fd.Recv.List[0].Type
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.IsExported()
		default:
			return false
		}
	}
}

func (c *checker) file(f *ast.File) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || (d.Recv != nil && !receiverExported(d)) {
				continue
			}
			c.expr("func "+d.Name.Name, d.Type)
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					if sp.Name.IsExported() {
						c.typ("type "+sp.Name.Name, sp.Type)
						c.fields("type "+sp.Name.Name, sp.TypeParams)
					}
				case *ast.ValueSpec:
					for i, n := range sp.Names {
						if !n.IsExported() {
							continue
						}
						c.expr("var/const "+n.Name, sp.Type)
						if i < len(sp.Values) {
							c.expr("var/const "+n.Name, sp.Values[i])
						}
					}
				}
			}
		}
	}
}

// TestPublicAPINamesNoInternalType walks every public package's exported
// declarations: signatures, struct fields, interface methods, aliases and
// the values of exported variables.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	mod := root(t)
	fset := token.NewFileSet()
	var found []string
	packages := 0
	for _, dir := range publicDirs(t, mod) {
		files := pkgFiles(t, fset, dir)
		if len(files) > 0 {
			packages++
		}
		for _, f := range files {
			c := newChecker(fset, f)
			c.file(f)
			found = append(found, c.found...)
		}
	}
	require.GreaterOrEqual(t, packages, 10, "too few public packages found under %s", mod)
	sort.Strings(found)
	require.Empty(t, found, "exported identifiers of public packages that another module could not use:\n%s", strings.Join(found, "\n"))
}

// TestOnlyTheEngineImportsUnsafe keeps unsafe inside the bridge and the
// engine (package torch, not its subpackages' users).
func TestOnlyTheEngineImportsUnsafe(t *testing.T) {
	mod := root(t)
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(mod, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != "." && (strings.HasPrefix(n, ".") || n == "testdata") && path != mod {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(mod, path)
		dir := filepath.ToSlash(filepath.Dir(rel))
		if dir == "internal/cbridge" || dir == "torch" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			if im.Path.Value == `"unsafe"` {
				found = append(found, rel)
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, found, "files outside internal/cbridge and torch that import unsafe")
}

// TestCheckerCatchesInternalNames runs the checker on a package written to
// break every rule once, so that it cannot pass by finding nothing.
func TestCheckerCatchesInternalNames(t *testing.T) {
	src := `package bad

import (
	"unsafe"
	"example.com/m/internal/nn"
	inner "example.com/m/internal/torch"
)

type Option = nn.Option
type S struct {
	P  *nn.Param
	ok int
	hidden *nn.Param
}
type I interface{ Params() *nn.Params }
var Make = nn.NewParams
func F(x inner.Tensor) {}
func G() []*nn.Param { return nil }
func H(p unsafe.Pointer) {}
func (s *S) M() nn.Option { return nil }
func (s *S) m() nn.Option { return nil }
type hidden struct{}
func (h hidden) Exported() nn.Option { return nil }
func fine(x nn.Option) {}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, parser.SkipObjectResolution)
	require.NoError(t, err)
	c := newChecker(fset, f)
	c.file(f)
	var what []string
	for _, s := range c.found {
		what = append(what, s[strings.Index(s, ": ")+2:])
	}
	require.ElementsMatch(t, []string{
		"type Option names nn.Option (example.com/m/internal/nn)",
		"type S names nn.Param (example.com/m/internal/nn)",
		"type I names nn.Params (example.com/m/internal/nn)",
		"var/const Make names nn.NewParams (example.com/m/internal/nn)",
		"func F names inner.Tensor (example.com/m/internal/torch)",
		"func G names nn.Param (example.com/m/internal/nn)",
		"func H takes or returns unsafe.Pointer",
		"func M names nn.Option (example.com/m/internal/nn)",
	}, what)
}
