package examples

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

func build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestExamplesRun runs each example against the real-tor test network.
func TestExamplesRun(t *testing.T) {
	n := testnet.Shared(t)
	body, _ := n.Body("64KiB.bin")
	url := "http://" + n.HTTPTarget() + "/64KiB.bin"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, build(t, "./httpclient"), "-authorities", n.AuthoritiesFile(), "-url", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sha256 "+body.SHA256) {
		t.Fatalf("httpclient: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, build(t, "./isolation"), "-authorities", n.AuthoritiesFile(), "-url", url).CombinedOutput()
	if err != nil || strings.Count(string(out), "200 OK") != 3 {
		t.Fatalf("isolation: %v\n%s", err, out)
	}

	// socksproxy: start it, wait for ready, fetch through it with Go.
	cmd := exec.CommandContext(ctx, build(t, "./socksproxy"), "-authorities", n.AuthoritiesFile(), "-listen", "127.0.0.1:0", "-data-dir", t.TempDir())
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	addr := ""
	for sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), "ready; SOCKS5 on "); ok {
			addr = a
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if addr == "" {
		t.Fatal("socksproxy never became ready")
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.CommandContext(ctx, curl, "-sS", "-o", "/dev/null", "-w", "%{size_download}", "--socks5-hostname", addr, url).Output()
		if err != nil || string(out) != "65536" {
			t.Fatalf("curl through socksproxy: %v %q", err, out)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
}
