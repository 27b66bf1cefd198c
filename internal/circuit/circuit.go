package circuit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/relaycrypto"
	"github.com/onionlite/onionlite/internal/torcrypto"
	"github.com/onionlite/onionlite/memquota"
)

// Link is what a circuit needs from its channel; *channel.Channel
// satisfies it.
type Link interface {
	AddCircuit(h channel.Handler) (uint32, error)
	RemoveCircuit(id uint32)
	Send(c *cell.Cell) error
	WaitWritable(ctx context.Context) error
	Pool() *cell.Pool
	// Context is done when the link dies.
	Context() context.Context
	// Account is the link's memory account, below which each circuit
	// opens its own; nil means no memory accounting.
	Account() *memquota.Account
}

var _ Link = (*channel.Channel)(nil)

// Handshake selects the circuit handshake for a hop.
type Handshake uint8

const (
	// HandshakeAuto uses ntor-v3 when the relay supports it and its
	// Ed25519 identity and ntor key are known, else ntor, else (first
	// hop only) CREATE_FAST.
	HandshakeAuto Handshake = iota
	HandshakeNtorV3
	HandshakeNtor
	// HandshakeFast is CREATE_FAST: first hop only, for one-hop directory
	// circuits when no onion key is known (tor-spec 5.1.5).
	HandshakeFast
)

func (h Handshake) String() string {
	return [...]string{"auto", "ntor-v3", "ntor", "CREATE_FAST"}[h]
}

// Relay describes a hop.
type Relay struct {
	RSAID     [20]byte
	Ed25519ID [32]byte // zero when unknown
	NtorKey   [32]byte // ntor onion key; zero when unknown
	// NtorV3 says the relay supports ntor-v3 (subprotocol Relay=4).
	NtorV3 bool
	// Addrs are the relay's ORPorts, for EXTEND2's link specifiers.
	Addrs []netip.AddrPort
	// Handshake forces a handshake; the zero value is HandshakeAuto.
	Handshake Handshake
	// CongestionControl asks the hop for congestion control (prop 324
	// section 10) when Config.CongestionControl enables it and the
	// handshake is ntor-v3. Set it for the exit of a circuit meant for
	// exit streams when the relay lists FlowCtrl=2; C tor never asks
	// other hops or one-hop circuits.
	CongestionControl bool
}

// Config configures circuits. The zero value is usable; a Config must not
// change after use.
type Config struct {
	// Rand supplies handshake keys, stream IDs and cell padding. Nil
	// means crypto/rand.
	Rand io.Reader
	// Clock is passed to streams (deadlines, data ages). Nil means the
	// real clock.
	Clock clock.Clock
	// CircWindow is the consensus parameter "circwindow". Zero means 1000.
	CircWindow int
	// SendmeAcceptMinVersion is the consensus parameter
	// "sendme_accept_min_version". Zero accepts SENDME v0 and v1 (v1 is
	// always checked). SENDMEs we send are always v1.
	SendmeAcceptMinVersion int
	// CongestionControl holds the consensus's congestion control
	// parameters. Nil, or Alg 0, means fixed windows everywhere (C tor's
	// behaviour when the consensus has no cc_alg). Otherwise hops whose
	// Relay.CongestionControl is set are asked for it, and a hop that
	// agrees runs TOR_VEGAS, with XON/XOFF flow control on its streams.
	CongestionControl *CCParams
}

// Circuit is an open circuit. Its methods are safe for concurrent use.
type Circuit struct {
	link  Link
	pool  *cell.Pool
	rand  io.Reader
	cfg   Config
	id    atomic.Uint32 // set once the link registered the circuit
	ctlMu sync.Mutex    // one Create/Extend at a time

	sendMu    sync.Mutex // encryption + queueing order; forward crypto
	earlyLeft int        // RELAY_EARLY budget, guarded by sendMu
	recvMu    sync.Mutex // backward crypto, inbound processing order
	crypto    relaycrypto.Path

	closed atomic.Bool // set once by closeWith; checked without mu
	done   chan struct{}
	// cfx is the conflux set the circuit is a leg of (set by LinkConflux):
	// sequenced messages from the exit go to the set.
	cfx    atomic.Pointer[Conflux]
	ctx    context.Context // done when the circuit or its link dies
	cancel context.CancelCauseFunc

	// Memory accounting (nil without): the circuit's account, below the
	// link's, with its streams' accounts below it; part charges DATA
	// cells held by senders waiting for a package window.
	acct   *memquota.Account
	part   *memquota.Participation
	oldest memquota.Oldest // when the longest window wait began

	mu         sync.Mutex
	hops       []*hop
	streams    map[uint16]entry
	nextStream uint16
	ctl        *waiter
	windowCh   chan struct{} // closed when a package window opens
	waiters    int           // senders holding a DATA cell while waiting for a window
	err        error
}

