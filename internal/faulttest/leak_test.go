package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/safelog"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// forbidLocalDNS replaces net.DefaultResolver with a pure-Go resolver whose
// DNS transport fails the test, for the rest of the test. It checks first
// that a lookup really reaches the hook. (Names in /etc/hosts are answered
// without DNS, so the tests use names that are not there.)
func forbidLocalDNS(t *testing.T) {
	t.Helper()
	var mu sync.Mutex
	armed := false
	var seen []string
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, network+" "+address)
		if armed {
			t.Errorf("local DNS lookup on the dial path (%s %s)", network, address)
		}
		return nil, errors.New("faulttest: local DNS is forbidden")
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
	// Control: a lookup goes through the hook.
	if _, err := net.DefaultResolver.LookupHost(context.Background(), "dns-control.onionlite-canary.example"); err == nil {
		t.Fatal("control lookup succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the resolver hook did not see the control lookup: the test could not catch a local lookup")
	}
	armed = true
}

// socksConnect speaks SOCKS5 (no auth, CONNECT by name) or SOCKS4a to the
// proxy at addr and returns the reply code (0 / 0x5a: granted) and the
// connection.
func socksConnect(t *testing.T, addr string, v4a bool, host string, port uint16) (byte, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Minute)) // a hang guard, not an assertion
	var req []byte
	if v4a {
		req = binary.BigEndian.AppendUint16([]byte{4, 1}, port)
		req = append(req, 0, 0, 0, 1, 0) // 0.0.0.1: the name follows; empty user ID
		req = append(append(req, host...), 0)
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		r := make([]byte, 8)
		if _, err := io.ReadFull(c, r); err != nil {
			t.Fatalf("SOCKS4a reply: %v", err)
		}
		return r[1], c
	}
	req = []byte{5, 1, 0, 5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 2+4)
	if _, err := io.ReadFull(c, r); err != nil || r[0] != 5 || r[1] != 0 {
		t.Fatalf("SOCKS5 greeting and reply head %x: %v", r, err)
	}
	// The rest of the reply: an address of ATYP r[5], then a port.
	rest := map[byte]int{1: 4 + 2, 4: 16 + 2}[r[5]]
	if r[5] == 3 {
		l := make([]byte, 1)
		io.ReadFull(c, l)
		rest = int(l[0]) + 2
	}
	if _, err := io.ReadFull(c, make([]byte, rest)); err != nil {
		t.Fatalf("SOCKS5 reply address: %v", err)
	}
	return r[3], c
}

// serveSOCKS serves c's SOCKS port on 127.0.0.1 for the rest of the test.
func serveSOCKS(t *testing.T, c *sdk.Client) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.ServeSOCKS(ln) }()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return ln.Addr().String()
}

// fetchHello reads /hello.txt over conn, which reaches the HTTP target.
func fetchHello(conn net.Conn, host string) error {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not an assertion
	fmt.Fprintf(conn, "GET /hello.txt HTTP/1.0\r\nHost: %s\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET /hello.txt: %s", resp.Status)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// dnsPaths are the sdk's ways to reach a named host; each fetches
// /hello.txt from host:port.
func dnsPaths(t *testing.T, c *sdk.Client) map[string]func(ctx context.Context, host string, port uint16) error {
	socks := serveSOCKS(t, c)
	viaSOCKS := func(v4a bool) func(ctx context.Context, host string, port uint16) error {
		return func(ctx context.Context, host string, port uint16) error {
			code, conn := socksConnect(t, socks, v4a, host, port)
			if code != 0 && code != 0x5a {
				conn.Close()
				return fmt.Errorf("SOCKS reply %#x", code)
			}
			return fetchHello(conn, host)
		}
	}
	return map[string]func(ctx context.Context, host string, port uint16) error{
		"dialcontext": func(ctx context.Context, host string, port uint16) error {
			conn, err := c.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
			if err != nil {
				return err
			}
			return fetchHello(conn, host)
		},
		"httpclient": func(ctx context.Context, host string, port uint16) error {
			hc := c.HTTPClient()
			defer hc.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, strconv.Itoa(int(port)))+"/hello.txt", nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		},
		"resolve": func(ctx context.Context, host string, port uint16) error {
			addrs, err := c.Resolve(ctx, host)
			if err == nil && (len(addrs) != 1 || addrs[0].String() != "127.0.0.1") {
				err = fmt.Errorf("resolved to %v", addrs)
			}
			return err
		},
		"socks5":  viaSOCKS(false),
		"socks4a": viaSOCKS(true),
	}
}

