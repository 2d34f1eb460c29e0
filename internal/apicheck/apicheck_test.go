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

// pkgFiles parses the non-test Go files of a folder (every build tag), with
// their comments.
func pkgFiles(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.ParseComments|parser.SkipObjectResolution)
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

// docChecker records the exported identifiers of one file that have no doc
// comment, or whose own doc comment does not start with their name.
type docChecker struct {
	fset    *token.FileSet
	missing []string
}

func (c *docChecker) report(pos token.Pos, what, why string) {
	c.missing = append(c.missing, fmt.Sprintf("%s: %s %s", c.fset.Position(pos), what, why))
}

// named checks a declaration's own doc comment: present, and starting with
// the identifier (after an optional article).
func (c *docChecker) named(pos token.Pos, what, name string, doc *ast.CommentGroup) {
	if doc == nil || strings.TrimSpace(doc.Text()) == "" {
		c.report(pos, what, "has no doc comment")
		return
	}
	text := doc.Text()
	for _, article := range []string{"A ", "An ", "The "} {
		text = strings.TrimPrefix(text, article)
	}
	if rest, ok := strings.CutPrefix(text, name); !ok || (rest != "" && isIdentRune(rest[0])) {
		c.report(pos, what, fmt.Sprintf("has a doc comment that does not start with %q", name))
	}
}

func isIdentRune(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// fields checks the exported fields (or methods) of a struct (or
// interface). A field is documented by its own doc or line comment, or by
// the doc comment of the first field of the run of lines, with no blank
// line or comment between, that it belongs to.
func (c *docChecker) fields(what string, fl *ast.FieldList) {
	if fl == nil {
		return
	}
	groupDoc := false
	lastLine := -1
	for _, f := range fl.List {
		line := c.fset.Position(f.Pos()).Line
		if f.Doc != nil || line != lastLine+1 {
			groupDoc = f.Doc != nil
		}
		lastLine = c.fset.Position(f.End()).Line
		documented := f.Doc != nil || f.Comment != nil || groupDoc
		for _, n := range f.Names {
			if n.IsExported() && !documented {
				c.report(n.Pos(), what+"."+n.Name, "has no doc comment")
			}
		}
	}
}

func (c *docChecker) file(f *ast.File) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || (d.Recv != nil && !receiverExported(d)) {
				continue
			}
			what := "func " + d.Name.Name
			if d.Recv != nil {
				what = "method " + d.Name.Name
			}
			c.named(d.Name.Pos(), what, d.Name.Name, d.Doc)
		case *ast.GenDecl:
			grouped := d.Lparen.IsValid() && d.Doc != nil
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					if !sp.Name.IsExported() {
						continue
					}
					doc := sp.Doc
					if !d.Lparen.IsValid() {
						doc = d.Doc
					}
					c.named(sp.Name.Pos(), "type "+sp.Name.Name, sp.Name.Name, doc)
					switch t := sp.Type.(type) {
					case *ast.StructType:
						c.fields("type "+sp.Name.Name, t.Fields)
					case *ast.InterfaceType:
						c.fields("type "+sp.Name.Name, t.Methods)
					}
				case *ast.ValueSpec:
					for _, n := range sp.Names {
						if !n.IsExported() {
							continue
						}
						switch {
						case !d.Lparen.IsValid():
							c.named(n.Pos(), "var/const "+n.Name, n.Name, d.Doc)
						case sp.Doc == nil && sp.Comment == nil && !grouped:
							c.report(n.Pos(), "var/const "+n.Name, "has no doc comment")
						}
					}
				}
			}
		}
	}
}

// engineDirs are the folders whose every exported identifier must be
// documented: the engine and its safetensors package.
var engineDirs = []string{"torch", "torch/safetensors"}

// TestEngineIsDocumented requires a doc comment on every exported
// identifier of the engine packages: types, functions, methods of exported
// types, constants and variables (a group's doc comment covers its members)
// and struct fields (a comment may cover a run of fields).
func TestEngineIsDocumented(t *testing.T) {
	mod := root(t)
	fset := token.NewFileSet()
	var missing []string
	decls := 0
	for _, dir := range engineDirs {
		files := pkgFiles(t, fset, filepath.Join(mod, dir))
		require.NotEmpty(t, files, "no Go files in %s", dir)
		for _, f := range files {
			decls += len(f.Decls)
			c := &docChecker{fset: fset}
			c.file(f)
			missing = append(missing, c.missing...)
		}
	}
	require.Greater(t, decls, 100, "too few declarations found in %v", engineDirs)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("exported identifiers of the engine without a proper doc comment:\n%s", strings.Join(missing, "\n"))
	}
}

// TestDocCheckerCatchesMissing runs the doc checker on a file with one of
// each kind of undocumented identifier next to documented ones, so that it
// cannot pass by finding nothing.
func TestDocCheckerCatchesMissing(t *testing.T) {
	src := `package bad

// Good is documented.
type Good struct {
	// A is documented above.
	A int
	B int // B is documented at the end of its line.
	// C and D share a comment.
	C int
	D int

	E      int
	hidden int
}

type Bare int

// Wrong is a doc comment about something else.
type Misnamed int

// Grouped constants.
const (
	One = 1
	Two = 2
)

const (
	// Three is documented.
	Three = 3
	Four  = 4
)

// Five is documented.
const Five = 5

var Six = 6

// F is documented.
func F() {}

// Fine starts with another word's prefix.
func Fin() {}

func G() {}

// String is documented.
func (g Good) String() string { return "" }

func (g Good) Error() string { return "" }

func (b *Bare) unexported() {}

type hidden struct{}

func (hidden) Exported() {}

func unexported() {}

// An Article may come first.
type Article int
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, parser.ParseComments|parser.SkipObjectResolution)
	require.NoError(t, err)
	c := &docChecker{fset: fset}
	c.file(f)
	var what []string
	for _, s := range c.missing {
		what = append(what, s[strings.Index(s, ": ")+2:])
	}
	require.ElementsMatch(t, []string{
		"type Good.E has no doc comment",
		"type Bare has no doc comment",
		`type Misnamed has a doc comment that does not start with "Misnamed"`,
		"var/const Four has no doc comment",
		"var/const Six has no doc comment",
		`func Fin has a doc comment that does not start with "Fin"`,
		"func G has no doc comment",
		"method Error has no doc comment",
	}, what)
}

// TestExamplesUseThePublicAPI keeps the example programs (not their
// tests) on what any user can import: no internal package.
func TestExamplesUseThePublicAPI(t *testing.T) {
	mod := root(t)
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(filepath.Join(mod, "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); strings.Contains(p, "/internal/") {
				rel, _ := filepath.Rel(mod, path)
				found = append(found, rel+": "+p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, found, "example programs importing internal packages")
}