type hop struct {
	relay Relay
	flow  flowControl
	cc    *vegas // set when congestion control was negotiated; flow == cc
}

// entry is what receives a stream ID's messages.
type entry interface {
	HandleRelay(c *cell.Cell, cmd cell.RelayCmd, body []byte) (owned, done bool, err error)
	CircuitClosed(err error)
}

type streamEntry struct {
	entry
	hop int
}

// waiter is a pending control exchange.
type waiter struct {
	// cellCmds and relayCmds are what completes it.
	cellCmds  []cell.Command
	relayCmds []cell.RelayCmd
	hop       int // relay replies must come from this hop
	reply     chan ctlReply
}

type ctlReply struct {
	cellCmd  cell.Command
	relayCmd cell.RelayCmd
	body     []byte // a copy
	err      error
}

func newCircuit(link Link, cfg *Config) *Circuit {
	c := &Circuit{link: link, pool: link.Pool(), done: make(chan struct{}), earlyLeft: 8,
		streams: make(map[uint16]entry), windowCh: make(chan struct{})}
	if cfg != nil {
		c.cfg = *cfg
	}
	if c.cfg.CircWindow <= 0 {
		c.cfg.CircWindow = CircWindowStart
	}
	c.rand = torcrypto.Rand(c.cfg.Rand)
	c.ctx, c.cancel = context.WithCancelCause(link.Context())
	c.cfg.Clock = clock.OrReal(c.cfg.Clock)
	if p := c.cfg.CongestionControl; p != nil {
		q := p.clamped()
		c.cfg.CongestionControl = &q
	}
	var b [2]byte
	torcrypto.RandomBytes(c.rand, b[:])
	c.nextStream = binary.BigEndian.Uint16(b[:])
	return c
}

// handler adapts the circuit to channel.Handler without exporting the
// methods on Circuit.
type handler struct{ c *Circuit }

func (h handler) HandleCell(b *cell.Cell) { h.c.handleCell(b) }
func (h handler) ChannelClosed(err error) {
	h.c.closeWith(&ChannelClosedError{Err: err}, false)
}

// Create builds a one-hop circuit to the relay at the other end of link.
// On failure nothing is left registered on the link.
func Create(ctx context.Context, link Link, first Relay, cfg *Config) (*Circuit, error) {
	c := newCircuit(link, cfg)
	if err := c.openAccount(link.Account()); err != nil {
		return nil, err
	}
	id, err := link.AddCircuit(handler{c})
	if err != nil {
		c.closeAccount()
		return nil, fmt.Errorf("circuit: %w", err)
	}
	c.id.Store(id)
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	hs, err := newHandshake(c.rand, first, true, c.wantCC(first))
	if err != nil {
		c.closeWith(err, false)
		return nil, err
	}
	buf, err := c.pool.Get(ctx)
	if err != nil {
		c.closeWith(err, false)
		return nil, err
	}
	want := cell.CmdCreated2
	if hs.kind == HandshakeFast {
		err = buf.SetPayload(id, cell.CmdCreateFast, hs.data)
		want = cell.CmdCreatedFast
	} else {
		var p []byte
		p, err = cell.Create2{HType: hs.htype, HData: hs.data}.Append(make([]byte, 0, cell.PayloadLen))
		if err == nil {
			err = buf.SetPayload(id, cell.CmdCreate2, p)
		}
	}
	if err != nil {
		c.pool.Put(buf)
		c.closeWith(err, false)
		return nil, err
	}
	w := &waiter{cellCmds: []cell.Command{want}, reply: make(chan ctlReply, 1)}
	c.arm(w)
	if err := link.Send(buf); err != nil {
		c.closeWith(err, false)
		return nil, fmt.Errorf("circuit: sending %v: %w", buf.Command(), err)
	}
	r, err := c.await(ctx, w)
	if err != nil {
		c.closeWith(err, true)
		return nil, err
	}
	body := r.body
	if want == cell.CmdCreated2 {
		c2, err := cell.ParseCreated2(body)
		if err != nil {
			err = protoErr("CREATED2: %v", err)
			c.closeWith(err, true)
			return nil, err
		}
		body = c2.HData
	}
	if err := c.finishHop(hs, first, body); err != nil {
		c.closeWith(err, true)
		return nil, err
	}
	return c, nil
}

