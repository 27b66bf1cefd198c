package main

import (
	"bufio"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/onionlite/onionlite/internal/testnet"
)

// TestSocksRefusesNonLoopback: "onionlite socks" on a wildcard address
// without --allow-remote exits at once with an error that says why,
// before bootstrapping, and never claims to be serving. (The refusal
// closes the listener at once; nothing is served beyond loopback. Should
// the command serve after all, the test stops it with SIGINT, which the
// command handles.)
func TestSocksRefusesNonLoopback(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	n := testnet.Shared(t)
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		pr, pw := io.Pipe()
		code := make(chan int, 1)
		go func() {
			code <- run([]string{"socks", "--listen", addr, "--authorities", n.AuthoritiesFile(), "--data-dir", t.TempDir()}, io.Discard, pw)
			pw.Close()
		}()
		var said []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			said = append(said, sc.Text())
			if strings.HasPrefix(sc.Text(), "ready: SOCKS proxy") {
				t.Errorf("socks --listen %s is serving: %q", addr, said)
				syscall.Kill(syscall.Getpid(), syscall.SIGINT)
			}
		}
		c := <-code
		text := strings.Join(said, "\n")
		if strings.Contains(text, "address family not supported") || strings.Contains(text, "cannot assign requested address") {
			t.Logf("%s: no such address family here: %s", addr, text)
			continue
		}
		if c != 1 || !strings.Contains(text, "non-loopback") || !strings.Contains(text, "--allow-remote") {
			t.Errorf("socks --listen %s: exit %d, stderr:\n%s", addr, c, text)
		}
		if strings.Contains(text, "bootstrap") {
			t.Errorf("socks --listen %s bootstrapped before refusing:\n%s", addr, text)
		}
	}
}
