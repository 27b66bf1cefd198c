package onionlite

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// EnvRequireMobile makes the binding tests fail, instead of skipping, when
// a tool they need (JDK, clang, GNUstep) is missing. CI sets it.
const EnvRequireMobile = "ONIONLITE_REQUIRE_MOBILE"

// missingTool skips the test, or fails it when EnvRequireMobile is set.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequireMobile) == "1" {
		t.Fatalf(format+" (and %s=1)", append(args, EnvRequireMobile)...)
	}
	t.Skipf(format+" (install it, or see docs/mobile.md)", args...)
}

// moduleRoot is the module's directory (tests run in mobile/).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command in dir and fails the test with its output if it
// fails. It returns the combined output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// gobind runs the pinned gobind (go.mod's tool directive) on this package
// for langs ("go,java", "go,objc", ...) into a new directory outside the
// module, checks that it skipped nothing, and returns that directory.
func gobind(t *testing.T, langs string) string {
	t.Helper()
	out := t.TempDir()
	log := run(t, moduleRoot(t), nil, "go", "tool", "gobind", "-lang="+langs, "-outdir="+out, "./mobile")
	if strings.Contains(log, "skipped") {
		t.Errorf("gobind output mentions skipped symbols:\n%s", log)
	}
	err := filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "skipped") {
				t.Errorf("%s:%d: %s", strings.TrimPrefix(path, out+"/"), i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// glueCopy copies gobind's Go glue (OUT/src/gobind, a main package) into a
// new directory inside this package whose name starts with "_", so that it
// builds against the module's go.mod while "go build ./..." ignores it.
// rename maps file-name suffixes to replace ("_android.go" →
// "_hostjni.go"); headers keep their names.
func glueCopy(t *testing.T, out string, rename map[string]string) string {
	t.Helper()
	glue, err := os.MkdirTemp(".", "_glue-")
	if err != nil {
		t.Fatal(err)
	}
	glue, _ = filepath.Abs(glue)
	t.Cleanup(func() { os.RemoveAll(glue) })
	src := filepath.Join(out, "src", "gobind")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		name := e.Name()
		for from, to := range rename {
			if base, ok := strings.CutSuffix(name, from); ok {
				name = base + to
			}
		}
		if err := os.WriteFile(filepath.Join(glue, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return glue
}

// exported lists this package's exported API as gobind sees it.
type exported struct {
	funcs   []string            // package functions, constructors included
	ctors   map[string]string   // constructor → the type it makes
	consts  []string            // constants
	structs map[string][]string // struct → exported fields
	methods map[string][]string // struct or interface → exported methods
	ifaces  map[string]bool
}

func parseExported(t *testing.T) *exported {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	ex := &exported{ctors: map[string]string{}, structs: map[string][]string{}, methods: map[string][]string{}, ifaces: map[string]bool{}}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv == nil {
					ex.funcs = append(ex.funcs, d.Name.Name)
					if res := d.Type.Results; res != nil && strings.HasPrefix(d.Name.Name, "New") {
						if star, ok := res.List[0].Type.(*ast.StarExpr); ok {
							if id, ok := star.X.(*ast.Ident); ok && id.Name == strings.TrimPrefix(d.Name.Name, "New") {
								ex.ctors[d.Name.Name] = id.Name
							}
						}
					}
					continue
				}
				recv := d.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if id, ok := recv.(*ast.Ident); ok && id.IsExported() {
					ex.methods[id.Name] = append(ex.methods[id.Name], d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								if d.Tok != token.CONST {
									t.Errorf("exported variable %s: the facade exports no variables", n.Name)
								}
								ex.consts = append(ex.consts, n.Name)
							}
						}
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						switch ty := s.Type.(type) {
						case *ast.StructType:
							ex.structs[s.Name.Name] = nil
							for _, fld := range ty.Fields.List {
								for _, n := range fld.Names {
									if n.IsExported() {
										ex.structs[s.Name.Name] = append(ex.structs[s.Name.Name], n.Name)
									}
								}
							}
						case *ast.InterfaceType:
							ex.ifaces[s.Name.Name] = true
							for _, m := range ty.Methods.List {
								for _, n := range m.Names {
									ex.methods[s.Name.Name] = append(ex.methods[s.Name.Name], n.Name)
								}
							}
						default:
							t.Errorf("exported type %s is neither a struct nor an interface: gobind would skip it", s.Name.Name)
						}
					}
				}
			}
		}
	}
	return ex
}

// lowerFirst is gobind's rule for Java and Objective-C member names: the
// leading run of capitals goes to lower case, except the last one when a
// lower-case letter follows ("StartSOCKS" → "startSOCKS", "URLPath" →
// "urlPath").
func lowerFirst(s string) string {
	var b []rune
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !unicode.IsUpper(r) {
			if len(b) > 1 {
				b[len(b)-1] = unicode.ToUpper(b[len(b)-1])
			}
			return string(b) + s
		}
		b = append(b, unicode.ToLower(r))
		s = s[n:]
	}
	return string(b)
}

