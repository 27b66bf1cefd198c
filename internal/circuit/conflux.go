package circuit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/torcrypto"
	"github.com/onionlite/onionlite/memquota"
)

// Conflux is a set of circuits (legs) that end at the same exit and carry
// one set of streams (proposal 329, tor-spec "Conflux"). The exit spreads
// the data it sends over the legs; every stream message carries an
// implicit sequence number, and the set delivers them to the streams in
// that order whichever leg they came on. We send on one leg, the one with
// the lowest RTT when the set was linked, so we never send
// CONFLUX_SWITCH. When any leg closes the set closes: cells in flight on
// the dead leg cannot be recovered (C tor's relinking is not done).
//
// A Conflux offers the circuit methods streams need (Begin, Resolve,
// Streams, Close, Err, Done); its methods are safe for concurrent use.
type Conflux struct {
	legs     []*confluxLeg
	sendLeg  *Circuit
	sendHop  int
	pool     *cell.Pool
	cfg      *Config
	nonce    [32]byte
	maxQueue int

	// recvMu orders delivery: the sequence numbers, the out-of-order
	// queue and handing cells to streams. Lock order: a leg's recvMu,
	// then recvMu, then mu.
	recvMu    sync.Mutex
	delivered uint64 // the absolute sequence number last delivered
	ooo       oooHeap
	oooAge    oooAges

	// Memory: the set's account (streams' accounts below it) charges
	// the cells held out of order.
	acct   *memquota.Account
	part   *memquota.Participation
	oldest memquota.Oldest

	linked     atomic.Bool // LinkConflux finished: a leg's death closes the set
	closed     atomic.Bool
	done       chan struct{}
	ctx        context.Context
	cancel     context.CancelCauseFunc
	mu         sync.Mutex
	streams    map[uint16]entry
	nextStream uint16
	err        error
}

type confluxLeg struct {
	c        *Circuit
	rtt      time.Duration // LINK to LINKED
	lastRecv uint64        // guarded by Conflux.recvMu
	// Counters, guarded by Conflux.recvMu.
	cells, switches uint64
}

// oooCell is a sequenced cell that arrived before its turn.
type oooCell struct {
	seq     uint64
	b       *cell.Cell
	hdr     cell.RelayHeader
	body    []byte // aliases b
	arrival uint64 // its number in oooAges
}

// oooAges keeps the arrival times of the cells held out of order, in
// arrival order, so that the oldest one still held is known at once:
// cells leave in sequence order, which is not their arrival order. An
// age that stayed the first queued cell's until the queue emptied made a
// set whose queue never emptied under load (two busy legs) look like the
// holder of the oldest data, and the quota reclaimed it whole, every
// stream on it, instead of the streams whose readers stalled.
type oooAges struct {
	at   []time.Time
	gone []bool
	head int    // at[:head] and gone[:head] are forgotten
	base uint64 // arrival number of at[head]
}

// add records an arrival at t and returns its number.
func (a *oooAges) add(t time.Time) uint64 {
	if a.head > 0 && a.head >= len(a.at)/2 {
		// Reuse the forgotten prefix instead of growing: the slices
		// keep their capacity, so a busy set allocates nothing here.
		n := copy(a.at, a.at[a.head:])
		copy(a.gone, a.gone[a.head:])
		a.at, a.gone, a.head = a.at[:n], a.gone[:n], 0
	}
	a.at = append(a.at, t)
	a.gone = append(a.gone, false)
	return a.base + uint64(len(a.at)-1-a.head)
}

// remove forgets arrival n.
func (a *oooAges) remove(n uint64) {
	a.gone[a.head+int(n-a.base)] = true
	i := a.head
	for i < len(a.gone) && a.gone[i] {
		i++
	}
	a.base += uint64(i - a.head)
	a.head = i
}

// oldest returns the earliest arrival still held.
func (a *oooAges) oldest() (time.Time, bool) {
	if a.head == len(a.at) {
		return time.Time{}, false
	}
	return a.at[a.head], true
}