// monoNow reads the monotonic clock for RTT measurement: RTTs are
// differences of real time, whatever date Config.Clock pretends it is.
var monoNow = clock.Real{}.Now

// wantCC reports whether r's handshake should ask for congestion control.
func (c *Circuit) wantCC(r Relay) bool {
	p := c.cfg.CongestionControl
	return r.CongestionControl && p != nil && p.Alg != 0
}

// CongestionControl reports congestion control on the last hop: ok is
// false when that hop runs fixed windows (not asked, or the exit did not
// agree).
func (c *Circuit) CongestionControl() (st CCState, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hops) == 0 || c.hops[len(c.hops)-1].cc == nil {
		return CCState{}, false
	}
	return c.hops[len(c.hops)-1].cc.state(), true
}

// ID returns the circuit ID on the first hop's channel.
func (c *Circuit) ID() uint32 { return c.id.Load() }

// Hops returns the number of hops built.
func (c *Circuit) Hops() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.hops)
}

// Done is closed when the circuit closes.
func (c *Circuit) Done() <-chan struct{} { return c.done }

// Err returns why the circuit closed, or nil while it is open.
func (c *Circuit) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Extend adds r as a new last hop with EXTEND2 (as RELAY_EARLY).
// A failure closes the circuit: tor does not reuse truncated circuits.
func (c *Circuit) Extend(ctx context.Context, r Relay) error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	hs, err := newHandshake(c.rand, r, false, c.wantCC(r))
	if err != nil {
		return err
	}
	// Link specifiers in the order tor-spec 5.1.2 recommends.
	var specs []cell.LinkSpec
	for _, a := range r.Addrs {
		if a.Addr().Unmap().Is4() {
			specs = append(specs, cell.LinkSpecAddr(a))
		}
	}
	specs = append(specs, cell.LinkSpec{Type: cell.LinkSpecRSAID, Data: r.RSAID[:]})
	if r.Ed25519ID != ([32]byte{}) {
		specs = append(specs, cell.LinkSpec{Type: cell.LinkSpecEd25519, Data: r.Ed25519ID[:]})
	}
	for _, a := range r.Addrs {
		if !a.Addr().Unmap().Is4() {
			specs = append(specs, cell.LinkSpecAddr(a))
		}
	}
	msg := &cell.Extend2{Specs: specs, Create: cell.Create2{HType: hs.htype, HData: hs.data}}
	last := c.Hops() - 1
	w := &waiter{relayCmds: []cell.RelayCmd{cell.RelayExtended2, cell.RelayTruncated}, hop: last, reply: make(chan ctlReply, 1)}
	c.arm(w)
	if err := c.sendMsg(ctx, last, 0, msg, sendOpts{early: true}); err != nil {
		c.disarm(w)
		c.closeWith(err, true)
		return err
	}
	rep, err := c.await(ctx, w)
	if err != nil {
		c.closeWith(err, true)
		return err
	}
	if rep.relayCmd == cell.RelayTruncated {
		t, _ := cell.ParseTruncated(rep.body)
		err := &DestroyedError{Reason: t.Reason, Truncated: true, Hop: last}
		c.closeWith(err, true)
		return err
	}
	c2, err := cell.ParseCreated2(rep.body)
	if err != nil {
		err = protoErr("EXTENDED2: %v", err)
		c.closeWith(err, true)
		return err
	}
	if err := c.finishHop(hs, r, c2.HData); err != nil {
		c.closeWith(err, true)
		return err
	}
	return nil
}

