package onionlite

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/testnet"
)

// gnustep describes the clang + GNUstep (GCC libobjc) toolchain.
type gnustep struct {
	gccDir string // holds libobjc.so and include/objc
}

func findGNUstep(t *testing.T) gnustep {
	t.Helper()
	if _, err := exec.LookPath("clang"); err != nil {
		missingTool(t, "no clang (Debian: apt-get install clang)")
	}
	if _, err := os.Stat("/usr/include/GNUstep/Foundation/Foundation.h"); err != nil {
		missingTool(t, "no GNUstep Foundation headers (Debian: apt-get install libgnustep-base-dev)")
	}
	out, err := exec.Command("gcc", "-print-file-name=libobjc.so").Output()
	lib := strings.TrimSpace(string(out))
	if err != nil || !filepath.IsAbs(lib) {
		missingTool(t, "no GCC libobjc (Debian: apt-get install libgnustep-base-dev)")
	}
	dir := filepath.Dir(lib)
	if _, err := os.Stat(filepath.Join(dir, "include/objc/objc.h")); err != nil {
		missingTool(t, "no objc/objc.h beside %s", lib)
	}
	return gnustep{gccDir: dir}
}

// objcFlags are the flags for GNUstep with the GCC runtime: manual
// retain/release and the fragile ABI (no ARC on this runtime).
func (g gnustep) objcFlags() []string {
	return []string{"-fobjc-runtime=gcc", "-I/usr/include/GNUstep", "-I" + filepath.Join(g.gccDir, "include"),
		"-DGNUSTEP", "-DGNUSTEP_BASE_LIBRARY=1", "-DGNU_RUNTIME=1", "-fexceptions", "-fobjc-exceptions",
		"-D_NATIVE_OBJC_EXCEPTIONS", "-fconstant-string-class=NSConstantString"}
}

// fragileProps are the properties gobind's glue declares without ivars;
// the fragile ABI of the GCC runtime cannot synthesise their storage.
var fragileProps = map[string]bool{"_ref": true, "dict": true, "refnum": true, "obj": true, "cnt": true}

var (
	propRE  = regexp.MustCompile(`^@property\s*(\([^)]*\))?\s*(.*?)\b(\w+);`)
	ifaceRE = regexp.MustCompile(`^@interface (\w+) :.*\{\s*$`)
	implRE  = regexp.MustCompile(`^@implementation (\w+)\b`)
)

