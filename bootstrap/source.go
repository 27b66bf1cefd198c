package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/dirclient"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// source is a directory server reached over a one-hop circuit.
type source struct {
	name      string // nickname, for logs
	relay     circuit.Relay
	addr      netip.AddrPort
	authority bool
}

func (s *source) target() channel.Target {
	return channel.Target{Addr: s.addr.String(), RSAID: s.relay.RSAID, Ed25519ID: s.relay.Ed25519ID}
}

func authoritySource(a netdoc.Authority) *source {
	return &source{
		name:      a.Nickname,
		addr:      a.ORAddr(),
		authority: true,
		// No onion key is known before a consensus: CREATE_FAST, as C
		// tor does for its first one-hop directory circuits.
		relay: circuit.Relay{RSAID: a.Fingerprint, Handshake: circuit.HandshakeFast},
	}
}

// cacheSource describes a consensus entry as a directory source. Without
// its microdescriptor no onion key is known, so the circuit uses
// CREATE_FAST.
func cacheSource(rs *netdoc.RouterStatus, _ *netdir.NetDir) *source {
	return &source{name: rs.Nickname, addr: rs.Addr, relay: circuit.Relay{RSAID: rs.Identity, Handshake: circuit.HandshakeFast}}
}

// cacheSourceFromRelay describes a relay of a NetDir as a directory source,
// using ntor(-v3) when its keys are known.
func cacheSourceFromRelay(r netdir.Relay) *source {
	s := &source{name: fmt.Sprintf("cache %X", r.ID[:4]), addr: r.Addr, relay: circuit.Relay{RSAID: r.ID, Handshake: circuit.HandshakeFast}}
	if r.Flags.Has(netdir.FlagHasMicrodesc) {
		s.relay = circuit.Relay{RSAID: r.ID, NtorKey: r.NtorKey, NtorV3: r.Flags.Has(netdir.FlagNtorV3), Addrs: []netip.AddrPort{r.Addr}}
		if r.Flags.Has(netdir.FlagHasEd25519) {
			s.relay.Ed25519ID = r.Ed25519
		}
	}
	return s
}

// docKind names a directory document type for byte accounting.
type docKind int

const (
	kindConsensus docKind = iota
	kindDiff
	kindCerts
	kindMicrodescs
	numKinds
)

var kindNames = [numKinds]string{"consensus", "consensus_diff", "certificates", "microdescriptors"}

// fetcher runs directory requests over one-hop circuits, reusing one
// circuit per source while it lives.
type fetcher struct {
	b     *Bootstrapper
	dir   dirclient.Client
	mu    sync.Mutex
	circs map[[20]byte]*circuit.Circuit
	// hook, set only by tests, may replace an answer to inject faults a
	// real relay cannot be made to produce (garbage, 404).
	hook func(kind docKind, src *source, resp *dirclient.Response, err error) (*dirclient.Response, error)
}

func newFetcher(b *Bootstrapper) *fetcher {
	return &fetcher{b: b, circs: map[[20]byte]*circuit.Circuit{}}
}

// circuitTo returns an open one-hop circuit to s.
func (f *fetcher) circuitTo(ctx context.Context, s *source) (*circuit.Circuit, error) {
	f.mu.Lock()
	c := f.circs[s.relay.RSAID]
	f.mu.Unlock()
	if c != nil && c.Err() == nil {
		return c, nil
	}
	ch, err := f.b.cfg.Channels.Get(ctx, s.target())
	if err != nil {
		var cs *channel.ClockSkewError
		if errors.As(err, &cs) {
			// Its certificates are not valid by our clock and its
			// clock is far from ours: the same for every relay.
			f.b.noteSkew(-cs.Skew)
			return nil, &ClockSkewError{Skew: -cs.Skew, Err: err}
		}
		return nil, err
	}
	if skew, ok := ch.ClockSkew(); ok {
		// The channel measures the relay's clock minus ours; the
		// bootstrapper records ours minus the network's.
		f.b.noteSkew(-skew)
	}
	c, err = circuit.Create(ctx, ch, s.relay, f.b.circCfg)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if old := f.circs[s.relay.RSAID]; old != nil && old != c {
		old.Close()
	}
	f.circs[s.relay.RSAID] = c
	f.mu.Unlock()
	return c, nil
}

