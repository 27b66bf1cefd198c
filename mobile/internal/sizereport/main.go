package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"debug/macho"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

const module = "github.com/onionlite/onionlite"

var debug bool

// Goals from the issue, in MB (10^6 bytes).
const (
	goalStripped = 8_000_000
	goalGzip     = 4_000_000
)

// target is one platform to measure.
type target struct {
	goos, goarch string
	label        string // as shown in the report
}

var targets = []target{
	{"android", "arm64", "android/arm64"},
	{"darwin", "arm64", "ios/arm64 (darwin/arm64 stand-in)"},
}

// ctx ends on SIGINT or SIGTERM: the go commands it runs are killed, and
// run returns and removes its directory from the module.
var ctx = context.Background()

func main() {
	var stop context.CancelFunc
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := flag.String("o", "", "write the Markdown report to this file (default: standard output)")
	keep := flag.Bool("keep", false, "keep the generated programs and binaries (prints where)")
	flag.BoolVar(&debug, "debug", false, "print the largest symbols not tied to a package")
	flag.Parse()
	if err := run(*out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "sizereport:", err)
		stop()
		os.Exit(1)
	}
}

func run(out string, keep bool) error {
	root, err := goOut("", nil, "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		return err
	}
	root = strings.TrimSpace(root)
	// The programs must build against the module's go.mod, so they live
	// in a directory inside it that "go build ./..." ignores ("_" prefix).
	work, err := os.MkdirTemp(filepath.Join(root, "mobile"), "_sizereport-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "sizereport: keeping", work)
	} else {
		defer os.RemoveAll(work)
	}
	syms, err := facadeSymbols(filepath.Join(root, "mobile"))
	if err != nil {
		return err
	}
	programs := map[string]string{
		"facade": facadeProgram(syms),
		"badger": badgerProgram,
		"hello":  helloProgram,
	}
	for name, src := range programs {
		if err := os.MkdirAll(filepath.Join(work, name), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(work, name, "main.go"), []byte(src), 0o644); err != nil {
			return err
		}
	}

	rep := &report{when: time.Now().UTC(), goVersion: runtime.Version(), exported: len(syms)}
	if b, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rep.commit = strings.TrimSpace(string(b))
		// The build reads the working tree: say so when it differs.
		st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/size.md").Output()
		if err == nil && len(bytes.TrimSpace(st)) > 0 {
			rep.dirty = true
		}
	}
	for _, tg := range targets {
		fmt.Fprintf(os.Stderr, "sizereport: %s\n", tg.label)
		m, err := measure(root, work, tg)
		if err != nil {
			return fmt.Errorf("%s: %w", tg.label, err)
		}
		rep.results = append(rep.results, m)
	}
	var buf bytes.Buffer
	rep.write(&buf)
	if out == "" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// goOut runs the go command in dir with extra environment and returns its
// standard output.
func goOut(dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(b), nil
}

// facadeSymbols lists the Go expressions naming every exported function
// and method of package mobile ("ol.NewClient", "(*ol.Client).Dial").
func facadeSymbols(dir string) ([]string, error) {
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var syms []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() {
				continue
			}
			if fd.Recv == nil {
				syms = append(syms, "ol."+fd.Name.Name)
				continue
			}
			switch r := fd.Recv.List[0].Type.(type) {
			case *ast.StarExpr:
				if id, ok := r.X.(*ast.Ident); ok && id.IsExported() {
					syms = append(syms, "(*ol."+id.Name+")."+fd.Name.Name)
				}
			case *ast.Ident:
				if r.IsExported() {
					syms = append(syms, "ol."+r.Name+"."+fd.Name.Name)
				}
			}
		}
	}
	if len(syms) < 10 {
		return nil, fmt.Errorf("found only %d exported functions in %s", len(syms), dir)
	}
	sort.Strings(syms)
	return syms, nil
}

// facadeProgram keeps every exported function and method alive, as
// gomobile's glue does by calling each of them.
func facadeProgram(syms []string) string {
	var b strings.Builder
	b.WriteString("// Code generated by sizereport. DO NOT EDIT.\n\npackage main\n\n")
	b.WriteString("import (\n\t\"fmt\"\n\t\"os\"\n\n\tol \"" + module + "/mobile\"\n)\n\n")
	b.WriteString("var keep = []any{\n")
	for _, s := range syms {
		b.WriteString("\t" + s + ",\n")
	}
	b.WriteString("}\n\nfunc main() {\n\tif len(os.Args) > 1<<30 {\n\t\tfmt.Println(keep...)\n\t}\n}\n")
	return b.String()
}