// oooHeap is a min-heap of held cells by sequence number. It is not
// container/heap's: that boxes every pushed and popped cell in an
// interface, an allocation per cell held out of order.
type oooHeap []oooCell

func (h oooHeap) Len() int { return len(h) }

func (h *oooHeap) push(c oooCell) {
	*h = append(*h, c)
	q := *h
	for i := len(q) - 1; i > 0; {
		up := (i - 1) / 2
		if q[up].seq <= q[i].seq {
			break
		}
		q[up], q[i] = q[i], q[up]
		i = up
	}
}

// pop removes and returns the cell with the lowest sequence number; the
// heap must not be empty.
func (h *oooHeap) pop() oooCell {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = oooCell{}
	q = q[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(q) && q[l].seq < q[m].seq {
			m = l
		}
		if r := l + 1; r < len(q) && q[r].seq < q[m].seq {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// ErrConfluxLegClosed is the cause of a set closed because one of its legs
// closed; the leg's own error is wrapped with it.
var ErrConfluxLegClosed = errors.New("circuit: a leg of the conflux set closed")

// LinkOptions configure LinkConflux.
type LinkOptions struct {
	// UX is the desired_ux sent to the exit. Zero means
	// cell.ConfluxUXHighThroughput (C tor's default, "throughput").
	UX cell.ConfluxUX
	// MaxQueue bounds the cells held out of order; more is a protocol
	// violation by the exit. Zero means 4 × the congestion window cap
	// (cc_cwnd_max), at least 2000 cells. The memory quota bounds them
	// too.
	MaxQueue int
}

// LinkConflux joins legs, built circuits whose last hop is the same exit and runs
// congestion control, into a conflux set: a CONFLUX_LINK with a fresh
// nonce goes on each, and each leg whose exit answers CONFLUX_LINKED with
// that nonce is acknowledged (CONFLUX_LINKED_ACK) and joins. Legs that fail
// to link are closed. Link fails, closing every leg, when none links or
// ctx ends. The legs must carry no streams and must not be used on their
// own afterwards.
func LinkConflux(ctx context.Context, legs []*Circuit, o LinkOptions) (*Conflux, error) {
	if len(legs) == 0 {
		return nil, errors.New("circuit: conflux set without legs")
	}
	closeAll := func(err error) {
		for _, l := range legs {
			l.closeWith(err, true)
		}
	}
	var exit [20]byte
	for k, l := range legs {
		l.mu.Lock()
		n := len(l.hops)
		var last *hop
		if n > 0 {
			last = l.hops[n-1]
		}
		streams := len(l.streams)
		l.mu.Unlock()
		var err error
		switch {
		case last == nil:
			err = errors.New("circuit: conflux leg without hops")
		case last.cc == nil:
			err = errors.New("circuit: conflux leg without congestion control at its exit")
		case streams > 0:
			err = errors.New("circuit: conflux leg already carries streams")
		case k > 0 && last.relay.RSAID != exit:
			err = errors.New("circuit: conflux legs end at different exits")
		case l.cfx.Load() != nil:
			err = errors.New("circuit: circuit already in a conflux set")
		}
		if err != nil {
			closeAll(err)
			return nil, err
		}
		exit = last.relay.RSAID
	}
	first := legs[0]
	x := &Conflux{pool: first.pool, cfg: &first.cfg, done: make(chan struct{}),
		streams: make(map[uint16]entry), maxQueue: o.MaxQueue}
	if x.maxQueue <= 0 {
		x.maxQueue = 2000
		if p := first.cfg.CongestionControl; p != nil && 4*p.CwndMax > x.maxQueue {
			x.maxQueue = 4 * p.CwndMax
		}
	}
	if err := torcrypto.RandomBytes(first.rand, x.nonce[:]); err != nil {
		closeAll(err)
		return nil, err
	}
	var b [2]byte
	torcrypto.RandomBytes(first.rand, b[:])
	x.nextStream = uint16(b[0])<<8 | uint16(b[1])
	x.ctx, x.cancel = context.WithCancelCause(context.Background())
	ux := o.UX
	if ux == 0 {
		ux = cell.ConfluxUXHighThroughput
	}

	// Send every LINK before waiting for any LINKED.
	type pending struct {
		c    *Circuit
		hop  int
		w    *waiter
		sent time.Time
		err  error
	}
	ps := make([]*pending, len(legs))
	for k, l := range legs {
		p := &pending{c: l, hop: l.Hops() - 1}
		ps[k] = p
		l.cfx.Store(x)
		p.w = &waiter{relayCmds: []cell.RelayCmd{cell.RelayConfluxLinked}, hop: p.hop, reply: make(chan ctlReply, 1)}
		l.ctlMu.Lock()
		l.arm(p.w)
		p.sent = monoNow()
		p.err = l.sendMsg(ctx, p.hop, 0, &cell.ConfluxLink{Nonce: x.nonce, UX: ux}, sendOpts{wait: true})
		if p.err != nil {
			l.disarm(p.w)
		}
		l.ctlMu.Unlock()
	}
	for _, p := range ps {
		if p.err == nil {
			var r ctlReply
			r, p.err = p.c.await(ctx, p.w)
			now := monoNow()
			if p.err == nil {
				var m *cell.ConfluxLink
				m, p.err = cell.ParseConfluxLink(cell.RelayConfluxLinked, r.body)
				switch {
				case p.err != nil:
					p.err = protoErr("%v", p.err)
				case !torcrypto.Equal(m.Nonce[:], x.nonce[:]):
					p.err = protoErr("CONFLUX_LINKED for another set")
				case m.LastSent != 0 || m.LastRecv != 0:
					// A new set starts at zero both ways.
					p.err = protoErr("CONFLUX_LINKED of a new set with sequence numbers %d/%d", m.LastSent, m.LastRecv)
				}
			}
			if p.err == nil {
				p.err = p.c.sendMsg(ctx, p.hop, 0, &cell.ConfluxLinkedAck{}, sendOpts{wait: true})
			}
			if p.err == nil {
				x.recvMu.Lock()
				x.legs = append(x.legs, &confluxLeg{c: p.c, rtt: max(now.Sub(p.sent), time.Microsecond)})
				x.recvMu.Unlock()
				continue
			}
		}
		p.c.cfx.Store(nil)
		p.c.closeWith(fmt.Errorf("circuit: conflux link: %w", p.err), true)
	}
	if len(x.legs) == 0 {
		x.closeWith(ps[0].err)
		return nil, fmt.Errorf("circuit: no conflux leg linked: %w", ps[0].err)
	}
	best := x.legs[0]
	for _, l := range x.legs[1:] {
		if l.rtt < best.rtt {
			best = l
		}
	}
	x.sendLeg, x.sendHop = best.c, best.c.Hops()-1
	if err := x.openAccount(best.c.acct); err != nil {
		x.closeWith(err)
		return nil, err
	}
	x.linked.Store(true)
	// A leg may have died while the others linked.
	for _, l := range x.legs {
		if err := l.c.Err(); err != nil {
			x.legClosed(err)
			return nil, x.Err()
		}
	}
	return x, nil
}

// LegStats describes one leg of a set.
type LegStats struct {
	// RTT is the time from CONFLUX_LINK to CONFLUX_LINKED.
	RTT time.Duration
	// Cells counts the sequenced messages the exit sent on the leg, and
	// Switches its CONFLUX_SWITCH messages.
	Cells, Switches uint64
	// Sending: the leg we send on.
	Sending bool
}

// Legs describes the linked legs, in link order.
func (x *Conflux) Legs() []LegStats {
	x.recvMu.Lock()
	defer x.recvMu.Unlock()
	out := make([]LegStats, len(x.legs))
	for k, l := range x.legs {
		out[k] = LegStats{RTT: l.rtt, Cells: l.cells, Switches: l.switches, Sending: l.c == x.sendLeg}
	}
	return out
}

// CongestionControl reports the sending leg's congestion control state.
func (x *Conflux) CongestionControl() (CCState, bool) { return x.sendLeg.CongestionControl() }

// Circuits returns the legs.
func (x *Conflux) Circuits() []*Circuit {
	out := make([]*Circuit, len(x.legs))
	for k, l := range x.legs {
		out[k] = l.c
	}
	return out
}

var cfxSeq atomic.Uint64

func (x *Conflux) openAccount(parent *memquota.Account) error {
	a, err := parent.NewChild(fmt.Sprintf("cfx %d", cfxSeq.Add(1)))
	if err != nil {
		return fmt.Errorf("circuit: memory quota: %w", err)
	}
	p, err := a.Register(confluxParticipant{x})
	if err != nil {
		a.Close()
		return fmt.Errorf("circuit: memory quota: %w", err)
	}
	x.acct, x.part = a, p
	return nil
}

type confluxParticipant struct{ x *Conflux }

// Oldest reports when the oldest cell held out of order arrived.
func (q confluxParticipant) Oldest() (time.Time, bool) { return q.x.oldest.Get() }

// Reclaimed closes the set: its streams fail with err.
func (q confluxParticipant) Reclaimed(err error) { q.x.closeWith(err) }

// legOf returns c's leg state.
func (x *Conflux) legOf(c *Circuit) *confluxLeg {
	for _, l := range x.legs {
		if l.c == c {
			return l
		}
	}
	return nil
}

// handleSwitch processes CONFLUX_SWITCH from the exit on leg c: the exit
// sent seq cells on other legs since it last sent on this one.
func (x *Conflux) handleSwitch(c *Circuit, body []byte) error {
	m, err := cell.ParseConfluxSwitch(body)
	if err != nil {
		return protoErr("%v", err)
	}
	x.recvMu.Lock()
	defer x.recvMu.Unlock()
	l := x.legOf(c)
	if l == nil {
		// Still linking: no sequenced cell may come yet.
		return protoErr("CONFLUX_SWITCH before the set was linked")
	}
	next := l.lastRecv + uint64(m.Seq)
	if next < l.lastRecv {
		return protoErr("CONFLUX_SWITCH overflows the sequence number")
	}
	l.lastRecv = next
	l.switches++
	return nil
}

// handleSequenced takes a sequenced cell (it owns b) from the exit on leg
// c and delivers it, and whatever it unblocks, in the set's order.
func (x *Conflux) handleSequenced(c *Circuit, b *cell.Cell, hdr cell.RelayHeader, body []byte) error {
	x.recvMu.Lock()
	defer x.recvMu.Unlock()
	if x.closed.Load() {
		x.pool.Put(b)
		return nil
	}
	l := x.legOf(c)
	if l == nil {
		x.pool.Put(b)
		return protoErr("%v before the conflux set was linked", hdr.Cmd)
	}
	l.lastRecv++
	l.cells++
	seq := l.lastRecv
	switch {
	case seq == x.delivered+1:
		x.delivered++
		if err := x.deliver(b, hdr, body); err != nil {
			return err
		}
		return x.drainLocked()
	case seq <= x.delivered:
		x.pool.Put(b)
		return protoErr("conflux cell %d came after %d was delivered", seq, x.delivered)
	}
	if x.ooo.Len() >= x.maxQueue {
		x.pool.Put(b)
		return protoErr("more than %d conflux cells out of order", x.maxQueue)
	}
	// Held out of order: charged, never waiting (this is a channel's
	// reader goroutine).
	if err := x.part.ClaimNoWait(queuedOOOCost); err != nil {
		x.pool.Put(b)
		return err
	}
	n := x.oooAge.add(x.cfg.Clock.Now())
	x.ooo.push(oooCell{seq: seq, b: b, hdr: hdr, body: body, arrival: n})
	x.setOldestLocked()
	return nil
}

// queuedOOOCost is what a cell held out of order costs: its buffer and
// its heap entry.
const queuedOOOCost = cell.Len + 64

// drainLocked delivers queued cells while the next one is at the head.
func (x *Conflux) drainLocked() error {
	for x.ooo.Len() > 0 && x.ooo[0].seq == x.delivered+1 {
		q := x.ooo.pop()
		x.part.Release(queuedOOOCost)
		x.delivered++
		x.oooAge.remove(q.arrival)
		x.setOldestLocked()
		if err := x.deliver(q.b, q.hdr, q.body); err != nil {
			return err
		}
	}
	return nil
}

// setOldestLocked tells the quota the age of the oldest cell held out of
// order (none: the set holds nothing). Callers hold recvMu.
func (x *Conflux) setOldestLocked() {
	if t, ok := x.oooAge.oldest(); ok {
		x.oldest.Set(t)
	} else {
		x.oldest.Clear()
	}
}

// deliver hands one in-order cell to its stream; it owns b.
func (x *Conflux) deliver(b *cell.Cell, hdr cell.RelayHeader, body []byte) error {
	if hdr.StreamID == 0 {
		x.pool.Put(b)
		return protoErr("%v with stream ID 0", hdr.Cmd)
	}
	x.mu.Lock()
	e, ok := x.streams[hdr.StreamID]
	x.mu.Unlock()
	if !ok {
		x.pool.Put(b)
		return nil
	}
	se := e.(*streamEntry)
	owned, done, err := se.HandleRelay(b, hdr.Cmd, body)
	if !owned {
		x.pool.Put(b)
	}
	if done {
		x.mu.Lock()
		if x.streams[hdr.StreamID] == e {
			delete(x.streams, hdr.StreamID)
		}
		x.mu.Unlock()
	}
	return err
}

// legClosed closes the set when one of its legs closed with err.
func (x *Conflux) legClosed(err error) {
	x.closeWith(fmt.Errorf("%w: %w", ErrConfluxLegClosed, err))
}

// closeWith closes the set once: every leg closes (with a DESTROY), every
// stream fails with err, queued cells go back to the pool.
func (x *Conflux) closeWith(err error) bool {
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		return false
	}
	x.err = err
	x.closed.Store(true)
	streams := x.streams
	x.streams = make(map[uint16]entry)
	close(x.done)
	x.mu.Unlock()
	x.cancel(err)
	for _, l := range x.legs {
		l.c.closeWith(err, true)
	}
	for _, e := range streams {
		e.CircuitClosed(err)
	}
	x.recvMu.Lock()
	for x.ooo.Len() > 0 {
		q := x.ooo.pop()
		x.pool.Put(q.b)
		x.part.Release(queuedOOOCost)
	}
	x.oooAge = oooAges{}
	x.oldest.Clear()
	x.recvMu.Unlock()
	x.part.Close()
	x.acct.Retire()
	return true
}

// Close closes the set and its legs. A second Close returns an error
// wrapping net.ErrClosed.
func (x *Conflux) Close() error {
	if !x.closeWith(ErrClosed) {
		return fmt.Errorf("circuit: already closed: %w", net.ErrClosed)
	}
	return nil
}

// Err returns why the set closed, or nil while it is open.
func (x *Conflux) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

// Done is closed when the set closes.
func (x *Conflux) Done() <-chan struct{} { return x.done }

// Streams returns how many streams (and RESOLVE requests) are open.
func (x *Conflux) Streams() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.streams)
}

