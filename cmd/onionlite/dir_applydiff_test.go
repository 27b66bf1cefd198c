package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/realnet"
)

func runApplyDiff(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(append([]string{"dir", "apply-diff"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestDirApplyDiff(t *testing.T) {
	const d = "2021-08-29-consensus-diffs/"
	base17 := realnet.Path(t, d+"consensus-microdesc-2021-08-29-17-00-00")
	base26 := realnet.Path(t, d+"consensus-microdesc-2021-08-26-19-00-00")
	diff := realnet.Path(t, d+"diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00")
	diffGz := realnet.Path(t, d+"diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00.gz")
	want, err := os.ReadFile(realnet.Path(t, d+"consensus-microdesc-2021-08-29-19-00-00"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")

	for _, df := range []string{diff, diffGz} {
		os.Remove(out)
		code, stdout, stderr := runApplyDiff(t, "--base", base17, "--diff", df, "--out", out)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", df, code, stderr)
		}
		if !strings.Contains(stdout, "60A8C62783E69EE751C288D37E33D271A842C354818993823E79925603240E80") {
			t.Errorf("stdout %q lacks the TO digest", stdout)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: output differs from the real 19:00 consensus", df)
		}
	}

	// Failures: non-zero exit, exactly one stderr line, --out untouched.
	sentinel := []byte("previous content\n")
	truncated := filepath.Join(dir, "truncated-diff")
	raw, err := os.ReadFile(diff)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	badGz := filepath.Join(dir, "bad.gz")
	if err := os.WriteFile(badGz, []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong base", []string{"--base", base26, "--diff", diff, "--out", out}, 1, "FROM digest"},
		{"diff as base", []string{"--base", diff, "--diff", diff, "--out", out}, 1, "FROM digest"},
		{"truncated diff", []string{"--base", base17, "--diff", truncated, "--out", out}, 1, "malformed"},
		{"bad gzip", []string{"--base", base17, "--diff", badGz, "--out", out}, 1, "gzip"},
		{"missing base file", []string{"--base", filepath.Join(dir, "nope"), "--diff", diff, "--out", out}, 1, "no such file"},
		{"missing flag", []string{"--base", base17, "--diff", diff}, 2, "required"},
		{"unknown flag", []string{"--base", base17, "--diff", diff, "--out", out, "--x"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"--base", base17, "--diff", diff, "--out", out, "more"}, 2, "unexpected argument"},
		{"out dir missing", []string{"--base", base17, "--diff", diff, "--out", filepath.Join(dir, "no", "out")}, 1, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(out, sentinel, 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runApplyDiff(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q: want one line containing %q", stderr, c.msg)
			}
			got, err := os.ReadFile(out)
			if err != nil || !bytes.Equal(got, sentinel) {
				t.Errorf("--out changed on failure (err %v)", err)
			}
		})
	}

	// No temporary files are left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left temporary file %s", e.Name())
		}
	}
}

func TestDirApplyDiffHelp(t *testing.T) {
	code, stdout, _ := runApplyDiff(t, "-h")
	if code != 0 || !strings.Contains(stdout, "--base FILE --diff FILE --out FILE") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}