const badgerProgram = `// Code generated by sizereport. DO NOT EDIT.

package main

import (
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"
)

func main() {
	if len(os.Args) > 1<<30 {
		db, err := badger.Open(badger.DefaultOptions(os.Args[1]))
		fmt.Println(db, err)
	}
}
`

const helloProgram = `// Code generated by sizereport. DO NOT EDIT.

package main

import "fmt"

func main() { fmt.Println("hello") }
`

// result is what was measured for one target.
type result struct {
	target                    target
	stripped, gzipped         int64
	badgerStripped, helloSize int64
	sectionBytes              int64            // allocated bytes in the unstripped build
	groups                    map[string]int64 // row → bytes
	ownPackages               map[string]int64 // onionlite package → bytes
	exclusive                 []exclusiveCost  // per heavy dependency
	pclnShare                 int64            // function-table bytes apportioned to the rows
	misc                      int64            // strings and other unattributed data
}

func build(dir string, tg target, stripped bool, outFile string) error {
	env := []string{"GOOS=" + tg.goos, "GOARCH=" + tg.goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly"}
	args := []string{"build", "-trimpath", "-o", outFile}
	if stripped {
		args = append(args, "-ldflags=-s -w")
	}
	_, err := goOut(dir, env, append(args, ".")...)
	return err
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func gzipSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n countWriter
	zw, _ := gzip.NewWriterLevel(&n, gzip.BestCompression)
	if _, err := io.Copy(zw, f); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func measure(root, work string, tg target) (*result, error) {
	r := &result{target: tg}
	bin := filepath.Join(work, "bin-"+tg.goos+"-"+tg.goarch)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	sizes := map[string]*int64{"facade": &r.stripped, "badger": &r.badgerStripped, "hello": &r.helloSize}
	for name, dst := range sizes {
		f := filepath.Join(bin, name+".stripped")
		if err := build(filepath.Join(work, name), tg, true, f); err != nil {
			return nil, err
		}
		n, err := fileSize(f)
		if err != nil {
			return nil, err
		}
		*dst = n
	}
	var err error
	if r.gzipped, err = gzipSize(filepath.Join(bin, "facade.stripped")); err != nil {
		return nil, err
	}
	full := filepath.Join(bin, "facade.full")
	if err := build(filepath.Join(work, "facade"), tg, false, full); err != nil {
		return nil, err
	}
	pkgs, err := listDeps(filepath.Join(work, "facade"), tg)
	if err != nil {
		return nil, err
	}
	syms, sects, err := readSymbols(full)
	if err != nil {
		return nil, err
	}
	attribute(r, syms, sects, pkgs)
	return r, nil
}

// pkgInfo is one package of the build.
type pkgInfo struct {
	ImportPath string
	Standard   bool
	DepOnly    bool // false for the program's own package
	Imports    []string
	Module     *struct{ Path string }
}

func listDeps(dir string, tg target) (map[string]*pkgInfo, error) {
	out, err := goOut(dir, []string{"GOOS=" + tg.goos, "GOARCH=" + tg.goarch, "CGO_ENABLED=0"}, "list", "-deps", "-json", ".")
	if err != nil {
		return nil, err
	}
	pkgs := map[string]*pkgInfo{}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		p := &pkgInfo{}
		if err := dec.Decode(p); err != nil {
			return nil, err
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs, nil
}

// symbol is a symbol in an allocated section; size runs to the next
// symbol (or the section's end), so padding counts with what precedes it.
type symbol struct {
	name string
	addr uint64
	size uint64
	sect int
}

// section is an allocated, non-empty section (bss-like sections take no
// file space and are left out).
type section struct {
	name       string
	addr, size uint64
	kind       byte // 'c' code, 'p' function tables, 'd' other data
}

func sectionKind(name string) byte {
	switch strings.TrimPrefix(strings.TrimPrefix(name, "."), "__") {
	case "text":
		return 'c'
	case "gopclntab":
		return 'p'
	}
	return 'd'
}

func readSymbols(path string) ([]symbol, []section, error) {
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		var sects []section
		index := map[int]int{}
		for i, s := range f.Sections {
			if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || s.Size == 0 {
				continue
			}
			index[i] = len(sects)
			sects = append(sects, section{name: s.Name, addr: s.Addr, size: s.Size, kind: sectionKind(s.Name)})
		}
		es, err := f.Symbols()
		if err != nil {
			return nil, nil, err
		}
		var syms []symbol
		for _, s := range es {
			if i, ok := index[int(s.Section)]; ok && s.Name != "" && elf.ST_TYPE(s.Info) != elf.STT_SECTION {
				syms = append(syms, symbol{name: s.Name, addr: s.Value, sect: i})
			}
		}
		return sizeSymbols(syms, sects), sects, nil
	}
	f, err := macho.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither ELF nor Mach-O: %v", path, err)
	}
	defer f.Close()
	const zerofill, tlsZerofill = 0x1, 0x12
	var sects []section
	index := map[int]int{}
	for i, s := range f.Sections {
		if t := s.Flags & 0xff; t == zerofill || t == tlsZerofill || s.Size == 0 || s.Seg == "__DWARF" {
			continue
		}
		index[i+1] = len(sects) // Mach-O section numbers start at 1
		sects = append(sects, section{name: s.Name, addr: s.Addr, size: s.Size, kind: sectionKind(s.Name)})
	}
	if f.Symtab == nil {
		return nil, nil, errors.New("no symbol table (a stripped binary?)")
	}
	var syms []symbol
	for _, s := range f.Symtab.Syms {
		if i, ok := index[int(s.Sect)]; ok && s.Name != "" {
			syms = append(syms, symbol{name: strings.TrimPrefix(s.Name, "_"), addr: s.Value, sect: i})
		}
	}
	return sizeSymbols(syms, sects), sects, nil
}

func sizeSymbols(syms []symbol, sects []section) []symbol {
	sort.Slice(syms, func(i, j int) bool {
		if syms[i].sect != syms[j].sect {
			return syms[i].sect < syms[j].sect
		}
		if syms[i].addr != syms[j].addr {
			return syms[i].addr < syms[j].addr
		}
		return syms[i].name < syms[j].name // aliases at one address: the bytes go to the last name
	})
	for i := range syms {
		end := sects[syms[i].sect].addr + sects[syms[i].sect].size
		if i+1 < len(syms) && syms[i+1].sect == syms[i].sect {
			end = syms[i+1].addr
		}
		if end > syms[i].addr {
			syms[i].size = end - syms[i].addr
		}
	}
	return syms
}

// symbolPackage returns the package a symbol belongs to ("" when none of
// pkgs): the longest package path p such that the name, without
// decorations such as "type:" or "go:itab.*", starts with p + ".".
func symbolPackage(name string, pkgs map[string]*pkgInfo) string {
	n := name
	for _, p := range []string{"type:.eq.", "type:.namedata.", "type:.importpath.", "type:", "go:itab.", "go:info."} {
		if rest, ok := strings.CutPrefix(n, p); ok {
			n = rest
			break
		}
	}
	n = strings.TrimLeft(n, "*")
	n = strings.ReplaceAll(n, "%2e", ".") // dots in a path element ("v1%2e0%2e0")
	if i := strings.IndexByte(n, '['); i >= 0 {
		n = n[:i]
	}
	best := ""
	for i := 0; i < len(n); i++ {
		if n[i] == '.' {
			if _, ok := pkgs[n[:i]]; ok && i > len(best) {
				best = n[:i]
			}
		}
	}
	if best == "" && strings.HasPrefix(n, "main.") {
		return "main"
	}
	return best
}

// group is the report row of a package.
func group(path string, pkgs map[string]*pkgInfo) string {
	p := pkgs[path]
	switch {
	case path == "main":
		return "(the stand-in's main)"
	case p == nil:
		return "(other)"
	case p.Module != nil && p.Module.Path == module:
		return "onionlite (all its packages)"
	case p.Module != nil:
		return p.Module.Path
	case strings.HasPrefix(path, "net/http"):
		return "std: net/http"
	case path == "crypto/tls":
		return "std: crypto/tls"
	case strings.HasPrefix(path, "crypto/"):
		return "std: crypto (other)"
	case strings.HasPrefix(path, "vendor/"):
		return "std: vendor (x/net, x/text, x/crypto)"
	case path == "runtime" || strings.HasPrefix(path, "runtime/") || strings.HasPrefix(path, "internal/"):
		return "std: runtime and internal"
	}
	first, _, _ := strings.Cut(path, "/")
	return "std: " + first
}

// exclusive returns the packages that the stand-in reaches only through
// packages matching isRoot (those included): the ones not reachable from
// main without entering such a package.
func exclusive(pkgs map[string]*pkgInfo, isRoot func(string) bool) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] || isRoot(p) {
			return
		}
		seen[p] = true
		if info := pkgs[p]; info != nil {
			for _, imp := range info.Imports {
				walk(imp)
			}
		}
	}
	for path, p := range pkgs {
		if !p.DepOnly {
			walk(path) // the stand-in's main package
		}
	}
	only := map[string]bool{}
	for p := range pkgs {
		if !seen[p] {
			only[p] = true
		}
	}
	return only
}