// MemoryAccount returns the set's memory account (nil without
// accounting); each stream's account is a child of it.
func (x *Conflux) MemoryAccount() *memquota.Account { return x.acct }

// Begin opens a stream from the exit to host:port, as Circuit.Begin.
func (x *Conflux) Begin(ctx context.Context, host string, port uint16, flags uint32) (*stream.Stream, error) {
	return x.BeginWith(ctx, host, port, flags, BeginOptions{})
}

// BeginWith is Begin with options.
func (x *Conflux) BeginWith(ctx context.Context, host string, port uint16, flags uint32, o BeginOptions) (*stream.Stream, error) {
	return openStream(x, ctx, &cell.Begin{Host: host, Port: port, Flags: flags}, net.JoinHostPort(host, strconv.Itoa(int(port))), o)
}

// Resolve asks the exit to resolve host, as Circuit.Resolve.
func (x *Conflux) Resolve(ctx context.Context, host string) ([]cell.Answer, error) {
	return resolve(x, ctx, host)
}

// streamHost and stream.FlowSink.

func (x *Conflux) streamAccount() *memquota.Account { return x.acct }
func (x *Conflux) streamConfig() *Config            { return x.cfg }
func (x *Conflux) sink() stream.FlowSink            { return x }

func (x *Conflux) sendOpen(ctx context.Context, hop int, id uint16, msg cell.RelayMsg) error {
	return x.sendLeg.sendMsg(ctx, hop, id, msg, sendOpts{wait: true})
}