func TestLowerFirst(t *testing.T) {
	for in, want := range map[string]string{"StartSOCKS": "startSOCKS", "StatsJSON": "statsJSON", "URLPath": "urlPath",
		"IsReady": "isReady", "ID": "id", "Read": "read"} {
		if got := lowerFirst(in); got != want {
			t.Errorf("lowerFirst(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGobindBindsEverything runs gobind for Java and Objective-C, fails on
// any symbol it skipped, and checks that every exported function, type,
// method, field and constant of the facade appears in both bindings under
// the expected name.
func TestGobindBindsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("gobind takes a while; skipped in -short mode")
	}
	out := gobind(t, "go,java,objc")
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Fatalf("gobind did not write %s: %v", rel, err)
		}
		return string(b)
	}
	ex := parseExported(t)
	pkgJava := read("java/onionlite/Onionlite.java")
	objc := read("src/gobind/Onionlite.objc.h")
	has := func(where, text, pattern string) {
		t.Helper()
		if !regexp.MustCompile(pattern).MatchString(text) {
			t.Errorf("%s lacks %s", where, pattern)
		}
	}
	q := regexp.QuoteMeta
	for _, f := range ex.funcs {
		has("Onionlite.java", pkgJava, `public static native \S+ `+q(lowerFirst(f))+`\(`)
		has("Onionlite.objc.h", objc, `FOUNDATION_EXPORT .*\bOnionlite`+q(f)+`\(`)
		if typ, ok := ex.ctors[f]; ok {
			has(typ+".java", read("java/onionlite/"+typ+".java"), `public `+q(typ)+`\(`)
			has("Onionlite.objc.h", objc, `(?s)@interface Onionlite`+q(typ)+` .*?- \(nullable instancetype\)init:`)
		}
	}
	for _, c := range ex.consts {
		has("Onionlite.java", pkgJava, `public static final \S+ `+q(c)+` = `)
		has("Onionlite.objc.h", objc, `FOUNDATION_EXPORT .*\bOnionlite`+q(c)+`;`)
	}
	for typ, fields := range ex.structs {
		java := read("java/onionlite/" + typ + ".java")
		has(typ+".java", java, `public final class `+q(typ)+` `)
		block := objcBlock(objc, "@interface Onionlite"+typ+" ")
		if block == "" {
			t.Errorf("Onionlite.objc.h has no @interface Onionlite%s", typ)
		}
		for _, f := range fields {
			has(typ+".java", java, `public final native \S+ get`+q(f)+`\(\);`)
			has(typ+".java", java, `public final native void set`+q(f)+`\(`)
			has("@interface Onionlite"+typ, block, `@property \(nonatomic\) .*\b`+q(lowerFirst(f))+`;`)
		}
		for _, m := range ex.methods[typ] {
			has(typ+".java", java, `public native \S+ `+q(lowerFirst(m))+`\(`)
			has("@interface Onionlite"+typ, block, `\n- \([^)]*\)`+q(lowerFirst(m))+`\b`)
		}
	}
	for iface := range ex.ifaces {
		java := read("java/onionlite/" + iface + ".java")
		has(iface+".java", java, `public interface `+q(iface)+` `)
		block := objcBlock(objc, "@protocol Onionlite"+iface+" ")
		if block == "" {
			t.Errorf("Onionlite.objc.h has no @protocol Onionlite%s", iface)
		}
		for _, m := range ex.methods[iface] {
			has(iface+".java", java, `public \S+ `+q(lowerFirst(m))+`\(`)
			has("@protocol Onionlite"+iface, block, `\n- \([^)]*\)`+q(lowerFirst(m))+`\b`)
		}
	}
	// A few that matter to the samples, so that this test cannot pass on
	// an empty parse.
	for _, want := range []string{"NewClient", "ErrorKind"} {
		if !contains(ex.funcs, want) {
			t.Errorf("parsed no function %s", want)
		}
	}
	if len(ex.methods["Client"]) < 10 || len(ex.methods["Stream"]) < 5 || len(ex.structs["Config"]) < 8 {
		t.Errorf("parsed too little: %d Client methods, %d Stream methods, %d Config fields",
			len(ex.methods["Client"]), len(ex.methods["Stream"]), len(ex.structs["Config"]))
	}
}

// objcBlock returns the text from start to the next "@end".
func objcBlock(h, start string) string {
	i := strings.Index(h, start)
	if i < 0 {
		return ""
	}
	j := strings.Index(h[i:], "@end")
	if j < 0 {
		return h[i:]
	}
	return h[i : i+j]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
