package onionlite

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/testnet"
)

// findJDK returns a JDK home with javac, java and include/jni.h:
// $JAVA_HOME, else the JDK that the javac on $PATH belongs to.
func findJDK(t *testing.T) string {
	t.Helper()
	var homes []string
	if h := os.Getenv("JAVA_HOME"); h != "" {
		homes = append(homes, h)
	}
	if javac, err := exec.LookPath("javac"); err == nil {
		if real, err := filepath.EvalSymlinks(javac); err == nil {
			homes = append(homes, filepath.Dir(filepath.Dir(real)))
		}
	}
	for _, h := range homes {
		ok := true
		for _, f := range []string{"bin/javac", "bin/java", "include/jni.h", "include/linux/jni_md.h"} {
			if _, err := os.Stat(filepath.Join(h, f)); err != nil {
				ok = false
			}
		}
		if ok {
			return h
		}
	}
	missingTool(t, "no JDK found (javac and include/jni.h; Debian: apt-get install openjdk-17-jdk-headless)")
	return ""
}

// TestJavaBinding compiles the facade's gobind Java binding for the
// desktop JVM (JNI glue built as libgojni.so with stand-ins for Android's
// liblog and Context) and runs testdata/java/BindingMain.java against the
// real-tor test network: bootstrap with progress callbacks, the 1 MiB body
// through the SOCKS port, a Stream and Download (all checked by SHA-256
// here), error kinds, lifecycle calls and Stop.
func TestJavaBinding(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the host-JVM recipe is for Linux")
	}
	n := testnet.Shared(t)
	jdk := findJDK(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		missingTool(t, "no gcc for the JNI glue")
	}
	body, ok := n.Body("1MiB.bin")
	if !ok {
		t.Fatal("the test network serves no 1MiB.bin")
	}

	out := gobind(t, "go,java")
	glue := glueCopy(t, out, map[string]string{"_android.go": "_hostjni.go", "_android.c": "_hostjni.c"})
	work := t.TempDir()
	stub := filepath.Join(work, "stub")
	for _, d := range []string{"include/android", "lib"} {
		if err := os.MkdirAll(filepath.Join(stub, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logh, err := os.ReadFile("testdata/jni/android/log.h")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stub, "include/android/log.h"), logh, 0o644); err != nil {
		t.Fatal(err)
	}
	// An empty ar archive stands in for Android's liblog.
	if err := os.WriteFile(filepath.Join(stub, "lib/liblog.a"), []byte("!<arch>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(work, "lib")
	run(t, glue, []string{
		"CGO_ENABLED=1",
		// The glue's "#cgo android CFLAGS" do not apply on linux; OpenJDK's
		// jni.h types AttachCurrentThread's second argument differently.
		"CGO_CFLAGS=-D__GOBIND_ANDROID__ -Wno-incompatible-pointer-types -I" + filepath.Join(jdk, "include") +
			" -I" + filepath.Join(jdk, "include/linux") + " -I" + filepath.Join(stub, "include"),
		"CGO_LDFLAGS=-L" + filepath.Join(stub, "lib"),
	}, "go", "build", "-buildmode=c-shared", "-o", filepath.Join(lib, "libgojni.so"), ".")

	classes := filepath.Join(work, "classes")
	var sources []string
	for _, root := range []string{filepath.Join(out, "java"), "testdata/java"} {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".java") {
				sources = append(sources, p)
			}
			return err
		})
	}
	run(t, ".", nil, filepath.Join(jdk, "bin/javac"), append([]string{"-nowarn", "-encoding", "UTF-8", "-d", classes}, sources...)...)

	dataDir := filepath.Join(work, "data")
	outFile := filepath.Join(work, "download.bin")
	cmd := exec.Command(filepath.Join(jdk, "bin/java"), "--enable-native-access=ALL-UNNAMED",
		"-Djava.library.path="+lib, "-Xcheck:jni", "-XX:+DisplayVMOutputToStderr", "-cp", classes, "BindingMain",
		n.AuthoritiesFile(), dataDir, n.HTTPTarget(), outFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if k, v, ok := strings.Cut(line, " "); ok {
			results[k] = v
		}
	}
	err = cmd.Wait()
	// -Xcheck:jni makes JNI misuse fatal. It also warns about every JNI
	// call in gobind's glue that does not check for an exception first
	// (gobind's habit, harmless while no exception is pending); those
	// warnings are counted, not shown.
	var vm []string
	warnings := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "WARNING in native method: JNI call made without checking exceptions"):
			warnings++
		case strings.HasPrefix(l, "WARNING") || strings.Contains(l, "FATAL") || strings.Contains(l, "Exception"):
			vm = append(vm, l)
		}
	}
	transcript := strings.Join(lines, "\n") + fmt.Sprintf("\n--- JVM: %d unchecked-exception warnings from the glue; other lines:\n%s",
		warnings, strings.Join(vm, "\n"))
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "OK" || strings.Contains(stderr.String(), "FATAL ERROR") {
		t.Fatalf("java BindingMain: %v\n%s\n--- stderr:\n%s", err, transcript, stderr.String())
	}
	for _, k := range []string{"socks-sha256", "stream-sha256", "download-sha256"} {
		if !strings.HasPrefix(results[k], body.SHA256+" ") {
			t.Errorf("%s: got %q, want the SHA-256 of 1MiB.bin %s", k, results[k], body.SHA256)
		}
	}
	if !strings.Contains(results["progress"], " last ready 100 ") {
		t.Errorf("progress line %q", results["progress"])
	}
	t.Logf("java BindingMain transcript:\n%s", transcript)
}
