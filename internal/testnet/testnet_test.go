package testnet_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

// fetch GETs http://target/name through the SOCKS5 proxy at socks and
// returns the body's size and hex SHA-256.
func fetch(ctx context.Context, socks, target, name string) (int64, string, error) {
	d := &transport.SOCKS5{Addr: socks}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/"+name, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("GET %s: %s", name, resp.Status)
	}
	h := sha256.New()
	size, err := io.Copy(h, resp.Body)
	return size, hex.EncodeToString(h.Sum(nil)), err
}

func body(t *testing.T, n *testnet.Network, name string) testnet.Body {
	t.Helper()
	for _, b := range n.Bodies() {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no body %s", name)
	return testnet.Body{}
}

// gone reports whether pid no longer runs (or is a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0)
}

// TestCTorClientFetch is the acceptance test of issue 3: a C tor client
// bootstraps through the network and fetches the 1 MiB body with the
// right SHA-256, through Go's SOCKS5 dialer and through curl.
func TestCTorClientFetch(t *testing.T) {
	n := testnet.Shared(t)
	defer testnet.CheckGoroutines(t)()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	c, err := n.StartClient(ctx, testnet.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.WaitBootstrapped(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("C tor client bootstrapped in %v", time.Since(t0).Round(time.Millisecond))
	if p, err := c.Progress(); err != nil || p != 100 {
		t.Fatalf("Progress() = %d, %v after WaitBootstrapped", p, err)
	}

	want := body(t, n, "1MiB.bin")
	t1 := time.Now()
	size, sum, err := fetch(ctx, c.SOCKSAddr(), n.HTTPTarget(), want.Name)
	if err != nil {
		t.Fatal(err)
	}
	if size != want.Size || sum != want.SHA256 {
		t.Fatalf("fetched %s: %d bytes, sha256 %s; want %d bytes, %s", want.Name, size, sum, want.Size, want.SHA256)
	}
	t.Logf("1 MiB through C tor (Go SOCKS5) in %v", time.Since(t1).Round(time.Millisecond))

	if curl, err := exec.LookPath("curl"); err == nil {
		out := filepath.Join(t.TempDir(), want.Name)
		cmd := exec.CommandContext(ctx, curl, "-sS", "--fail", "--max-time", "120", "--noproxy", "",
			"--socks5-hostname", c.SOCKSAddr(), "-o", out, "http://"+n.HTTPTarget()+"/"+want.Name)
		cmd.Env = append(os.Environ(), "ALL_PROXY=", "HTTP_PROXY=", "http_proxy=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl: %v: %s", err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != want.SHA256 {
			t.Fatalf("curl fetched %d bytes with the wrong SHA-256", len(got))
		}
	} else {
		t.Log("curl not installed: skipped the curl fetch")
	}

	read, written, err := c.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	if read < 2*want.Size || written <= 0 {
		t.Errorf("Traffic() = read %d, written %d after two 1 MiB fetches", read, written)
	}
	rss, err := c.PeakRSS()
	if err != nil || rss < 1<<20 || rss > 1<<30 {
		t.Errorf("PeakRSS() = %d, %v", rss, err)
	}
	t.Logf("client traffic: read %d written %d; peak RSS %.1f MB", read, written, float64(rss)/1e6)

	pid := c.PID()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("client pid %d still runs after Stop", pid)
	}
}

// TestCTorClientThroughSlowlink runs a C tor client whose every OR
// connection crosses a 64 kbit/s, 150 ms slow link (Socks5Proxy).
func TestCTorClientThroughSlowlink(t *testing.T) {
	n := testnet.Shared(t)
	defer testnet.CheckGoroutines(t)()
	p, err := slowlink.New(slowlink.Config{Rate: 64000, Delay: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t0 := time.Now()
	c, err := n.StartClient(ctx, testnet.ClientConfig{UpstreamSOCKS: p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.WaitBootstrapped(ctx); err != nil {
		t.Fatal(err)
	}
	boot := time.Since(t0)
	read, written, err := c.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	t.Logf("bootstrapped through slowlink in %v; tor read %d written %d; proxy down %d up %d over %d connections",
		boot.Round(time.Millisecond), read, written, s.Down, s.Up, s.Accepted)
	// Everything the client read came through the slow link (tor also
	// counts the proxies' 2+10-byte SOCKS replies, which the proxy does
	// not forward from a relay).
	if s.Accepted == 0 || s.Down < read-12*s.Accepted-512 || s.Down < 5000 {
		t.Errorf("proxy forwarded %d bytes down on %d connections, client read %d: traffic bypassed the link", s.Down, s.Accepted, read)
	}
	if boot < 2*150*time.Millisecond {
		t.Errorf("bootstrap in %v: faster than one round trip of the link", boot)
	}
	want := body(t, n, "hello.txt")
	size, sum, err := fetch(ctx, c.SOCKSAddr(), n.HTTPTarget(), want.Name)
	if err != nil || size != want.Size || sum != want.SHA256 {
		t.Fatalf("fetch %s through the slow link: %d bytes, %s, %v", want.Name, size, sum, err)
	}
}

// TestLoopbackOnly checks, after the tests above made traffic, that every
// socket of every node is TCP over IPv4 between loopback addresses (or a
// loopback listener): no UDP (so no DNS), no IPv6, nothing to the world.
func TestLoopbackOnly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	n := testnet.Shared(t)
	socks := procSockets(t)
	total := 0
	for _, nd := range n.Nodes() {
		fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(nd.PID), "fd"))
		if err != nil {
			t.Fatalf("%s: %v", nd.Nick, err)
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(nd.PID), "fd", fd.Name()))
			inode, ok := strings.CutPrefix(link, "socket:[")
			if err != nil || !ok {
				continue
			}
			desc, ok := socks[strings.TrimSuffix(inode, "]")]
			if !ok {
				continue // a unix socket or socketpair
			}
			total++
			f := strings.Fields(desc)
			local, remote := netip.MustParseAddrPort(f[1]), netip.MustParseAddrPort(f[2])
			if f[0] != "tcp" || !local.Addr().IsLoopback() || !(remote.Addr().IsLoopback() || remote.Addr().IsUnspecified()) {
				t.Errorf("%s (pid %d): socket %s", nd.Nick, nd.PID, desc)
			}
		}
	}
	if total < 3*len(n.Nodes()) {
		t.Errorf("found only %d inet sockets for %d nodes: the check saw nothing", total, len(n.Nodes()))
	}
	t.Logf("%d inet sockets of %d nodes, all TCP on 127.0.0.0/8", total, len(n.Nodes()))
}

// TestNodes checks what Nodes reports against the files tor wrote.
func TestNodes(t *testing.T) {
	n := testnet.Shared(t)
	nodes := n.Nodes()
	if len(nodes) != 10 {
		t.Fatalf("%d nodes, want 10", len(nodes))
	}
	roles := map[testnet.Role]int{}
	seen := map[int]bool{}
	for _, nd := range nodes {
		roles[nd.Role]++
		for _, p := range []int{nd.ORPort, nd.DirPort, nd.ControlPort} {
			if p <= 0 || seen[p] {
				t.Errorf("%s: port %d zero or used twice", nd.Nick, p)
			}
			seen[p] = true
		}
		fp, err := os.ReadFile(filepath.Join(nd.DataDir, "fingerprint"))
		if err != nil || string(fp) != nd.Nick+" "+nd.Fingerprint+"\n" {
			t.Errorf("%s: fingerprint file %q, Node says %s", nd.Nick, fp, nd.Fingerprint)
		}
		if nd.Ed25519ID == [32]byte{} {
			t.Errorf("%s: zero Ed25519ID", nd.Nick)
		}
		if (nd.Role == testnet.Authority) != (nd.V3Ident != "") {
			t.Errorf("%s: role %v with V3Ident %q", nd.Nick, nd.Role, nd.V3Ident)
		}
		if nd.PID <= 0 || gone(nd.PID) {
			t.Errorf("%s: pid %d not running", nd.Nick, nd.PID)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(nd.ORPort), 5*time.Second); err != nil {
			t.Errorf("%s: ORPort: %v", nd.Nick, err)
		} else {
			c.Close()
		}
	}
	if roles[testnet.Authority] != 3 || roles[testnet.Middle] != 4 || roles[testnet.Exit] != 3 {
		t.Errorf("roles %v, want 3 authorities, 4 middles, 3 exits", roles)
	}
	lines := n.AuthorityLines()
	file, err := os.ReadFile(n.AuthoritiesFile())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || string(file) != lines[0]+"\n"+lines[1]+"\n"+lines[2]+"\n" {
		t.Errorf("AuthoritiesFile holds %q; AuthorityLines %q", file, lines)
	}
}

// TestKillAndRestartNode kills a middle relay, restarts it, and waits
// until the network is ready again (so later tests find it healthy).
func TestKillAndRestartNode(t *testing.T) {
	n := testnet.Shared(t)
	var victim testnet.Node
	for _, nd := range n.Nodes() {
		if nd.Role == testnet.Middle {
			victim = nd
			break
		}
	}
	if err := n.KillNode(victim.Nick); err != nil {
		t.Fatal(err)
	}
	if !gone(victim.PID) {
		t.Fatalf("%s (pid %d) still runs after KillNode", victim.Nick, victim.PID)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(victim.ORPort), time.Second); err == nil {
		c.Close()
		t.Fatalf("%s ORPort still accepts connections after KillNode", victim.Nick)
	}
	if err := n.KillNode(victim.Nick); err == nil {
		t.Error("KillNode of a dead node succeeded")
	}
	if err := n.KillNode("nosuchnode"); err == nil {
		t.Error("KillNode of an unknown node succeeded")
	}
	if err := n.RestartNode(victim.Nick); err != nil {
		t.Fatal(err)
	}
	for _, nd := range n.Nodes() {
		if nd.Nick == victim.Nick {
			if nd.PID <= 0 || nd.PID == victim.PID || gone(nd.PID) || nd.ControlPort <= 0 {
				t.Fatalf("after RestartNode: pid %d (was %d), control port %d", nd.PID, victim.PID, nd.ControlPort)
			}
		}
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(victim.ORPort), 5*time.Second)
	if err != nil {
		t.Fatalf("%s ORPort after RestartNode: %v", victim.Nick, err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}
