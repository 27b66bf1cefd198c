package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

// TestGetCommand fetches the 1 MiB and 10 MiB bodies with "onionlite
// get" and checks their SHA-256 and the stats contract.
func TestGetCommand(t *testing.T) {
	n := testnet.Shared(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, name := range []string{"1MiB.bin", "10MiB.bin"} {
		body, _ := n.Body(name)
		out := filepath.Join(dir, name)
		statsPath := filepath.Join(dir, name+".json")
		var stdout, stderr bytes.Buffer
		code := run([]string{"get", "--authorities", n.AuthoritiesFile(), "--data-dir", data, "--stats-json", statsPath,
			"-o", out, "http://" + n.HTTPTarget() + "/" + name}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("get %s exited %d: %s", name, code, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != body.SHA256 {
			t.Fatalf("%s: wrong SHA-256", name)
		}
		st := readStats(t, statsPath)
		if st.FirstByteMS == nil || st.TotalMS == nil || *st.TotalMS < *st.FirstByteMS || st.BodyBytes == nil ||
			*st.BodyBytes != body.Size || st.BytesRead < body.Size || st.PeakRSSBytes == 0 {
			t.Fatalf("%s stats: %+v", name, st)
		}
	}
	// Body to stdout.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"get", "-q", "--authorities", n.AuthoritiesFile(), "--data-dir", data, "http://" + n.HTTPTarget() + "/64KiB.bin"}, &stdout, &stderr); code != 0 {
		t.Fatalf("get to stdout exited %d: %s", code, stderr.String())
	}
	body, _ := n.Body("64KiB.bin")
	if s := sha256.Sum256(stdout.Bytes()); hex.EncodeToString(s[:]) != body.SHA256 {
		t.Fatal("64 KiB to stdout: wrong SHA-256")
	}
}

func TestGetCommandErrors(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"get"}, {"get", "ftp://x/"}, {"get", "http://a/", "http://b/"}} {
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestSocksCommand runs "onionlite socks" as a process, fetches through it
// with curl, and stops it with SIGTERM.
func TestSocksCommand(t *testing.T) {
	n := testnet.Shared(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	bin := filepath.Join(t.TempDir(), "onionlite")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "socks", "--listen", "127.0.0.1:0", "--authorities", n.AuthoritiesFile(), "--data-dir", t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	addr := ""
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "ready: SOCKS proxy on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the proxy never said it was ready")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--socks5-hostname", addr, "http://"+n.HTTPTarget()+"/1MiB.bin").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	body, _ := n.Body("1MiB.bin")
	if s := sha256.Sum256(out); hex.EncodeToString(s[:]) != body.SHA256 {
		t.Fatal("curl through onionlite socks: wrong body")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("socks exited with %v after SIGTERM", err)
	}
}
