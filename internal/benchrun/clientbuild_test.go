package benchrun

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestBuildFlags: the build settings that change the program become a
// command line; the target and the checkout are left out.
func TestBuildFlags(t *testing.T) {
	for _, c := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{[]debug.BuildSetting{{Key: "-buildmode", Value: "exe"}, {Key: "-compiler", Value: "gc"}, {Key: "-tags", Value: "nodev"},
			{Key: "CGO_ENABLED", Value: "0"}, {Key: "GOARCH", Value: "amd64"}, {Key: "GOOS", Value: "linux"}, {Key: "vcs.revision", Value: "abc"}},
			"CGO_ENABLED=0 -tags=nodev"},
		{[]debug.BuildSetting{{Key: "-buildmode", Value: "exe"}, {Key: "CGO_ENABLED", Value: "1"}, {Key: "CGO_CFLAGS", Value: "-O2 -g"}},
			"CGO_ENABLED=1"},
		{[]debug.BuildSetting{{Key: "-trimpath", Value: "true"}, {Key: "-ldflags", Value: "-s -w"}, {Key: "-pgo", Value: "/src/cmd/x/default.pgo"},
			{Key: "CGO_ENABLED", Value: "0"}},
			"CGO_ENABLED=0 -trimpath -ldflags='-s -w' -pgo=default.pgo"},
		{nil, "default flags"},
	} {
		if got := buildFlags(c.settings); got != c.want {
			t.Errorf("buildFlags(%v) = %q, want %q", c.settings, got, c.want)
		}
	}
	for build, lean := range map[string]bool{
		"CGO_ENABLED=0 -tags=nodev; statically linked":   true,
		"CGO_ENABLED=1 -tags=netgo,nodev":                true,
		"CGO_ENABLED=1; dynamically linked":              false,
		"CGO_ENABLED=0 -tags=nodevel; statically linked": false,
		"": false,
	} {
		if leanBuild(build) != lean {
			t.Errorf("leanBuild(%q) = %v", build, !lean)
		}
	}
	for build, want := range map[string]string{
		"": "build was not recorded",
		"CGO_ENABLED=0 -tags=nodev; statically linked": "is the lean client build (`CGO_ENABLED=0 -tags=nodev`, statically linked)",
		"CGO_ENABLED=1; dynamically linked":            "is the whole CLI with its developer commands (`CGO_ENABLED=1`, dynamically linked)",
	} {
		var b strings.Builder
		writeBuild(&b, build)
		if !strings.Contains(b.String(), want) {
			t.Errorf("writeBuild(%q) = %q, want it to say %q", build, b.String(), want)
		}
	}
}

// TestClientBuild reads the build of a real binary: a small program
// built as scripts/bench builds the measured client.
func TestClientBuild(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { println(\"hello\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-tags", "nodev", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	got := ClientBuild(bin)
	if got != "CGO_ENABLED=0 -tags=nodev; statically linked" || !leanBuild(got) {
		t.Errorf("ClientBuild = %q", got)
	}
	if got := ClientBuild(filepath.Join(dir, "go.mod")); got != "" {
		t.Errorf("ClientBuild of a text file = %q, want \"\"", got)
	}
	// The set records it.
	if e := CollectEnv(Options{Bin: bin}); e.Build != "CGO_ENABLED=0 -tags=nodev; statically linked" {
		t.Errorf("CollectEnv: onionlite_build %q", e.Build)
	}
}