// heavy are the dependencies whose exclusive cost the report shows.
var heavy = []struct {
	name   string
	prefix string
}{
	{"github.com/dgraph-io/badger/v4", "github.com/dgraph-io/badger/"},
	{"net/http", "net/http"},
	{"github.com/klauspost/compress", "github.com/klauspost/compress"},
}

// exclusiveCost is what one heavy dependency costs on its own.
type exclusiveCost struct {
	name       string
	packages   int
	bytes      int64
	importedBy []string // onionlite packages importing it directly
}

func attribute(r *result, syms []symbol, sects []section, pkgs map[string]*pkgInfo) {
	bytesOf := map[string]int64{} // package → bytes
	code := map[string]int64{}    // package → code bytes
	var pcln, misc int64
	var loose []symbol
	r.groups = map[string]int64{}
	covered := make([]uint64, len(sects))
	for _, s := range syms {
		covered[s.sect] += s.size
		kind := sects[s.sect].kind
		if kind == 'p' || strings.HasPrefix(s.name, "go:func.") || s.name == "runtime.pclntab" || s.name == "runtime.findfunctab" {
			pcln += int64(s.size)
			continue
		}
		if bucket, ok := sharedBuckets[s.name]; ok {
			r.groups[bucket] += int64(s.size)
			continue
		}
		pkg := symbolPackage(s.name, pkgs)
		if pkg == "" {
			misc += int64(s.size)
			loose = append(loose, s)
			continue
		}
		bytesOf[pkg] += int64(s.size)
		if kind == 'c' {
			code[pkg] += int64(s.size)
		}
	}
	for i, s := range sects {
		r.sectionBytes += int64(s.size)
		rest := int64(s.size - min(covered[i], s.size))
		switch {
		case s.kind == 'p':
			pcln += rest
		case covered[i] == 0 && rest*100 >= r.sectionBytes/10: // a big section without symbols (>= ~1%)
			r.groups[fmt.Sprintf("(section %s: no symbols%s)", s.name, sectionNote[s.name])] += rest
		default:
			misc += rest
		}
	}
	if debug {
		sort.Slice(loose, func(i, j int) bool { return loose[i].size > loose[j].size })
		for _, s := range loose[:min(len(loose), 30)] {
			fmt.Fprintf(os.Stderr, "  %8d %-12s %s\n", s.size, sects[s.sect].name, s.name)
		}
	}
	// Function tables follow the code: apportion them by code bytes.
	var totalCode int64
	for _, n := range code {
		totalCode += n
	}
	var given int64
	for pkg, n := range code {
		share := pcln * n / max(totalCode, 1)
		bytesOf[pkg] += share
		given += share
	}
	r.pclnShare = given
	r.misc = misc + (pcln - given)
	r.ownPackages = map[string]int64{}
	for pkg, n := range bytesOf {
		r.groups[group(pkg, pkgs)] += n
		if p := pkgs[pkg]; p != nil && p.Module != nil && p.Module.Path == module {
			r.ownPackages[strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")] += n
		}
	}
	for _, h := range heavy {
		isRoot := func(p string) bool {
			return p == h.prefix || strings.HasPrefix(p, h.prefix+"/") || strings.HasPrefix(p, h.prefix) && strings.HasSuffix(h.prefix, "/")
		}
		c := exclusiveCost{name: h.name}
		for pkg := range exclusive(pkgs, isRoot) {
			c.packages++
			c.bytes += bytesOf[pkg]
		}
		for path, p := range pkgs {
			if p.Module == nil || p.Module.Path != module || !p.DepOnly {
				continue
			}
			for _, imp := range p.Imports {
				if isRoot(imp) {
					c.importedBy = append(c.importedBy, strings.TrimPrefix(strings.TrimPrefix(path, module), "/"))
					break
				}
			}
		}
		sort.Strings(c.importedBy)
		r.exclusive = append(r.exclusive, c)
	}
	r.groups["(other symbols not tied to a package)"] += r.misc
}

// sharedBuckets name the symbols that the linker makes one for all
// packages.
var sharedBuckets = map[string]string{
	"type:*":      "(type descriptors of all packages: type:*)",
	"typerel.*":   "(type descriptors of all packages: type:*)", // its alias in position-independent builds
	"go:string.*": "(string constants of all packages: go:string.*)",
}

// sectionNote explains sections that hold no symbols.
var sectionNote = map[string]string{
	".rela":     ": load-time relocations of a position-independent binary, as a shared library has",
	".rela.dyn": ": load-time relocations of a position-independent binary, as a shared library has",
}