// finishHop completes a handshake and appends the hop.
func (c *Circuit) finishHop(hs *handshake, r Relay, reply []byte) error {
	keys, serverMsg, err := hs.complete(reply)
	if err != nil {
		return fmt.Errorf("circuit: %v handshake with hop %d: %w", hs.kind, c.Hops(), err)
	}
	defer keys.Zero()
	h := &hop{relay: r, flow: newFixedWindow(c.cfg.CircWindow, c.cfg.SendmeAcceptMinVersion)}
	if hs.kind == HandshakeNtorV3 {
		exts, err := torcrypto.ParseExtensions(serverMsg)
		if err != nil {
			return protoErr("ntor-v3 server message: %v", err)
		}
		if e, ok := torcrypto.FindExtension(exts, torcrypto.ExtCCResponse); ok {
			// prop 324 10.5: an answer to a question not asked, an
			// empty answer, or a SENDME increment too far from ours
			// closes the circuit.
			switch {
			case !hs.requestCC:
				return protoErr("congestion control response without a request")
			case len(e.Data) < 1:
				return protoErr("empty congestion control response")
			case !c.cfg.CongestionControl.acceptSendmeInc(int(e.Data[0])):
				return protoErr("exit's cc_sendme_inc %d is more than a factor of 2 from ours (%d)",
					e.Data[0], c.cfg.CongestionControl.SendmeInc)
			}
			h.cc = newVegas(*c.cfg.CongestionControl, int(e.Data[0]), c.cfg.SendmeAcceptMinVersion)
			h.flow = h.cc
		}
	}
	rc, err := relaycrypto.NewHop(keys)
	if err != nil {
		return err
	}
	// The crypto layer and the hop appear together, so no cell can be
	// decrypted for a hop the circuit does not know, nor encrypted for
	// one it has no keys for. Lock order: recvMu, sendMu, mu (the reader
	// sends SENDMEs while holding recvMu).
	c.recvMu.Lock()
	c.sendMu.Lock()
	c.mu.Lock()
	c.crypto.Add(rc)
	c.hops = append(c.hops, h)
	c.mu.Unlock()
	c.sendMu.Unlock()
	c.recvMu.Unlock()
	return nil
}

func (c *Circuit) arm(w *waiter) {
	c.mu.Lock()
	c.ctl = w
	c.mu.Unlock()
}

func (c *Circuit) disarm(w *waiter) {
	c.mu.Lock()
	if c.ctl == w {
		c.ctl = nil
	}
	c.mu.Unlock()
}

// await waits for w's reply, the circuit's death or ctx.
func (c *Circuit) await(ctx context.Context, w *waiter) (ctlReply, error) {
	select {
	case r := <-w.reply:
		return r, r.err
	case <-ctx.Done():
		c.disarm(w)
		return ctlReply{}, fmt.Errorf("circuit: waiting for the relay: %w", context.Cause(ctx))
	}
}

// deliverCtl hands a reply to the waiter if it expects it, reporting
// whether it did.
func (c *Circuit) deliverCtl(hopIdx int, cc cell.Command, rc cell.RelayCmd, body []byte) bool {
	c.mu.Lock()
	w := c.ctl
	ok := false
	if w != nil {
		for _, x := range w.cellCmds {
			ok = ok || (rc == 0 && x == cc)
		}
		for _, x := range w.relayCmds {
			ok = ok || (rc != 0 && x == rc && hopIdx == w.hop)
		}
	}
	if ok {
		c.ctl = nil
	}
	c.mu.Unlock()
	if ok {
		w.reply <- ctlReply{cellCmd: cc, relayCmd: rc, body: append([]byte(nil), body...)}
	}
	return ok
}

// Close tears the circuit down with a DESTROY and closes its streams. A
// second Close returns an error wrapping net.ErrClosed.
func (c *Circuit) Close() error {
	if !c.closeWith(ErrClosed, true) {
		return fmt.Errorf("circuit: already closed: %w", net.ErrClosed)
	}
	return nil
}