func (x *Conflux) addStream(mk func(id uint16, cc bool) (entry, error)) (uint16, int, error) {
	x.mu.Lock()
	if x.err != nil {
		defer x.mu.Unlock()
		return 0, 0, x.err
	}
	var id uint16
	for tries := 0; ; tries++ {
		if tries == 1<<16 {
			x.mu.Unlock()
			return 0, 0, errors.New("circuit: no free stream ID")
		}
		x.nextStream++
		if _, used := x.streams[x.nextStream]; x.nextStream != 0 && !used {
			id = x.nextStream
			break
		}
	}
	slot := &streamEntry{entry: reserved{}, hop: x.sendHop}
	x.streams[id] = slot
	x.mu.Unlock()

	e, err := mk(id, true)
	x.mu.Lock()
	dead := err == nil && x.err != nil
	if dead {
		err = x.err
	}
	if x.streams[id] == entry(slot) {
		if err != nil {
			delete(x.streams, id)
		} else {
			x.streams[id] = &streamEntry{entry: e, hop: x.sendHop}
		}
	}
	x.mu.Unlock()
	if dead {
		e.CircuitClosed(err)
	}
	if err != nil {
		return 0, 0, err
	}
	return id, x.sendHop, nil
}

func (x *Conflux) forget(id uint16, e entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if se, ok := x.streams[id]; ok && se.(*streamEntry).entry == e {
		delete(x.streams, id)
	}
}

