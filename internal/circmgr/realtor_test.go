package circmgr

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
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/bootstrap"
	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/pathsel/guard"
)

// The tests in this file run against the real tor test network
// (internal/testnet): every circuit is built through C tor relays and
// every body comes from the network's HTTP target through a C tor exit.

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

// rig is a bootstrapped client directory over the shared test network.
type rig struct {
	net   *testnet.Network
	cm    *chanmgr.Manager
	boot  *bootstrap.Bootstrapper
	host  string
	port  uint16
	nodes map[[20]byte]testnet.Node
}

func newRig(t testing.TB) *rig {
	t.Helper()
	n := testnet.Shared(t)
	auths, err := netdoc.ParseAuthorityFile(strings.Join(n.AuthorityLines(), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	cm := chanmgr.New(&channel.Config{})
	b, err := bootstrap.New(bootstrap.Config{Authorities: auths, Store: dircache.NewMemStore(), Channels: cm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); cm.Close() })
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	host, port, err := net.SplitHostPort(n.HTTPTarget())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	r := &rig{net: n, cm: cm, boot: b, host: host, port: uint16(p), nodes: make(map[[20]byte]testnet.Node)}
	for _, nd := range n.Nodes() {
		fp, err := hex.DecodeString(nd.Fingerprint)
		if err != nil || len(fp) != 20 {
			t.Fatalf("node %s: fingerprint %q", nd.Nick, nd.Fingerprint)
		}
		r.nodes[[20]byte(fp)] = nd
	}
	return r
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// manager returns a Manager over the rig; mod may change its Config.
func (r *rig) manager(t testing.TB, mod func(*Config)) *Manager {
	t.Helper()
	cfg := Config{Channels: r.cm, NetDir: r.boot, AllowSameSubnet: true, Preemptive: -1, Logf: t.Logf}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// fetch GETs path from the HTTP target over conn (HTTP/1.0) and returns
// the body's SHA-256, or the error that ended the body.
func fetch(conn net.Conn, host, path string) (string, int64, error) {
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := fmt.Fprintf(conn, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return "", 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", 0, fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func (r *rig) body(t testing.TB, name string) testnet.Body {
	t.Helper()
	b, ok := r.net.Body(name)
	if !ok {
		t.Fatalf("no body %s", name)
	}
	return b
}

// checkPath checks a circuit's path against the directory: three distinct
// relays, the first a sampled primary guard, the exit a test-network exit
// whose policy allows port, every hop with ntor-v3 (so the circuit layer
// used it).
func (r *rig) checkPath(t *testing.T, m *Manager, path [3][20]byte, port uint16) {
	t.Helper()
	nd := r.boot.NetDir()
	if path[0] == path[1] || path[1] == path[2] || path[0] == path[2] {
		t.Fatalf("path with a repeated relay: %x", path)
	}
	var idx [3]netdir.RelayIndex
	for k, id := range path {
		i, ok := nd.ByID(id)
		if !ok {
			t.Fatalf("hop %d is not in the consensus", k)
		}
		idx[k] = i
		if !nd.Flags(i).Has(netdir.FlagNtorV3 | netdir.FlagHasEd25519) {
			t.Fatalf("hop %d (%s) lacks ntor-v3: %v", k, r.nodes[id].Nick, nd.Flags(i))
		}
	}
	if !nd.Flags(idx[0]).Has(netdir.FlagGuard) || !slices.ContainsFunc(m.PrimaryGuards(), func(g guard.Info) bool { return g.ID == path[0] }) {
		t.Fatalf("first hop %s is not a primary guard", r.nodes[path[0]].Nick)
	}
	if r.nodes[path[2]].Role != testnet.Exit || !nd.ExitPolicy(idx[2]).Allows(port) {
		t.Fatalf("exit %s (%v) does not allow port %d", r.nodes[path[2]].Nick, r.nodes[path[2]].Role, port)
	}
}

// circuitOf finds the circuit a test's last request went on.
func circuitOf(t *testing.T, m *Manager, a *attachments) CircuitInfo {
	t.Helper()
	c := a.lastCirc()
	for _, ci := range m.Circuits() {
		if ci.ID == c.id {
			return ci
		}
	}
	t.Fatalf("circuit %d is not open", c.id)
	return CircuitInfo{}
}

// TestRealFetch is the acceptance path: a 3-hop circuit of distinct
// relays (a primary guard, a middle, an exit that allows the port) and the
// 1 MiB body through Dial with the right SHA-256; the next Dial reuses the
// circuit.
func TestRealFetch(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	m := r.manager(t, nil)
	a := watch(m)
	want := r.body(t, "1MiB.bin")
	s, err := m.Dial(ctxFor(t, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	sum, n, err := fetch(s, r.host, want.Name)
	s.Close()
	if err != nil || sum != want.SHA256 || n != want.Size {
		t.Fatalf("body: %d bytes, sha256 %s, %v; want %d, %s", n, sum, err, want.Size, want.SHA256)
	}
	ci := circuitOf(t, m, a)
	r.checkPath(t, m, ci.Path, r.port)

	s, err = m.Dial(ctxFor(t, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	st := m.Stats()
	if circuitOf(t, m, a).ID != ci.ID || st.Built != 1 || st.StreamsOpened != 2 {
		t.Fatalf("second dial did not reuse the circuit: %+v", st)
	}
	t.Logf("1 MiB fetched; build %v", st.LastBuild)
}

// TestRealConcurrentIsolated: 20 concurrent streams of 4 isolation keys
// all complete with the right bodies, over at least 4 circuits, and no
// circuit carries streams of two keys.
func TestRealConcurrentIsolated(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	m := r.manager(t, nil)
	a := watch(m)
	want := r.body(t, "64KiB.bin")
	keys := []IsolationKey{{}, Key("alice"), Key("bob"), NewKey()}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for k := range 20 {
		wg.Go(func() {
			s, err := m.Dial(ctxFor(t, 2*time.Minute), keys[k%len(keys)], r.host, r.port)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", k, err)
				return
			}
			defer s.Close()
			sum, n, err := fetch(s, r.host, want.Name)
			if err != nil || sum != want.SHA256 {
				errs <- fmt.Errorf("stream %d: %d bytes, %v", k, n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.keys) < len(keys) {
		t.Fatalf("20 streams of %d keys went on %d circuits", len(keys), len(a.keys))
	}
	for id, ks := range a.keys {
		if len(ks) != 1 {
			t.Fatalf("circuit %d carried streams of %d isolation keys", id, len(ks))
		}
	}
	for _, ci := range m.Circuits() {
		r.checkPath(t, m, ci.Path, r.port)
	}
	st := m.Stats()
	t.Logf("20 streams over %d circuits; %+v", len(a.keys), st)
}

// TestRealExitKilled: killing the exit in the middle of a download gives
// the reader a typed error, and the next Dial succeeds over a new
// circuit.
func TestRealExitKilled(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	m := r.manager(t, nil)
	a := watch(m)
	s, err := m.Dial(ctxFor(t, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(s, "GET /10MiB.bin HTTP/1.0\r\nHost: %s\r\n\r\n", r.host)
	br := bufio.NewReader(s)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v", err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 256<<10); err != nil {
		t.Fatal(err)
	}
	old := circuitOf(t, m, a)
	exit := r.nodes[old.Path[2]]
	if err := r.net.KillNode(exit.Nick); err != nil {
		t.Skipf("cannot kill %s (an attached network refuses): %v", exit.Nick, err)
	}
	t.Cleanup(func() {
		if err := r.net.RestartNode(exit.Nick); err != nil {
			t.Errorf("restarting %s: %v", exit.Nick, err)
			return
		}
		if err := r.net.WaitReady(context.Background()); err != nil {
			t.Errorf("network not ready after restarting %s: %v", exit.Nick, err)
		}
	})
	n, err := io.Copy(io.Discard, resp.Body)
	var de *circuit.DestroyedError
	var ce *circuit.ChannelClosedError
	if !errors.As(err, &de) && !errors.As(err, &ce) {
		t.Fatalf("read after the exit died: %d more bytes, error %v (%T); want a circuit error", n, err, err)
	}
	// When the link from the guard was backed up as the circuit died, C
	// tor's guard holds its DESTROY back until something else is queued
	// for the channel; the stream's stall nudge releases it (see
	// internal/channel's Nudge). Before that, this read waited out its
	// deadline in about one run in ten on a loaded machine.
	var nudges int64
	g := r.nodes[old.Path[0]]
	if ch, err := r.cm.Get(ctxFor(t, time.Minute), channel.Target{Addr: fmt.Sprintf("127.0.0.1:%d", g.ORPort), RSAID: old.Path[0], Ed25519ID: g.Ed25519ID}); err == nil {
		nudges = ch.Stats().Nudges
	}
	t.Logf("reader got %d more bytes, then: %v (guard channel nudged %d times)", n, err, nudges)

	s2, err := m.Dial(ctxFor(t, 2*time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatalf("dial after the exit died: %v", err)
	}
	defer s2.Close()
	nw := circuitOf(t, m, a)
	if nw.ID == old.ID || nw.Path[2] == old.Path[2] {
		t.Fatalf("new stream went on circuit %d through %s", nw.ID, r.nodes[nw.Path[2]].Nick)
	}
	want := r.body(t, "64KiB.bin")
	if sum, _, err := fetch(s2, r.host, want.Name); err != nil || sum != want.SHA256 {
		t.Fatalf("fetch after the exit died: %v", err)
	}
	// New isolation keys need new circuits; builds that pick the dead
	// exit (still in the consensus) fail at its EXTEND2 and are retried.
	for k := range 4 {
		s, err := m.Dial(ctxFor(t, 2*time.Minute), NewKey(), r.host, r.port)
		if err != nil {
			t.Fatalf("dial %d after the exit died: %v", k, err)
		}
		s.Close()
		if c := circuitOf(t, m, a); c.Path[2] == old.Path[2] {
			t.Fatalf("dial %d went through the dead exit", k)
		}
	}
	t.Logf("stats %+v", m.Stats())
}

// TestRealRefusals: what real exits refuse comes back typed. The test
// network's exits have no DNS server, so every name fails to resolve
// (three circuits tried, as C tor); a reverse lookup gets an error answer;
// a closed port is refused (tor 0.4.9 exits say MISC, retried three times
// as C tor does).
func TestRealRefusals(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	m := r.manager(t, nil)
	// An exit without a resolver fails the lookup transiently: three
	// circuits are tried, as C tor does. One whose resolver answers that
	// the name does not exist (when another test package's DNS server
	// holds 127.0.0.1:53) is believed at once.
	_, err := m.Resolve(ctxFor(t, time.Minute), Key(""), "no-such-host.invalid")
	e := mustErr(t, err, ErrResolveFailed)
	permanent := strings.Contains(err.Error(), "does not resolve")
	if (permanent && e.Attempts != 1) || (!permanent && (e.Attempts != maxResolveFailures || !errors.Is(err, stream.ErrResolveFailed))) {
		t.Fatalf("resolve: %v (%d attempts)", err, e.Attempts)
	}
	_, err = m.ResolvePTR(ctxFor(t, time.Minute), Key(""), netip.MustParseAddr("127.0.0.1"))
	mustErr(t, err, ErrResolveFailed)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = m.Dial(ctxFor(t, time.Minute), Key(""), "127.0.0.1", uint16(closed))
	var ee *stream.EndError
	if mustErr(t, err, ErrExitRefused); !errors.As(err, &ee) {
		t.Fatalf("dial to a closed port: %v", err)
	}
	t.Logf("closed port: %v", err)
}

// TestRealGuardsPersist: a manager restarted with the saved guard state
// has the same primary guards and builds through the same first guard.
func TestRealGuardsPersist(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	var mu sync.Mutex
	var saved []byte
	hooks := func(c *Config) {
		c.LoadGuards = func() ([]byte, error) { mu.Lock(); defer mu.Unlock(); return saved, nil }
		c.SaveGuards = func(b []byte) error { mu.Lock(); defer mu.Unlock(); saved = slices.Clone(b); return nil }
	}
	m1 := r.manager(t, hooks)
	a1 := watch(m1)
	s, err := m1.Dial(ctxFor(t, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	g1 := circuitOf(t, m1, a1).Path[0]
	p1 := m1.PrimaryGuards()
	m1.Close()
	if len(saved) == 0 {
		t.Fatal("no guard state saved")
	}

	m2 := r.manager(t, hooks)
	a2 := watch(m2)
	s, err = m2.Dial(ctxFor(t, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	p2 := m2.PrimaryGuards()
	if g2 := circuitOf(t, m2, a2).Path[0]; g2 != g1 {
		t.Fatalf("first guard %s after restart, %s before", r.nodes[g2].Nick, r.nodes[g1].Nick)
	}
	if len(p1) != len(p2) {
		t.Fatalf("%d primary guards, %d before", len(p2), len(p1))
	}
	for k := range p1 {
		if p1[k].ID != p2[k].ID {
			t.Fatalf("primary guard %d changed: %s, was %s", k, r.nodes[p2[k].ID].Nick, r.nodes[p1[k].ID].Nick)
		}
	}
	if p1[0].ID != g1 {
		t.Fatal("the first hop is not the first primary guard")
	}
}

// TestRealPreemptive: a preemptive circuit is built without a request and
// the first Dial uses it.
func TestRealPreemptive(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	m := r.manager(t, func(c *Config) { c.Preemptive = 1 })
	a := watch(m)
	ctx := ctxFor(t, time.Minute)
	for m.Stats().Clean < 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("no preemptive circuit: %+v", m.Stats())
		case <-time.After(20 * time.Millisecond):
		}
	}
	pre := m.Circuits()[0]
	s, err := m.Dial(ctxFor(t, time.Minute), NewKey(), r.host, r.port)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if ci := circuitOf(t, m, a); ci.ID != pre.ID {
		t.Fatalf("dial used circuit %d, not the preemptive %d", ci.ID, pre.ID)
	}
	r.checkPath(t, m, pre.Path, r.port)
}