// closeWith closes the circuit once with err, optionally telling the relay
// with a DESTROY. It reports whether this call closed it. It never blocks
// for long: it is called on the channel's reader goroutine.
func (c *Circuit) closeWith(err error, destroy bool) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.err = err
	c.closed.Store(true)
	streams := c.streams
	c.streams = make(map[uint16]entry)
	w := c.ctl
	c.ctl = nil
	close(c.windowCh)
	close(c.done)
	c.mu.Unlock()
	c.cancel(err)

	id := c.id.Load()
	if destroy && id != 0 {
		if b := c.pool.TryGet(); b != nil {
			// An origin always gives reason NONE (tor-spec 5.4).
			b.SetPayload(id, cell.CmdDestroy, []byte{byte(cell.DestroyNone)})
			c.link.Send(b)
		}
	}
	if id != 0 {
		c.link.RemoveCircuit(id)
	}
	if w != nil {
		w.reply <- ctlReply{err: err}
	}
	for _, e := range streams {
		e.CircuitClosed(err)
	}
	c.closeAccount()
	if x := c.cfx.Load(); x != nil && x.linked.Load() {
		x.legClosed(err)
	}
	return true
}

// sendOpts modifies sendMsg.
type sendOpts struct {
	early bool // must be RELAY_EARLY (EXTEND2)
	data  bool // a DATA cell: counts against the package window
	// wait makes the sender respect the link's backpressure; control
	// cells sent from the reader goroutine must not wait.
	wait bool
	buf  *cell.Cell // use this buffer instead of getting one
}

// sendMsg encodes msg for hop and sends it.
func (c *Circuit) sendMsg(ctx context.Context, hopIdx int, streamID uint16, msg cell.RelayMsg, o sendOpts) error {
	return c.send(ctx, hopIdx, streamID, msg, 0, nil, o)
}

// send encrypts one relay cell (msg, or rcmd with a raw body) for hop
// hopIdx and queues it on the link.
func (c *Circuit) send(ctx context.Context, hopIdx int, streamID uint16, msg cell.RelayMsg, rcmd cell.RelayCmd, body []byte, o sendOpts) error {
	if c.closed.Load() {
		c.pool.Put(o.buf)
		return c.Err()
	}
	if o.wait {
		if err := c.link.WaitWritable(ctx); err != nil {
			c.pool.Put(o.buf)
			return c.sendFailure(err)
		}
	}
	buf := o.buf
	if buf == nil {
		var err error
		if buf, err = c.pool.Get(ctx); err != nil {
			return c.sendFailure(err)
		}
	}
	waiting := false // this sender is counted in c.waiters and charged
	defer func() {
		if waiting {
			c.stopWaiting()
		}
	}()
	for {
		c.sendMu.Lock()
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			c.sendMu.Unlock()
			c.pool.Put(buf)
			return err
		}
		if hopIdx >= len(c.hops) {
			c.mu.Unlock()
			c.sendMu.Unlock()
			c.pool.Put(buf)
			return fmt.Errorf("circuit: no hop %d", hopIdx)
		}
		h := c.hops[hopIdx]
		if o.data && !h.flow.canSend() {
			wake := c.windowCh
			c.mu.Unlock()
			c.sendMu.Unlock()
			if !waiting {
				// The cell waits for the window: charge it to the
				// circuit, so a circuit whose window never opens again
				// can be reclaimed.
				if err := c.startWaiting(); err != nil {
					c.pool.Put(buf)
					return c.sendFailure(err)
				}
				waiting = true
			}
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				c.pool.Put(buf)
				return c.sendFailure(context.Cause(ctx))
			}
		}
		c.mu.Unlock()

		cmd := cell.CmdRelay
		if o.early || (hopIdx > 0 && c.earlyLeft > 0) {
			if c.earlyLeft == 0 {
				c.sendMu.Unlock()
				c.pool.Put(buf)
				return errors.New("circuit: no RELAY_EARLY cells left for EXTEND2")
			}
			c.earlyLeft--
			cmd = cell.CmdRelayEarly
		}
		var err error
		if msg != nil {
			_, err = buf.SetRelay(c.ID(), cmd, streamID, msg)
		} else {
			err = buf.SetRelayBody(c.ID(), cmd, rcmd, streamID, body)
		}
		if err != nil {
			c.sendMu.Unlock()
			c.pool.Put(buf)
			return err
		}
		if pad := buf.RelayPadding(); len(pad) > 0 {
			if err := torcrypto.RandomBytes(c.rand, pad); err != nil {
				c.sendMu.Unlock()
				c.pool.Put(buf)
				return err
			}
		}
		d := c.crypto.Encrypt(buf, hopIdx)
		if o.data {
			now := monoNow()
			c.mu.Lock()
			h.flow.sent(d, now)
			c.mu.Unlock()
		}
		err = c.link.Send(buf)
		c.sendMu.Unlock()
		if err != nil {
			c.closeWith(&ChannelClosedError{Err: err}, false)
			return c.Err()
		}
		return nil
	}
}

