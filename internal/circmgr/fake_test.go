package circmgr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/stream"
)

// The unit tests run the Manager over a hand-made NetDir and a fake
// builder whose circuits answer BEGIN and RESOLVE as each test says, in a
// synctest bubble, so that timeouts, dirtiness and idle times pass in
// virtual time. What they prove is the pool's logic; the real-tor tests
// in realtor_test.go prove the circuits.

const (
	guardFlags = netdoc.FlagGuard | netdoc.FlagStable | netdoc.FlagFast | netdoc.FlagV2Dir
	midFlags   = netdoc.FlagStable | netdoc.FlagFast
	exitFlags  = netdoc.FlagExit | netdoc.FlagStable | netdoc.FlagFast
)

// relay describes one relay of a hand-made network; the k-th gets the
// address 10.k.0.1 (distinct /16s) and identity netdirtest.ID(k).
type relay struct {
	flags  netdoc.RelayFlags
	policy string
	bw     uint32
}

// handNet builds a NetDir valid from now for three hours.
func handNet(t *testing.T, rs []relay) *netdir.NetDir {
	t.Helper()
	var in []netdirtest.Relay
	for k, r := range rs {
		bw := r.bw
		if bw == 0 {
			bw = 1000
		}
		in = append(in, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: r.flags, Bandwidth: bw, Policy: r.policy})
	}
	c, mds, err := netdirtest.Network(in, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMicrodescs(mds); err != nil {
		t.Fatal(err)
	}
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// stdRelays: 4 guards (0-3), 4 middles (4-7), exits 8 (80,443), 9
// (1-65535) and 10 (22).
func stdRelays() []relay {
	rs := []relay{}
	for range 4 {
		rs = append(rs, relay{flags: guardFlags})
	}
	for range 4 {
		rs = append(rs, relay{flags: midFlags})
	}
	return append(rs,
		relay{flags: exitFlags, policy: "accept 80,443"},
		relay{flags: exitFlags, policy: "accept 1-65535"},
		relay{flags: exitFlags, policy: "accept 22"})
}

func id(k int) [20]byte { return netdirtest.ID(k) }

// fakeNet builds fake circuits and records every build.
type fakeNet struct {
	// pool is the streams' cell pool: the tests' own, as a pool first
	// used inside a synctest bubble belongs to it (cell.DefaultPool would
	// then fail the real-tor tests).
	pool   *cell.Pool
	mu     sync.Mutex
	nd     *netdir.NetDir
	builds [][3][20]byte
	circs  []*fakeCirc
	// failAt, if set, says at which hop a build of path fails (-1:
	// none).
	failAt func(path [3][20]byte) int
	// gate, if set, holds builds until it is closed.
	gate chan struct{}
	// begin and resolve, if set, answer requests (nil error: success).
	begin   func(ctx context.Context, c *fakeCirc, host string, port uint16) error
	resolve func(ctx context.Context, c *fakeCirc, q string) ([]cell.Answer, error)
}

func (f *fakeNet) NetDir() *netdir.NetDir {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nd
}

func (f *fakeNet) setNetDir(nd *netdir.NetDir) {
	f.mu.Lock()
	f.nd = nd
	f.mu.Unlock()
}

func (f *fakeNet) numBuilds() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.builds)
}

func (f *fakeNet) build(ctx context.Context, hops [3]circuit.Relay, _ *circuit.Config) (circHandle, int, error) {
	var ids [3][20]byte
	for k, h := range hops {
		ids[k] = h.RSAID
	}
	f.mu.Lock()
	f.builds = append(f.builds, ids)
	gate, failAt := f.gate, f.failAt
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, 0, context.Cause(ctx)
		}
	}
	if failAt != nil {
		if hop := failAt(ids); hop >= 0 {
			return nil, hop, &circuit.DestroyedError{Reason: cell.DestroyReason(6), Truncated: hop > 0, Hop: hop - 1}
		}
	}
	c := &fakeCirc{net: f, path: ids, streams: make(map[uint16]*stream.Stream)}
	f.mu.Lock()
	f.circs = append(f.circs, c)
	f.mu.Unlock()
	return c, 3, nil
}

// fakeCirc is a built fake circuit; it is also the streams' Sink.
type fakeCirc struct {
	net     *fakeNet
	path    [3][20]byte
	mu      sync.Mutex
	err     error
	streams map[uint16]*stream.Stream
	nextID  uint16
	begins  int
	flags   uint32 // of the last BEGIN
}

func (c *fakeCirc) Begin(ctx context.Context, host string, port uint16, flags uint32) (*stream.Stream, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.begins++
	c.flags = flags
	c.mu.Unlock()
	if c.net.begin != nil {
		if err := c.net.begin(ctx, c, host, port); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.nextID++
	s, err := stream.New(c, c.nextID, &stream.Config{Opened: true, Target: host})
	if err != nil {
		return nil, err
	}
	c.streams[c.nextID] = s
	return s, nil
}

func (c *fakeCirc) Resolve(ctx context.Context, q string) ([]cell.Answer, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	if c.net.resolve != nil {
		return c.net.resolve(ctx, c, q)
	}
	return []cell.Answer{{Type: cell.AnswerIPv4, Addr: netip.MustParseAddr("192.0.2.1")}}, nil
}

func (c *fakeCirc) Close() error {
	c.kill(circuit.ErrClosed)
	return nil
}

// kill closes the circuit with err as the network would.
func (c *fakeCirc) kill(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	ss := c.streams
	c.streams = map[uint16]*stream.Stream{}
	c.mu.Unlock()
	for _, s := range ss {
		s.CircuitClosed(err)
	}
}

func (c *fakeCirc) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *fakeCirc) Streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

func (c *fakeCirc) SendData(context.Context, uint16, []byte) error { return c.Err() }
func (c *fakeCirc) SendSendme(context.Context, uint16) error       { return c.Err() }
func (c *fakeCirc) SendEnd(id uint16, _ cell.EndReason) {
	c.mu.Lock()
	delete(c.streams, id)
	c.mu.Unlock()
}
func (c *fakeCirc) Pool() *cell.Pool { return c.net.pool }

var _ stream.Sink = (*fakeCirc)(nil)

// newFake returns a manager over a fake network of the relays rs (nil: no
// network view yet). mod may change the configuration (Preemptive is off
// unless it does) and setup the fake before the manager starts.
func newFake(t *testing.T, rs []relay, mod func(*Config), setup ...func(*fakeNet)) (*Manager, *fakeNet) {
	t.Helper()
	f := &fakeNet{pool: cell.NewPool(64)}
	if rs != nil {
		f.nd = handNet(t, rs)
	}
	for _, s := range setup {
		s(f)
	}
	cm := chanmgr.New(&channel.Config{})
	cfg := Config{Channels: cm, NetDir: f, Rand: rand.NewChaCha8([32]byte{7}), Preemptive: -1, Logf: t.Logf}
	if mod != nil {
		mod(&cfg)
	}
	m, err := newManager(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		cm.Close()
	})
	return m, f
}

// attachments records which circuit each request went on, with its key.
type attachments struct {
	mu   sync.Mutex
	keys map[uint64]map[IsolationKey]int
	last *circ
}

func watch(m *Manager) *attachments {
	a := &attachments{keys: make(map[uint64]map[IsolationKey]int)}
	m.mu.Lock()
	m.attached = func(c *circ, key IsolationKey) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.keys[c.id] == nil {
			a.keys[c.id] = make(map[IsolationKey]int)
		}
		a.keys[c.id][key]++
		a.last = c
	}
	m.mu.Unlock()
	return a
}

func (a *attachments) lastCirc() *circ {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}
