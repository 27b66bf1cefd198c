package repotest

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/onionlite/onionlite"

// layer gives each package prefix its row in DEVELOPERS.md. A package may
// import packages of its own row or of lower rows only. Longest prefix wins.
var layer = map[string]int{
	"internal/clock":     1,
	"internal/safelog":   1,
	"internal/torcrypto": 1,
	"internal/cell":      1,
	"internal/repotest":  1,
	"internal/realnet":   1,
	"internal/procmem":   1, // /proc memory readings for tests and measurements
	"memquota":           1,
	"transport":          1,

	"internal/netdoc":   2,
	"internal/consdiff": 2,
	"dircache/netdir":   2,
	"pathsel":           2,

	"internal/relaycrypto": 3,
	"internal/channel":     3,
	"internal/circuit":     3,
	"internal/stream":      3,
	"internal/socks5":      3,
	"internal/dirclient":   3,

	"internal/chanmgr":   4,
	"internal/circmgr":   4,
	"dircache":           4,
	"bootstrap":          4,
	"internal/testnet":   4,
	"internal/benchrun":  6,
	"internal/memprobe":  6, // memory measurements (developer tool)
	"internal/faulttest": 6,
	// Fault and security tests over the sdk (test files only).
	// A generator program (reads files): not part of the pure row.
	"internal/netdoc/internal/genfallbacks": 6,

	"sdk": 5,

	"mobile":        6,
	"examples":      6,
	"cmd/onionlite": 6,
}

// pure rows may not touch the network, the disk or processes.
var impureImports = []string{"net", "net/http", "os", "os/exec", "syscall", "io/ioutil", "math/rand", "math/rand/v2", "crypto/rand"}

func rowOf(rel string) (int, bool) {
	best, row := -1, 0
	for p, r := range layer {
		if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > best {
			best, row = len(p), r
		}
	}
	return row, best >= 0
}

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

func listPackages(t *testing.T, env ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) string {
	if path == module {
		return ""
	}
	return strings.TrimPrefix(path, module+"/")
}

func TestLayers(t *testing.T) {
	for _, p := range listPackages(t) {
		r := rel(p.ImportPath)
		row, ok := rowOf(r)
		if !ok {
			t.Errorf("package %s has no layer: add it to DEVELOPERS.md and this test", r)
			continue
		}
		for _, imp := range p.Imports {
			if row == 2 {
				for _, bad := range impureImports {
					if imp == bad {
						t.Errorf("pure package %s imports %s", r, imp)
					}
				}
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			ir := rel(imp)
			irow, ok := rowOf(ir)
			if !ok {
				continue // reported on its own
			}
			if irow > row {
				t.Errorf("%s (row %d) imports %s (row %d): dependencies must point down", r, row, ir, irow)
			}
		}
	}
}

func TestPackageDocs(t *testing.T) {
	fset := token.NewFileSet()
	for _, p := range listPackages(t) {
		if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil && !strings.HasPrefix(rel(p.ImportPath), "examples") && !strings.HasPrefix(rel(p.ImportPath), "cmd") {
			t.Errorf("%s has no doc.go", rel(p.ImportPath))
		}
		docs := 0
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && (strings.HasPrefix(af.Doc.Text(), "Package ") || strings.HasPrefix(af.Doc.Text(), "Command ")) {
				docs++
			}
		}
		if docs != 1 {
			t.Errorf("%s has %d package doc comments, want exactly 1", rel(p.ImportPath), docs)
		}
	}
}

// TestMobileDeps keeps the embedding API free of test-only packages on the
// mobile targets.
func TestMobileDeps(t *testing.T) {
	for _, goos := range []string{"android", "ios"} {
		cmd := exec.Command("go", "list", "-deps", module+"/sdk")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=arm64", "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps for %s: %v", goos, err)
		}
		for _, d := range strings.Fields(string(out)) {
			if d == "testing" || strings.HasPrefix(d, "testing/") || strings.HasSuffix(d, "/testnet") {
				t.Errorf("%s: sdk depends on %s", goos, d)
			}
		}
	}
}