// circSeq numbers circuits for their memory account names.
var circSeq atomic.Uint64

// openAccount opens the circuit's memory account below parent and
// registers the circuit's own participant.
func (c *Circuit) openAccount(parent *memquota.Account) error {
	a, err := parent.NewChild(fmt.Sprintf("circ %d", circSeq.Add(1)))
	if err != nil {
		return fmt.Errorf("circuit: memory quota: %w", err)
	}
	p, err := a.Register(quotaParticipant{c})
	if err != nil {
		a.Close()
		return fmt.Errorf("circuit: memory quota: %w", err)
	}
	c.acct, c.part = a, p
	return nil
}

// closeAccount ends the circuit's own accounting. Its streams' accounts
// stay until the streams close (they may hold unread data); the circuit's
// account goes with the last of them.
func (c *Circuit) closeAccount() {
	c.part.Close()
	c.acct.Retire()
}

// MemoryAccount returns the circuit's memory account (nil without
// accounting); each stream's account is a child of it.
func (c *Circuit) MemoryAccount() *memquota.Account { return c.acct }

// quotaParticipant is the circuit as a memquota.Participant, without
// exporting the methods on Circuit.
type quotaParticipant struct{ c *Circuit }

// Oldest reports when the longest current wait for a package window
// began, if a sender holds a cell. It takes no lock.
func (q quotaParticipant) Oldest() (time.Time, bool) { return q.c.oldest.Get() }

// Reclaimed tears the circuit down with a DESTROY: senders and streams
// fail with err.
func (q quotaParticipant) Reclaimed(err error) { q.c.closeWith(err, true) }

// startWaiting charges one DATA cell that is about to wait for a package
// window. The claim may wait on the quota's hard limit; no lock is held.
func (c *Circuit) startWaiting() error {
	if err := c.part.Claim(cell.Len); err != nil {
		return err
	}
	c.mu.Lock()
	c.waiters++
	if c.waiters == 1 {
		// With several waiters this stays the first one's time until
		// all are done: it can only overstate the age.
		c.oldest.Set(c.cfg.Clock.Now())
	}
	c.mu.Unlock()
	return nil
}

func (c *Circuit) stopWaiting() {
	c.mu.Lock()
	c.waiters--
	if c.waiters == 0 {
		c.oldest.Clear()
	}
	c.mu.Unlock()
	c.part.Release(cell.Len)
}

// sendFailure prefers the circuit's own error to the one a wait saw.
func (c *Circuit) sendFailure(err error) error {
	if e := c.Err(); e != nil {
		return e
	}
	return err
}

// handleCell runs on the channel's reader goroutine.
func (c *Circuit) handleCell(b *cell.Cell) {
	switch b.Command() {
	case cell.CmdRelay:
		c.recvMu.Lock()
		err := c.handleRelay(b)
		c.recvMu.Unlock()
		if err != nil {
			c.closeWith(err, true)
		}
	case cell.CmdCreated2, cell.CmdCreatedFast, cell.CmdCreated:
		cmd := b.Command()
		ok := c.deliverCtl(-1, cmd, 0, b.Payload()[:])
		c.pool.Put(b)
		if !ok {
			c.closeWith(protoErr("unexpected %v", cmd), true)
		}
	case cell.CmdDestroy:
		reason := cell.DestroyReason(b.Payload()[0])
		c.pool.Put(b)
		c.closeWith(&DestroyedError{Reason: reason}, false)
	case cell.CmdRelayEarly:
		c.pool.Put(b)
		c.closeWith(protoErr("inbound RELAY_EARLY"), true)
	default:
		c.pool.Put(b)
	}
}

