package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/testnet"
)

func readStats(t *testing.T, path string) clientStats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s clientStats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// TestBootstrapCommand: a cold bootstrap leaves a cache whose consensus
// "dir verify" accepts; a warm one within its freshness reads nothing.
func TestBootstrapCommand(t *testing.T) {
	n := testnet.Shared(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	statsPath := filepath.Join(dir, "stats.json")
	var out, errb bytes.Buffer
	if code := run([]string{"bootstrap", "--authorities", n.AuthoritiesFile(), "--data-dir", data, "--stats-json", statsPath}, &out, &errb); code != 0 {
		t.Fatalf("bootstrap exited %d: %s", code, errb.String())
	}
	cold := readStats(t, statsPath)
	if cold.ConsensusSource != "full" || cold.DirBytesRead == 0 || cold.BytesRead < cold.DirBytesRead ||
		cold.MicrodescsFetched != len(n.Nodes()) || cold.PeakRSSBytes == 0 || cold.BootstrapMS <= 0 {
		t.Fatalf("cold stats: %+v", cold)
	}

	// Export what the cache holds and check it with "dir verify".
	db, err := dircache.Open(filepath.Join(data, "cache"), dircache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Consensus("microdesc")
	if err != nil {
		t.Fatal(err)
	}
	certs, _, err := db.Certs()
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	consPath, certsPath := filepath.Join(dir, "consensus"), filepath.Join(dir, "certs")
	var all []byte
	for _, ct := range certs {
		all = append(all, ct.Text...)
	}
	if err := os.WriteFile(consPath, c.Text, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certsPath, all, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"dir", "verify", "--consensus", consPath, "--certs", certsPath, "--authorities", n.AuthoritiesFile()}, &out, &errb); code != 0 {
		t.Fatalf("dir verify rejected the cached consensus (exit %d): %s", code, errb.String())
	}

	// Warm.
	errb.Reset()
	if code := run([]string{"bootstrap", "--authorities", n.AuthoritiesFile(), "--data-dir", data, "--stats-json", statsPath}, &out, &errb); code != 0 {
		t.Fatalf("warm bootstrap exited %d: %s", code, errb.String())
	}
	warm := readStats(t, statsPath)
	if time.Now().Before(c.FreshUntil) {
		if warm.ConsensusSource != "cache" || warm.DirBytesRead != 0 || warm.BytesRead != 0 {
			t.Fatalf("warm stats: %+v", warm)
		}
	} else {
		t.Logf("the consensus went stale between runs; warm stats %+v", warm)
	}
}

func TestBootstrapCommandErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bootstrap", "--authorities", "/nonexistent"}, &out, &errb); code != 2 {
		t.Fatalf("missing authorities file: exit %d", code)
	}
	if code := run([]string{"bootstrap", "--proxy", "http://x:1", "--data-dir", t.TempDir()}, &out, &errb); code != 2 {
		t.Fatalf("bad proxy: exit %d", code)
	}
	if code := run([]string{"bootstrap", "extra"}, &out, &errb); code != 2 {
		t.Fatalf("extra argument: exit %d", code)
	}
}
