//go:build !nodev

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchClientBin: the bench measures its own binary unless
// --client-bin names another, which it takes as an absolute path; it
// re-runs itself (the replay's namespace), not the client.
func TestBenchClientBin(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var e bytes.Buffer
	o, reportOnly, code := benchOptions([]string{"--quick"}, &e)
	if code >= 0 || reportOnly {
		t.Fatalf("--quick: code %d, report-only %v: %s", code, reportOnly, e.String())
	}
	if o.Bin != self || o.Reexec[0] != self || o.Reps != 1 || len(o.Networks) != 1 {
		t.Errorf("--quick: Bin %q, Reexec %q, reps %d, networks %v; want %q", o.Bin, o.Reexec, o.Reps, o.Networks, self)
	}

	dir := t.TempDir()
	client := filepath.Join(dir, "onionlite-client")
	if err := os.WriteFile(client, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	o, _, code = benchOptions([]string{"--quick", "--client-bin", "onionlite-client"}, &e)
	if code >= 0 {
		t.Fatalf("--client-bin: code %d: %s", code, e.String())
	}
	if want, _ := filepath.Abs("onionlite-client"); o.Bin != want || o.Reexec[0] != self {
		t.Errorf("--client-bin: Bin %q (want %q), Reexec %q", o.Bin, want, o.Reexec)
	}

	for _, bad := range []string{filepath.Join(dir, "missing"), dir} {
		e.Reset()
		if code := run([]string{"bench", "--quick", "--client-bin", bad}, &bytes.Buffer{}, &e); code != 2 || !strings.Contains(e.String(), "--client-bin") {
			t.Errorf("--client-bin %s: code %d, stderr %q", bad, code, e.String())
		}
	}
}