// handleRelay decrypts and dispatches one RELAY cell; it owns b. An error
// closes the circuit.
func (c *Circuit) handleRelay(b *cell.Cell) error {
	if c.closed.Load() {
		c.pool.Put(b)
		return nil
	}
	hopIdx, digest, ok := c.crypto.Decrypt(b)
	if !ok {
		c.pool.Put(b)
		return protoErr("relay cell recognized by no hop")
	}
	hdr, body, err := b.RelayBody()
	if err != nil {
		c.pool.Put(b)
		return protoErr("%v", err)
	}
	if hdr.Cmd == cell.RelayData {
		c.mu.Lock()
		due, echo, err := c.hops[hopIdx].flow.delivered(digest)
		c.mu.Unlock()
		if err != nil {
			c.pool.Put(b)
			return err
		}
		if due {
			m := &cell.Sendme{Version: 1, Digest: echo}
			if err := c.sendMsg(c.ctx, hopIdx, 0, m, sendOpts{}); err != nil {
				c.pool.Put(b)
				return nil // the circuit is already closing
			}
		}
	}
	if x := c.cfx.Load(); x != nil && cell.ConfluxSequenced(hdr.Cmd) {
		c.mu.Lock()
		last := len(c.hops) - 1
		c.mu.Unlock()
		if hopIdx != last {
			c.pool.Put(b)
			return protoErr("%v from hop %d of a conflux leg", hdr.Cmd, hopIdx)
		}
		return x.handleSequenced(c, b, hdr, body)
	}
	if hdr.StreamID == 0 {
		defer c.pool.Put(b)
		return c.handleControl(hopIdx, hdr.Cmd, body)
	}
	c.mu.Lock()
	e, ok := c.streams[hdr.StreamID]
	c.mu.Unlock()
	if !ok {
		// A stream we closed or never had: drop it (its DATA still
		// counted for the circuit window above).
		c.pool.Put(b)
		return nil
	}
	se := e.(*streamEntry)
	if se.hop != hopIdx {
		c.pool.Put(b)
		return protoErr("hop %d sent a message for a stream on hop %d", hopIdx, se.hop)
	}
	owned, done, err := se.HandleRelay(b, hdr.Cmd, body)
	if !owned {
		c.pool.Put(b)
	}
	if done {
		c.mu.Lock()
		if c.streams[hdr.StreamID] == e {
			delete(c.streams, hdr.StreamID)
		}
		c.mu.Unlock()
	}
	return err
}

// handleControl processes a message with stream ID 0.
func (c *Circuit) handleControl(hopIdx int, cmd cell.RelayCmd, body []byte) error {
	switch cmd {
	case cell.RelaySendme:
		m, err := cell.ParseSendme(body)
		if err != nil {
			return protoErr("%v", err)
		}
		now := monoNow()
		c.mu.Lock()
		h := c.hops[hopIdx] // hopIdx < len(c.hops): see finishHop
		err = h.flow.sendmeReceived(m, now)
		if err == nil {
			close(c.windowCh)
			c.windowCh = make(chan struct{})
		}
		c.mu.Unlock()
		return err
	case cell.RelayExtended2, cell.RelayTruncated:
		if c.deliverCtl(hopIdx, 0, cmd, body) {
			return nil
		}
		if cmd == cell.RelayTruncated {
			t, _ := cell.ParseTruncated(body)
			return &DestroyedError{Reason: t.Reason, Truncated: true, Hop: hopIdx}
		}
		return protoErr("unexpected EXTENDED2")
	case cell.RelayDrop:
		return nil
	case cell.RelayConfluxLinked:
		if c.deliverCtl(hopIdx, 0, cmd, body) {
			return nil
		}
		return protoErr("unexpected CONFLUX_LINKED")
	case cell.RelayConfluxSwitch:
		x := c.cfx.Load()
		c.mu.Lock()
		last := len(c.hops) - 1
		c.mu.Unlock()
		if x == nil || hopIdx != last {
			return protoErr("CONFLUX_SWITCH from hop %d of a circuit not in a conflux set", hopIdx)
		}
		return x.handleSwitch(c, body)
	case cell.RelayConfluxLink, cell.RelayConfluxLinkedAck:
		return protoErr("%v sent to a client", cmd)
	case cell.RelayData, cell.RelayEnd, cell.RelayConnected, cell.RelayBegin, cell.RelayBeginDir,
		cell.RelayResolve, cell.RelayResolved:
		return protoErr("%v with stream ID 0", cmd)
	}
	// Unknown control messages are dropped (tor-spec 6.1).
	return nil
}