func (x *Conflux) hasStream(id uint16) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return x.err
	}
	if _, ok := x.streams[id]; !ok {
		return stream.ErrClosed
	}
	return nil
}

// Pool implements stream.Sink.
func (x *Conflux) Pool() *cell.Pool { return x.pool }

// SendData implements stream.Sink: one DATA cell on the sending leg.
func (x *Conflux) SendData(ctx context.Context, id uint16, p []byte) error {
	if err := x.hasStream(id); err != nil {
		return err
	}
	return x.sendLeg.send(ctx, x.sendHop, id, nil, cell.RelayData, p, sendOpts{data: true, wait: true})
}

// SendSendme implements stream.Sink. Streams of a set use XON/XOFF, so
// this is not expected to be called.
func (x *Conflux) SendSendme(ctx context.Context, id uint16) error {
	if err := x.hasStream(id); err != nil {
		return err
	}
	return x.sendLeg.send(ctx, x.sendHop, id, nil, cell.RelaySendme, nil, sendOpts{})
}

// SendFlowControl implements stream.FlowSink.
func (x *Conflux) SendFlowControl(ctx context.Context, id uint16, m cell.RelayMsg) error {
	if err := x.hasStream(id); err != nil {
		return err
	}
	return x.sendLeg.sendMsg(ctx, x.sendHop, id, m, sendOpts{})
}

// Stalled implements stream.StallSink: every leg's link is nudged (the
// exit may have died, and any leg's first hop may hold back its DESTROY).
func (x *Conflux) Stalled() {
	for _, l := range x.legs {
		l.c.Stalled()
	}
}

// SendEnd implements stream.Sink: END without blocking, best effort.
func (x *Conflux) SendEnd(id uint16, reason cell.EndReason) {
	x.mu.Lock()
	_, ok := x.streams[id]
	if ok {
		delete(x.streams, id)
	}
	x.mu.Unlock()
	if !ok || x.closed.Load() {
		return
	}
	b := x.pool.TryGet()
	if b == nil {
		return
	}
	x.sendLeg.send(x.ctx, x.sendHop, id, nil, cell.RelayEnd, []byte{byte(reason)}, sendOpts{buf: b})
}