// closeAll tears down every directory circuit (after a bootstrap or a
// refresh round: idle circuits cost memory and, on a link, padding).
func (f *fetcher) closeAll() {
	f.mu.Lock()
	cs := f.circs
	f.circs = map[[20]byte]*circuit.Circuit{}
	f.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// do runs one request against s. Bytes read are charged to kind whatever
// the outcome. On a transport failure the source's circuit is dropped.
func (f *fetcher) do(ctx context.Context, s *source, kind docKind, req *dirclient.Request) (*dirclient.Response, error) {
	return f.request(ctx, s, kind, req, false)
}

// doBeside runs a request on s's circuit beside a larger one (the
// authority certificates asked for while the consensus downloads). It
// has no stall limit, only the request timeout: a relay may send it
// nothing until the other answer is through, which on a slow link takes
// minutes, and a stall there tore down the circuit and the consensus
// download with it. Its failure closes only its stream; the other
// request shows whether the circuit works.
func (f *fetcher) doBeside(ctx context.Context, s *source, kind docKind, req *dirclient.Request) (*dirclient.Response, error) {
	return f.request(ctx, s, kind, req, true)
}

func (f *fetcher) request(ctx context.Context, s *source, kind docKind, req *dirclient.Request, beside bool) (*dirclient.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, f.b.requestTimeout)
	defer cancel()
	c, err := f.circuitTo(ctx, s)
	if err != nil {
		return nil, &sourceError{src: s, err: err}
	}
	// Optimistic: the request goes out with BEGIN_DIR instead of a round
	// trip later (a relay opens a BEGIN_DIR stream at once); a refusal
	// still surfaces on the first read.
	st, err := c.BeginDirWith(ctx, circuit.BeginOptions{Optimistic: true})
	if err != nil {
		c.Close()
		return nil, &sourceError{src: s, err: err}
	}
	defer st.Close()
	// Stream deadlines are compared with the real clock (internal/stream
	// Config.Clock), so the stall deadline must come from it too, even
	// when the bootstrapper's clock pretends another date (--now).
	conn := &stallConn{Conn: st, stall: f.b.stallTimeout, clock: clock.Real{}}
	if beside {
		conn.stall = 0
	}
	r := *req
	r.Account = st.MemoryAccount() // the body is charged under the stream
	resp, err := f.dir.Do(ctx, conn, &r)
	if f.hook != nil {
		resp, err = f.hook(kind, s, resp, err)
	}
	if resp != nil {
		f.b.addDirBytes(kind, resp.WireBytes)
	}
	if err != nil {
		var se *dirclient.StatusError
		if !errors.As(err, &se) && !beside {
			c.Close() // the stream or circuit is in an unknown state
		}
		return resp, &sourceError{src: s, err: err}
	}
	return resp, nil
}

// sourceError is a failure attributed to one directory source.
type sourceError struct {
	src *source
	err error
}

func (e *sourceError) Error() string { return fmt.Sprintf("directory %s: %v", e.src.name, e.err) }
func (e *sourceError) Unwrap() error { return e.err }

// stallConn abandons a read that gets nothing for stall: every Read moves
// the read deadline to now+stall (or the caller's earlier deadline). A
// zero stall sets no deadline of its own.
type stallConn struct {
	net.Conn
	stall time.Duration
	clock clock.Clock

	mu       sync.Mutex
	deadline time.Time
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	d := c.deadline
	if c.stall > 0 {
		d = c.clock.Now().Add(c.stall)
		if !c.deadline.IsZero() && c.deadline.Before(d) {
			d = c.deadline
		}
	}
	c.mu.Unlock()
	c.Conn.SetReadDeadline(d)
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && n == 0 {
		return n, fmt.Errorf("no data for %v: %w", c.stall, err)
	}
	return n, err
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}
