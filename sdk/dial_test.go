package sdk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/circmgr"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/transport"
)

// body fetches name from the test network's HTTP target over conn with
// HTTP/1.0 and returns the SHA-256 of the body.
func getOver(t *testing.T, c net.Conn, target, name string) string {
	t.Helper()
	fmt.Fprintf(c, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", name, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", name, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("GET %s body: %v", name, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func wantSum(t *testing.T, n *testnet.Network, name string) string {
	b, ok := n.Body(name)
	if !ok {
		t.Fatalf("no body %s", name)
	}
	return b.SHA256
}

func TestDialFetchAndIsolation(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	n := testnet.Shared(t)
	c := testClient(t, t.TempDir())
	ctx := ctxFor(t, 3*time.Minute)
	target := n.HTTPTarget()

	// DialContext without an explicit Bootstrap: it waits for the
	// directory itself.
	conn, err := c.DialContext(ctx, "tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	if got := getOver(t, conn, target, "1MiB.bin"); got != wantSum(t, n, "1MiB.bin") {
		t.Fatalf("1 MiB body SHA-256 %s, want %s", got, wantSum(t, n, "1MiB.bin"))
	}
	conn.Close()

	// net/http through HTTPClient, 10 MiB.
	resp, err := c.HTTPClient().Get("http://" + target + "/10MiB.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, resp.Body)
	resp.Body.Close()
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSum(t, n, "10MiB.bin") {
		t.Fatalf("10 MiB body SHA-256 %s", got)
	}

	// Every circuit is three distinct relays, and the exits (tor 0.4.9,
	// FlowCtrl=2) agreed to congestion control.
	for _, ci := range c.core.circs.Circuits() {
		if ci.Path[0] == ci.Path[1] || ci.Path[1] == ci.Path[2] || ci.Path[0] == ci.Path[2] {
			t.Fatalf("circuit %d reuses a relay: %x", ci.ID, ci.Path)
		}
		if ci.CongestionControl == 0 {
			t.Fatalf("circuit %d runs fixed windows; the exit offers congestion control", ci.ID)
		}
	}

	// Isolated views never share circuits with each other or the client.
	iso1, iso2 := c.Isolated(), c.Isolated()
	var conns []net.Conn
	for _, cl := range []*Client{c, iso1, iso2} {
		cn, err := cl.DialContext(ctx, "tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	owners := map[uint64]map[string]bool{}
	for _, ci := range c.core.circs.Circuits() {
		if ci.Streams > 0 {
			if owners[ci.ID] == nil {
				owners[ci.ID] = map[string]bool{}
			}
			owners[ci.ID][ci.Key.String()] = true
		}
	}
	used := 0
	for id, keys := range owners {
		if len(keys) > 1 {
			t.Fatalf("circuit %d carries streams of %d isolation keys", id, len(keys))
		}
		used++
	}
	if used < 3 {
		t.Fatalf("3 isolation groups used %d circuits", used)
	}
	for _, cn := range conns {
		cn.Close()
	}
}

func TestDialErrors(t *testing.T) {
	n := testnet.Shared(t)
	c := testClient(t, t.TempDir())
	ctx := ctxFor(t, 2*time.Minute)
	for _, addr := range []string{"no-port", "host:0", "host:99999"} {
		_, err := c.DialContext(ctx, "tcp", addr)
		if !errors.Is(err, &Error{Kind: KindBadAddress}) {
			t.Errorf("%q: err = %v, want a bad-address error", addr, err)
		}
	}
	if _, err := c.DialContext(ctx, "udp", n.HTTPTarget()); !errors.Is(err, &Error{Kind: KindBadAddress}) {
		t.Errorf("udp: err = %v", err)
	}
	// A closed port at the exit's side: the exit refuses.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, err = c.DialContext(ctx, "tcp", closed)
	var e *Error
	if !errors.As(err, &e) || (e.Kind != KindExitRefused && e.Kind != KindNetwork) {
		t.Errorf("closed port: err = %v, want exit-refused", err)
	}
	// A context that ends before the dial can finish.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, err := c.DialContext(short, "tcp", n.HTTPTarget()); err == nil {
		t.Error("dial with an expired context succeeded")
	}
}

func TestSOCKSWithCurlAndConcurrency(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	n := testnet.Shared(t)
	c := testClient(t, t.TempDir())
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- c.ServeSOCKS(ln) }()
	target := n.HTTPTarget()

	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.CommandContext(ctx, curl, "-sS", "--socks5-hostname", ln.Addr().String(),
			"http://"+target+"/1MiB.bin", "-o", "-").Output()
		if err != nil {
			t.Fatalf("curl through onionlite socks: %v", err)
		}
		if s := sha256.Sum256(out); hex.EncodeToString(s[:]) != wantSum(t, n, "1MiB.bin") {
			t.Fatal("curl: wrong body")
		}
	} else {
		t.Log("curl not installed: the SOCKS check uses Go only")
	}

	// 20 concurrent streams with 5 SOCKS credentials (isolation groups):
	// all complete with the right body over several circuits.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &transport.SOCKS5{Addr: ln.Addr().String(), Username: fmt.Sprintf("user%d", i%5), Password: "x"}
			cn, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				errs <- err
				return
			}
			defer cn.Close()
			fmt.Fprintf(cn, "GET /64KiB.bin HTTP/1.0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(cn), nil)
			if err != nil {
				errs <- err
				return
			}
			h := sha256.New()
			_, err = io.Copy(h, resp.Body)
			if err == nil && hex.EncodeToString(h.Sum(nil)) != wantSum(t, n, "64KiB.bin") {
				err = errors.New("wrong body")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	circs := map[uint64]bool{}
	keys := map[string]bool{}
	for _, ci := range c.core.circs.Circuits() {
		if ci.Claimed {
			circs[ci.ID] = true
			keys[ci.Key.String()] = true
		}
	}
	if len(circs) < 5 {
		t.Fatalf("20 streams in 5 isolation groups used %d circuits", len(circs))
	}
	c.Close()
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("ServeSOCKS returned %v after Close", err)
	}
}

func TestSOCKSRefusesRemoteListener(t *testing.T) {
	c := &Client{DataDir: t.TempDir(), Authorities: testnet.Shared(t).AuthorityLines()}
	defer c.Close()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	err = c.ServeSOCKS(ln)
	if !errors.Is(err, &Error{Kind: KindConfig}) || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("ServeSOCKS on 0.0.0.0: %v", err)
	}
}

// TestGuardServesDirectoryAndCircuits: the microdescriptors come from the
// first directory guard, and the first circuit starts at the same relay
// over the same connection, so a cold start opens at most two TLS
// connections (the consensus source and the guard).
func TestGuardServesDirectoryAndCircuits(t *testing.T) {
	n := testnet.Shared(t)
	c := testClient(t, t.TempDir())
	c.PreemptiveCircuits = -1
	c.Conflux = ConfluxOff // a second leg goes through a second guard
	ctx := ctxFor(t, 2*time.Minute)
	conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if opened := c.core.chans.Stats().Opened; opened > 2 {
		t.Fatalf("%d relay connections opened for a cold start and one stream; want at most 2", opened)
	}
	circs := c.core.circs.Circuits()
	prim := c.core.circs.PrimaryGuards()
	if len(circs) == 0 || len(prim) == 0 || circs[0].Path[0] != prim[0].ID {
		t.Fatalf("first circuit does not start at the first primary guard")
	}
}

// TestConfluxDial: with Conflux on, the circuit a dial uses is a conflux
// set whose two legs start at two different primary guards and end at
// the same exit; a 10 MiB body arrives intact over it. With Conflux off
// no set is built.
func TestConfluxDial(t *testing.T) {
	n := testnet.Shared(t)
	target := n.HTTPTarget()
	for _, mode := range []ConfluxMode{ConfluxOn, ConfluxOff} {
		c := testClient(t, t.TempDir())
		c.PreemptiveCircuits = -1
		c.Conflux = mode
		ctx := ctxFor(t, 2*time.Minute)
		// On ten relays, the other primary guards can all be the first
		// leg's middle or exit, leaving no guard for a second leg (the
		// manager does not go beyond the primary guards for one). Such a
		// circuit is checked to be that case, and the dial is made again
		// on a fresh circuit; a missing set with a free primary guard fails.
		for attempt := 1; ; attempt++ {
			v := c.Isolated()
			conn, err := v.DialContext(ctx, "tcp", target)
			if err != nil {
				t.Fatal(err)
			}
			if got := getOver(t, conn, target, "10MiB.bin"); got != wantSum(t, n, "10MiB.bin") {
				t.Fatalf("%v: 10 MiB body SHA-256 %s", mode, got)
			}
			conn.Close()
			var ci circmgr.CircuitInfo
			found := false
			for _, x := range c.core.circs.Circuits() {
				if x.Key == v.iso {
					ci, found = x, true
				}
			}
			if !found {
				t.Fatalf("%v: no circuit with the dial's isolation key", mode)
			}
			if mode == ConfluxOff {
				if st := c.Stats(); st.ConfluxSets != 0 || ci.Leg2 != ([3][20]byte{}) {
					t.Fatalf("conflux off: %d sets, circuit %+v", st.ConfluxSets, ci)
				}
				break
			}
			prim := map[[20]byte]bool{}
			for _, g := range c.core.circs.PrimaryGuards() {
				prim[g.ID] = true
			}
			l1, l2 := ci.Path, ci.Leg2
			if l2 == ([3][20]byte{}) {
				free := 0
				for id := range prim {
					if id != l1[0] && id != l1[1] && id != l1[2] {
						free++
					}
				}
				if free > 0 {
					t.Fatalf("conflux on: no second leg for circuit %x although %d primary guards are free (%d sets)", l1, free, c.Stats().ConfluxSets)
				}
				if attempt == 5 {
					t.Fatalf("conflux on: no primary guard free for a second leg in %d circuits", attempt)
				}
				t.Logf("circuit %x: the other primary guards are its middle and exit; dialing again", l1)
				continue
			}
			if c.Stats().ConfluxSets < 1 {
				t.Fatal("a circuit with a second leg, but no set counted")
			}
			if l2[2] != l1[2] || l2[0] == l1[0] || l2[1] == l1[1] || !prim[l1[0]] || !prim[l2[0]] {
				t.Fatalf("legs %x and %x: want the same exit, different primary guards and middles", l1, l2)
			}
			if ci.CongestionControl == 0 {
				t.Fatal("set without congestion control")
			}
			break
		}
		c.Close()
	}
}
