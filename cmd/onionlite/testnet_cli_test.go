//go:build !nodev

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/transport"
)

// buildCLI builds this command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "onionlite")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runCLI(t *testing.T, timeout time.Duration, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return code, o.String(), e.String()
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && len(b) > 0
}

type cliState struct {
	HTTPTarget string `json:"http_target"`
	HTTPPID    int    `json:"http_pid"`
	Bodies     []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"bodies"`
	Nodes []struct {
		Nick        string `json:"nick"`
		Role        string `json:"role"`
		ORPort      int    `json:"or_port"`
		DirPort     int    `json:"dir_port"`
		Fingerprint string `json:"fingerprint"`
		PID         int    `json:"pid"`
	} `json:"nodes"`
}

// TestTestnetUpStatusDown drives "onionlite testnet up/status/down" as a
// user would: the network outlives "up", a C tor client fetches the 1 MiB
// body through it, "down" leaves no recorded process behind, and a second
// "up" restarts the stopped network warm.
func TestTestnetUpStatusDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Tor network")
	}
	testnet.RequireTor(t)
	bin := buildCLI(t)
	dir := filepath.Join(t.TempDir(), "net")
	t.Cleanup(func() {
		if _, err := testnet.Down(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
		if t.Failed() {
			t.Logf("network logs in %s", filepath.Join(dir, "logs"))
		}
	})

	code, out, errOut := runCLI(t, 7*time.Minute, bin, "testnet", "up", "--dir", dir, "-q")
	if code != 0 {
		t.Fatalf("testnet up: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("up: %s", strings.SplitN(out, "\n", 2)[0])

	var st cliState
	b, err := os.ReadFile(filepath.Join(dir, "testnet.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 10 || len(st.Bodies) != 4 || st.HTTPPID <= 0 || !strings.HasPrefix(st.HTTPTarget, "127.0.0.1:") {
		t.Fatalf("testnet.json: %d nodes, %d bodies, http %s pid %d", len(st.Nodes), len(st.Bodies), st.HTTPTarget, st.HTTPPID)
	}
	pids := []int{st.HTTPPID}
	for _, nd := range st.Nodes {
		if nd.Nick == "" || nd.Role == "" || nd.ORPort <= 0 || nd.DirPort <= 0 || len(nd.Fingerprint) != 40 || !alive(nd.PID) {
			t.Errorf("testnet.json node %+v", nd)
		}
		pids = append(pids, nd.PID)
	}
	auths, err := os.ReadFile(filepath.Join(dir, "authorities"))
	if err != nil || strings.Count(string(auths), "DirAuthority auth") != 3 {
		t.Fatalf("authorities file %q, %v", auths, err)
	}

	code, out, _ = runCLI(t, time.Minute, bin, "testnet", "status", "--dir", dir)
	if code != 0 || strings.Count(out, " alive") != 11 || !strings.Contains(out, "(live)") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	// A second "up" on a running network refuses and leaves it alone.
	if code, _, errOut := runCLI(t, time.Minute, bin, "testnet", "up", "--dir", dir, "-q"); code != 1 || !strings.Contains(errOut, "still running") {
		t.Fatalf("second up: exit %d\n%s", code, errOut)
	}
	if code, out, _ = runCLI(t, time.Minute, bin, "testnet", "status", "--dir", dir); code != 0 {
		t.Fatalf("status after a refused second up: exit %d\n%s", code, out)
	}

	// A C tor client against the network "up" left running.
	n, err := testnet.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := n.StartClient(ctx, testnet.ClientConfig{Dir: filepath.Join(t.TempDir(), "client")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBootstrapped(ctx); err != nil {
		t.Fatal(err)
	}
	var want = st.Bodies[2]
	if want.Name != "1MiB.bin" {
		t.Fatalf("bodies %+v", st.Bodies)
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: (&transport.SOCKS5{Addr: c.SOCKSAddr()}).DialContext}}
	resp, err := hc.Get("http://" + st.HTTPTarget + "/" + want.Name)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	size, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || size != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		t.Fatalf("fetched %d bytes (%v), sha256 %x; want %d, %s", size, err, h.Sum(nil), want.Size, want.SHA256)
	}
	hc.CloseIdleConnections()
	clientPID := c.PID()
	if err := n.Stop(); err != nil { // stops only the client
		t.Fatal(err)
	}
	if alive(clientPID) {
		t.Errorf("client %d still runs", clientPID)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d died when the attached Network stopped", pid)
		}
	}

	code, out, errOut = runCLI(t, time.Minute, bin, "testnet", "down", "--dir", dir)
	if code != 0 || !strings.Contains(out, "stopped 11 processes") {
		t.Fatalf("down: exit %d\n%s%s", code, out, errOut)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still runs after down", pid)
		}
	}
	code, out, _ = runCLI(t, time.Minute, bin, "testnet", "status", "--dir", dir)
	if code != 1 || strings.Count(out, " dead") != 11 {
		t.Errorf("status after down: exit %d\n%s", code, out)
	}
	if code, out, _ = runCLI(t, time.Minute, bin, "testnet", "down", "--dir", dir); code != 0 || !strings.Contains(out, "nothing was running") {
		t.Errorf("second down: exit %d: %s", code, out)
	}

	// A warm restart reuses keys and ports, and comes back quickly.
	t0 := time.Now()
	code, out, errOut = runCLI(t, 5*time.Minute, bin, "testnet", "up", "--dir", dir, "-q")
	if code != 0 {
		t.Fatalf("warm up: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("warm restart ready in %v", time.Since(t0).Round(time.Millisecond))
	code, out, _ = runCLI(t, time.Minute, bin, "testnet", "down", "--dir", dir)
	if code != 0 || !strings.Contains(out, "stopped 11 processes") {
		t.Fatalf("down after warm up: exit %d\n%s", code, out)
	}
}

func TestTestnetUsage(t *testing.T) {
	for _, args := range [][]string{
		{"testnet", "up"}, {"testnet", "up", "--dir"}, {"testnet", "up", "--dir", "x", "extra"},
		{"testnet", "up", "--dir", "x", "--exits", "0"}, {"testnet", "down"}, {"testnet", "status"},
		{"testnet", "serve-http"}, {"slowlink", "--rate", "fast"}, {"slowlink", "--reset-after", "-1"},
		{"slowlink", "--queue", "x"}, {"slowlink", "stray"},
	} {
		var o, e bytes.Buffer
		if code := run(args, &o, &e); code != 2 || e.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, e.String())
		}
	}
	var o, e bytes.Buffer
	if code := run([]string{"testnet", "down", "--dir", t.TempDir()}, &o, &e); code != 1 {
		t.Errorf("down of an empty dir: exit %d", code)
	}
	if code := run([]string{"slowlink", "--listen", "0.0.0.0:0"}, &o, &e); code != 1 || !strings.Contains(e.String(), "not loopback") {
		t.Errorf("slowlink on 0.0.0.0: exit %d, %q", code, e.String())
	}
}

// TestSlowlinkCLI runs "onionlite slowlink", proxies one exchange through
// it and checks the counters it prints on SIGTERM.
func TestSlowlinkCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildCLI(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	cmd := exec.Command(bin, "slowlink", "--listen", "127.0.0.1:0", "--rate", "64kbit", "--delay", "50ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	if _, err := fmt.Sscanf(line, "slowlink: SOCKS5 on %s", &addr); err != nil {
		t.Fatalf("first line %q: %v", line, err)
	}
	c, err := (&transport.SOCKS5{Addr: addr}).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if rtt := time.Since(t0); rtt < 100*time.Millisecond {
		t.Errorf("RTT %v through a 50 ms link", rtt)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(br)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slowlink exit: %v", err)
	}
	if !strings.Contains(string(rest), "up 5 B, down 5 B") {
		t.Errorf("final counters: %q", rest)
	}
}