// TestNoLocalDNS reaches names through every entry point of the sdk
// (DialContext, HTTPClient, Resolve, SOCKS5 and SOCKS4a by name) with a
// resolver that fails the test when it is asked anything. A DNS server
// for the exits (exitDNS) resolves the names at the exit, so each fetch
// by name succeeds and the server's log shows the exit asked for that very
// name. Without that server (port 53 taken), the names fail at the exit,
// which must come back as the exit's refusal or a timeout.
func TestNoLocalDNS(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	dns := startExitDNS(t)
	forbidLocalDNS(t)
	c := newClient(t, n, t.TempDir(), nil)
	ctx := ctxFor(t, 5*time.Minute)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	port := uint16(targetPort(t, n))
	for name, reach := range dnsPaths(t, c) {
		host := name + "." + canaryDomain
		if dns == nil {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := reach(cctx, host, port)
			cancel()
			if err == nil {
				t.Errorf("%s: %s reached with no DNS server anywhere", name, host)
			}
			continue
		}
		if err := reach(ctx, host, port); err != nil {
			t.Errorf("%s: %s: %v", name, host, err)
		}
		if dns.askedFor(host) == 0 {
			t.Errorf("%s: the exits never asked for %s", name, host)
		}
	}
	if dns != nil {
		// A name the exit cannot resolve is the exit's refusal.
		if _, err := c.DialContext(ctx, "tcp", "nx.onionlite-canary.invalid:80"); !errors.Is(err, &sdk.Error{Kind: sdk.KindExitRefused}) {
			t.Errorf("dial to an NXDOMAIN name: %v, want KindExitRefused", err)
		}
	}
}

// lockedLog collects log lines from several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format, args...)
	l.b.WriteByte('\n')
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsScrubDestinations runs a client whose debug log is captured
// through bootstrap, fetches by name (DialContext, HTTPClient with a URL
// path, Resolve, SOCKS5, SOCKS4a), fetches by address, and dials that fail
// at the exit, all to recognisable destinations. None of them (names, the
// HTTP target's address, the URL path) may reach the log, while lines
// about the failed dials do appear, scrubbed. With safe logging turned off
// the same run shows the names: the test can see a leak.
func TestLogsScrubDestinations(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	dns := startExitDNS(t)
	port := uint16(targetPort(t, n))
	secrets := []string{"onionlite-canary", n.HTTPTarget(), "secret-path"}
	run := func(t *testing.T) string {
		var log lockedLog
		c := newClient(t, n, t.TempDir(), log.logf)
		ctx := ctxFor(t, 5*time.Minute)
		if err := c.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		for name, reach := range dnsPaths(t, c) {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := reach(cctx, name+".log."+canaryDomain, port)
			cancel()
			if err != nil && dns != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		hc := c.HTTPClient()
		if resp, err := hc.Get("http://" + n.HTTPTarget() + "/secret-path/hello.txt?secret-path=1"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		hc.CloseIdleConnections()
		// Failures at the exit get logged: a closed port by name and by
		// address, directly and through SOCKS, and a name that does not
		// resolve.
		c.DialContext(ctx, "tcp", "closed.log."+canaryDomain+":1")
		c.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", "1"))
		socks := serveSOCKS(t, c)
		for _, v4a := range []bool{false, true} {
			_, conn := socksConnect(t, socks, v4a, "closed-socks.log."+canaryDomain, 1)
			conn.Close()
		}
		if dns != nil {
			c.Resolve(ctx, "nx.log.onionlite-canary.invalid")
		}
		c.Close()
		return log.String()
	}

	logs := run(t)
	for _, s := range secrets {
		if i := strings.Index(logs, s); i >= 0 {
			line := logs[strings.LastIndexByte(logs[:i], '\n')+1:]
			line, _, _ = strings.Cut(line, "\n")
			t.Errorf("the log shows %q: %s", s, line)
		}
	}
	if !strings.Contains(logs, safelog.Scrubbed) {
		t.Errorf("no scrubbed value in the log: the failed dials were not logged, so the test proves little\n%s", logs)
	}

	// Control: with safe logging off, the names do show.
	t.Run("unsafe control", func(t *testing.T) {
		safelog.SetSafe(false)
		defer safelog.SetSafe(true)
		if logs := run(t); !strings.Contains(logs, canaryDomain) {
			t.Fatalf("with safe logging off the names still do not show: the test cannot see a leak\n%s", logs)
		}
	})
}