// patchGNUstep adapts gobind's Objective-C glue in dir to clang with
// GNUstep's GCC runtime (the recipe in docs/mobile.md):
// darwin-only file names, @import, Apple-only cgo flags, ivars for
// properties, object subscripting, and a retain that ARC would do.
func patchGNUstep(t *testing.T, dir string) {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	text := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		text[f.Name()] = string(b)
	}
	// Properties needing ivars, by class.
	ivars := map[string][][2]string{} // class → (type, name)
	for name, s := range text {
		if !strings.HasSuffix(name, ".h") && !strings.HasSuffix(name, ".m") {
			continue
		}
		class := ""
		for _, l := range strings.Split(s, "\n") {
			if m := ifaceRE.FindStringSubmatch(l); m != nil {
				class = m[1]
			}
			if strings.HasPrefix(l, "@end") {
				class = ""
			}
			if m := propRE.FindStringSubmatch(l); m != nil && class != "" && fragileProps[m[3]] {
				typ := strings.TrimSpace(strings.ReplaceAll(m[2], "_Nonnull", ""))
				ivars[class] = append(ivars[class], [2]string{typ, m[3]})
			}
		}
	}
	if len(ivars["GoSeqRef"]) != 2 || len(ivars["OnionliteClient"]) != 1 {
		t.Fatalf("the glue changed shape: properties needing ivars %v", ivars)
	}
	for name, s := range text {
		if !strings.HasSuffix(name, ".h") && !strings.HasSuffix(name, ".m") {
			continue
		}
		lines := strings.Split(s, "\n")
		var out []string
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if l == "@import Foundation;" {
				l = "#import <Foundation/Foundation.h>"
			}
			out = append(out, l)
			if m := ifaceRE.FindStringSubmatch(l); m != nil {
				for _, iv := range ivars[m[1]] {
					out = append(out, fmt.Sprintf("  %s _%s;", iv[0], iv[1]))
				}
			}
			if m := implRE.FindStringSubmatch(l); m != nil && len(ivars[m[1]]) > 0 {
				if strings.HasSuffix(strings.TrimSpace(l), "{") { // copy the ivar block
					for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "}"; i++ {
						out = append(out, lines[i])
					}
					out = append(out, "}")
				}
				for _, iv := range ivars[m[1]] {
					out = append(out, fmt.Sprintf("@synthesize %s = _%s;", iv[1], iv[1]))
				}
			}
		}
		text[name] = strings.Join(out, "\n")
	}
	seq := text["seq_darwin.m"]
	for from, to := range map[string]string{
		"_objs[@(refnum)]":               "[_objs objectForKey:@(refnum)]",
		"_refs[ptr] = refnum;":           "[_refs setObject:refnum forKey:ptr];",
		"_objs[refnum] = counter;":       "[_objs setObject:counter forKey:refnum];",
		"    _obj = obj;\n    _cnt = 0;": "    _obj = [obj retain];\n    _cnt = 0;", // RefCounter only
	} {
		if !strings.Contains(seq, from) {
			t.Fatalf("seq_darwin.m has no %q: the glue changed shape", from)
		}
		seq = strings.ReplaceAll(seq, from, to)
	}
	text["seq_darwin.m"] = seq
	gseq := text["seq_darwin.go"]
	cflags := regexp.MustCompile(`(?m)^#cgo CFLAGS:.*$`)
	ldflags := regexp.MustCompile(`(?m)^#cgo LDFLAGS:.*$`)
	if !cflags.MatchString(gseq) || !ldflags.MatchString(gseq) {
		t.Fatal("seq_darwin.go has no #cgo lines: the glue changed shape")
	}
	gseq = cflags.ReplaceAllString(gseq, "#cgo CFLAGS: -x objective-c")
	text["seq_darwin.go"] = ldflags.ReplaceAllString(gseq, "#cgo LDFLAGS: -lgnustep-base -lobjc")

	for name, s := range text {
		newName := name
		for _, suf := range []string{"_darwin.go", "_darwin.m"} {
			if base, ok := strings.CutSuffix(name, suf); ok {
				newName = base + strings.Replace(suf, "_darwin", "_gnustep", 1)
			}
		}
		if newName != name {
			os.Remove(filepath.Join(dir, name))
		}
		if err := os.WriteFile(filepath.Join(dir, newName), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestObjCBinding compiles the facade's gobind Objective-C binding with
// clang against GNUstep (a stand-in for Apple's Foundation; patched as in
// docs/mobile.md) and runs testdata/objc/main.m against the real-tor test
// network: bootstrap with an Objective-C progress listener, the 1 MiB body
// through the SOCKS port, a Stream and Download (hashed here), error kinds
// as NSError, lifecycle calls and Stop. It cannot check ARC, Apple's
// compile errors or the framework packaging: that needs Xcode.
func TestObjCBinding(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the GNUstep recipe is for linux/amd64")
	}
	n := testnet.Shared(t)
	gs := findGNUstep(t)
	body, ok := n.Body("1MiB.bin")
	if !ok {
		t.Fatal("the test network serves no 1MiB.bin")
	}
	out := gobind(t, "go,objc")
	glue := glueCopy(t, out, nil)
	patchGNUstep(t, glue)

	work := t.TempDir()
	flags := gs.objcFlags()
	run(t, glue, []string{
		"CC=clang", "CGO_ENABLED=1",
		"CGO_CFLAGS=-D__GOBIND_DARWIN__ " + strings.Join(flags, " ") + " -w -Wno-unused-command-line-argument",
		"CGO_LDFLAGS=-L" + gs.gccDir,
	}, "go", "build", "-buildmode=c-archive", "-o", filepath.Join(work, "libonionlite.a"), ".")
	src, _ := filepath.Abs("testdata/objc")
	bin := filepath.Join(work, "main")
	args := append(flags, "-w", "-I"+glue, "-o", bin, filepath.Join(src, "main.m"), filepath.Join(src, "shim.m"),
		filepath.Join(work, "libonionlite.a"), "-L"+gs.gccDir, "-lgnustep-base", "-lobjc", "-lpthread")
	run(t, work, nil, "clang", args...)

	outDir := t.TempDir()
	cmd := exec.Command(bin, n.AuthoritiesFile(), filepath.Join(work, "data"), n.HTTPTarget(), outDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	err = cmd.Wait()
	transcript := strings.Join(lines, "\n") + "\n--- stderr:\n" + stderr.String()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "OK" {
		t.Fatalf("objc main: %v\n%s", err, transcript)
	}
	for _, f := range []string{"socks.bin", "stream.bin", "download.bin"} {
		if got := fileSHA256(t, filepath.Join(outDir, f)); got != body.SHA256 {
			t.Errorf("%s: SHA-256 %s, want %s (1MiB.bin)", f, got, body.SHA256)
		}
	}
	t.Logf("objc main transcript:\n%s", transcript)
}
