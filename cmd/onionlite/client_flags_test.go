package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{"16MiB": 16 << 20, "16M": 16 << 20, "128 MB": 128 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "20000000": 20000000}
	for in, want := range good {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "16TiB", "1.5MiB", "99999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestMemoryBudgetFlag: the budget reaches the client, and one below the
// sdk's minimum is refused before anything starts.
func TestMemoryBudgetFlag(t *testing.T) {
	var f clientFlags
	f.dataDir = t.TempDir()
	f.memory = "16MiB"
	c, err := f.client(&bytes.Buffer{})
	if err != nil || c.MemoryBudget != 16<<20 {
		t.Fatalf("client: budget %d, %v", c.MemoryBudget, err)
	}
	f.memory = "16 parsecs"
	if _, err := f.client(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--memory-budget") {
		t.Fatalf("bad budget: %v", err)
	}
	auths := filepath.Join(t.TempDir(), "authorities")
	line := "DirAuthority a orport=1 no-v2 v3ident=" + strings.Repeat("A", 40) + " 127.0.0.1:1 " + strings.Repeat("B", 40) + "\n"
	if err := os.WriteFile(auths, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"bootstrap", "--data-dir", t.TempDir(), "--memory-budget", "4MiB", "--authorities", auths, "--timeout", "20s"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "budget") {
		t.Fatalf("a 4 MiB budget: exit %d: %s", code, stderr.String())
	}
	t.Logf("4 MiB: %s", strings.TrimSpace(stderr.String()))
}

// TestBootstrapRetriesUntilTimeout: a failed bootstrap round does not end
// the command; it says so and waits for the client's retries until
// --timeout.
func TestBootstrapRetriesUntilTimeout(t *testing.T) {
	auths := filepath.Join(t.TempDir(), "authorities")
	line := "DirAuthority a orport=1 no-v2 v3ident=" + strings.Repeat("A", 40) + " 127.0.0.1:1 " + strings.Repeat("B", 40) + "\n"
	if err := os.WriteFile(auths, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	code := run([]string{"bootstrap", "--data-dir", t.TempDir(), "--authorities", auths, "--timeout", "4s"}, &stdout, &stderr)
	took := time.Since(t0)
	out := stderr.String()
	if code != 1 || !strings.Contains(out, "retrying") || !strings.Contains(out, "timeout") || took < 4*time.Second {
		t.Fatalf("exit %d after %v: %s", code, took, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}
