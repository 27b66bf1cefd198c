package stream

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/memquota"
)

// Stream-level flow control (tor-spec 7.4).
const (
	WindowStart     = 500
	WindowIncrement = 50
	// sendmeMaxQueued: a SENDME is only sent while fewer cells than this
	// wait to be read (C tor's "outbuf not too full").
	sendmeMaxQueued = 10
)

// Sink is what a stream needs from its circuit. internal/circuit
// satisfies it (and FlowSink).
type Sink interface {
	// SendData sends p (at most cell.RelayBodyMax bytes) as one DATA
	// cell on stream id, waiting as long as circuit-level windows or the
	// link require, or until ctx is done.
	SendData(ctx context.Context, id uint16, p []byte) error
	// SendSendme sends a stream-level SENDME for stream id.
	SendSendme(ctx context.Context, id uint16) error
	// SendEnd sends END for stream id without blocking (best effort)
	// and forgets the stream: no more messages for it are delivered.
	SendEnd(id uint16, reason cell.EndReason)
	// Pool is where received cells go back to.
	Pool() *cell.Pool
}

// StallSink is a Sink that wants to hear when a stream's data stops: the
// reader has waited Config.StallAfter with nothing new after data had
// been arriving. A circuit uses it to nudge its channel (a relay may be
// holding back the DESTROY that would end the wait; internal/channel's
// Nudge). Stalled must not block; it is called at most once per run of
// arriving data.
type StallSink interface {
	Sink
	Stalled()
}

// DefaultStallAfter is Config.StallAfter's default. It is longer than
// the idle timeout of the mobile facade's pooled HTTP connections (30 s),
// whose background reads would otherwise cost a nudge (three cells) each
// time a response is followed by quiet; a stream that really lost its
// circuit that way is rare, and waits this long instead of for ever.
const DefaultStallAfter = 40 * time.Second

// FlowSink is a Sink that can also carry prop 324's stream flow control
// messages. Streams with Config.FlowControl need one.
type FlowSink interface {
	Sink
	// SendFlowControl sends m (a *cell.Xon or *cell.Xoff) on stream id.
	// It may wait for a cell buffer or ctx, never for windows.
	SendFlowControl(ctx context.Context, id uint16, m cell.RelayMsg) error
}

// FlowControl configures prop 324 section 4's stream flow control, used
// on congestion-controlled circuits instead of stream windows. The fields
// are the consensus parameters; zero means C tor's default.
type FlowControl struct {
	// XoffCells is cc_xoff_client: an XOFF asks the exit to stop once
	// more than this many cells' worth of bytes (498 each) wait to be
	// read. Zero means 500.
	XoffCells int
	// XonRateCells is cc_xon_rate: the drain rate advertised in XON is
	// measured over this many cells' worth of bytes read. Zero means 500.
	XonRateCells int
	// XonChangePct is cc_xon_change_pct: an advisory XON goes out when
	// the drain rate moves by more than this percentage. Zero means 25.
	XonChangePct int
	// XonEWMACount is cc_xon_ewma_cnt, the N of the drain rate's N_EWMA.
	// Zero means 2.
	XonEWMACount int
}

// FlowStats counts a flow-controlled stream's XON and XOFF messages.
type FlowStats struct {
	XoffSent, XonSent, XoffReceived, XonReceived int
	// RateLimit is the sending rate, in bytes per second, the exit's last
	// XON asked for; 0 means unlimited.
	RateLimit int64
	// MaxQueued is the most bytes that ever waited to be read at once.
	MaxQueued int64
	// XonRate is the drain rate our last XON advertised, in units of
	// 1000 bytes per second (0: unlimited).
	XonRate int64
}

// Config configures a stream. The zero value is usable.
type Config struct {
	// Clock dates queued data for the memory quota. Nil means the real
	// clock. Deadlines do not use it: net.Conn callers set them from
	// time.Now, so they are compared with the real clock even when Clock
	// pretends another date (replays of old documents).
	Clock clock.Clock
	// Account is the stream's own memory account (the circuit makes it
	// below its own). The stream charges its receive queue there, hands
	// it to a directory download on the stream (MemoryAccount), and
	// closes it on Close; it is the stream's from New on, even if New
	// fails. When the quota collapses it, queued data goes back to the
	// pool, Read and Write fail with the *memquota.ReclaimedError, and
	// the exit gets END (RESOURCELIMIT). Nil means no accounting.
	Account *memquota.Account
	// Target names the destination for RemoteAddr (e.g. "example.com:80"
	// or "dir").
	Target string
	// Opened says the stream needs no CONNECTED (RESOLVE-style streams
	// never get one). Normally false.
	Opened bool
	// Optimistic lets Write send DATA before CONNECTED arrives
	// (optimistic data, tor-spec 6.2): the request travels right behind
	// BEGIN and the round trip to CONNECTED is saved. Read still waits
	// for CONNECTED, and an END in its place fails reads and later writes
	// with the *EndError.
	Optimistic bool
	// FlowControl, when set, replaces stream windows and stream SENDMEs
	// with XON/XOFF (prop 324 section 4), as a stream on a
	// congestion-controlled circuit must. The sink must be a FlowSink.
	FlowControl *FlowControl
	// StallAfter is how long a reader waits, after data had been
	// arriving, before a StallSink hears that it stopped. Zero means
	// DefaultStallAfter; negative means never. It is real time, like
	// deadlines.
	StallAfter time.Duration
}

type state int

const (
	stateOpening state = iota // BEGIN/BEGIN_DIR sent, waiting for CONNECTED
	stateOpen
	stateEnded  // END received or the circuit died; reads drain the queue
	stateClosed // closed locally
)

type queued struct {
	c    *cell.Cell
	body []byte // unread part of the DATA body, aliasing c
	at   time.Time
}

// queuedCost is what one received cell costs while it waits to be read,
// and what the receive queue claims for it: the pooled buffer and its
// entry in the queue.
const queuedCost = cell.Len + int64(unsafe.Sizeof(queued{}))

// Stream is one stream. It implements net.Conn. Its methods are safe for
// concurrent use, though as with any net.Conn concurrent Reads (or
// Writes) interleave unpredictably.
type Stream struct {
	sink   Sink
	id     uint16
	clk    clock.Clock
	target string
	acct   *memquota.Account
	in     *memquota.Participation // the receive queue's claims
	oldest memquota.Oldest         // when inq's head arrived; read without mu
	ctx    context.Context         // done when the stream can no longer write
	cancel context.CancelCauseFunc

	optimistic bool
	fc         *flowState // nil without prop 324 flow control
	flowSink   FlowSink   // the sink, when fc is set
	flowMu     sync.Mutex // orders XON/XOFF on the wire

	stallSink  StallSink     // the sink, when it wants to hear of stalls
	stallAfter time.Duration // > 0 with stallSink

	openCh chan struct{} // closed when the open attempt is decided
	rwake  chan struct{} // cap 1: data, an ending, or a deadline change
	wwake  chan struct{} // cap 1: package window grew, or the stream ended
	rdl    deadline
	wdl    deadline

	mu            sync.Mutex
	st            state
	openErr       error
	connected     cell.Connected
	inq           []queued
	head          int
	inqBytes      int64 // unread bytes in inq
	deliverWindow int
	packageWindow int
	readErr       error // returned once the queue is empty
	writeErr      error
	peerEnded     bool // END received (or sent on reclaim): we must not send END
	reclaimed     bool // the memory quota collapsed the stream's account
	// flowing is set when data arrives and cleared when the stall
	// timer fires: one Stalled call per run of data.
	flowing bool
	stallT  *time.Timer // made on the first wait that needs it
}

// New returns a stream with ID id on sink. It is opening unless
// cfg.Opened; the circuit sends BEGIN (or BEGIN_DIR) itself.
func New(sink Sink, id uint16, cfg *Config) (*Stream, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	s := &Stream{
		sink:          sink,
		id:            id,
		clk:           clock.OrReal(c.Clock),
		target:        c.Target,
		optimistic:    c.Optimistic,
		openCh:        make(chan struct{}),
		rwake:         make(chan struct{}, 1),
		wwake:         make(chan struct{}, 1),
		deliverWindow: WindowStart,
		packageWindow: WindowStart,
	}
	if c.FlowControl != nil {
		fs, ok := sink.(FlowSink)
		if !ok {
			return nil, fmt.Errorf("stream: flow control needs a FlowSink, have %T", sink)
		}
		s.flowSink = fs
		s.fc = newFlowState(*c.FlowControl)
	}
	if ss, ok := sink.(StallSink); ok && c.StallAfter >= 0 {
		s.stallSink = ss
		s.stallAfter = c.StallAfter
		if s.stallAfter == 0 {
			s.stallAfter = DefaultStallAfter
		}
	}
	s.rdl.init()
	s.wdl.init()
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.acct = c.Account
	var err error
	if s.in, err = s.acct.Register(s); err != nil {
		s.acct.Close()
		s.cancel(err)
		return nil, fmt.Errorf("stream: memory quota: %w", err)
	}
	if c.Opened {
		s.st = stateOpen
		close(s.openCh)
	}
	return s, nil
}

// ID returns the stream ID.
func (s *Stream) ID() uint16 { return s.id }

// MemoryAccount returns the stream's memory account (nil without
// accounting), for buffers that belong to the stream's data, such as a
// directory download's body (internal/dirclient).
func (s *Stream) MemoryAccount() *memquota.Account { return s.acct }

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// WaitOpen waits for CONNECTED. It returns an *EndError when the exit
// refused the stream, the circuit's error if it died, or ctx's.
func (s *Stream) WaitOpen(ctx context.Context) error {
	select {
	case <-s.openCh:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.openErr
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Buffered returns how many received bytes wait to be read.
func (s *Stream) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.inqBytes)
}

// Connected returns the CONNECTED message (its address is invalid for
// BEGIN_DIR streams).
func (s *Stream) Connected() cell.Connected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// decideOpen records the outcome of the open attempt. Called with s.mu
// held.
func (s *Stream) decideOpenLocked(err error) {
	select {
	case <-s.openCh:
		return
	default:
	}
	s.openErr = err
	close(s.openCh)
}

// HandleRelay processes a relay message for this stream, on the circuit's
// reader goroutine. For DATA it takes ownership of c (the cell body
// aliases it); for everything else the caller keeps c. It reports done
// when the stream will accept no more messages (the circuit forgets it),
// and an error wrapping ErrProtocol when the exit broke the protocol (the
// circuit closes).
func (s *Stream) HandleRelay(c *cell.Cell, cmd cell.RelayCmd, body []byte) (owned, done bool, err error) {
	switch cmd {
	case cell.RelayData:
		act, sendEnd, err := s.handleData(c, body)
		if sendEnd {
			s.sink.SendEnd(s.id, cell.EndResourceLimit)
		}
		s.sendFlow(act)
		return true, false, err
	case cell.RelayConnected:
		m, err := cell.ParseConnected(body)
		if err != nil {
			return false, false, protoErr("CONNECTED: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.st != stateOpening {
			if s.st == stateClosed {
				return false, false, nil
			}
			return false, false, protoErr("CONNECTED on an open stream")
		}
		s.st = stateOpen
		s.connected = *m
		s.decideOpenLocked(nil)
		return false, false, nil
	case cell.RelayEnd:
		m, err := cell.ParseEnd(body)
		if err != nil {
			return false, true, protoErr("END: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.peerEnded = true
		var e error = &EndError{Reason: m.Reason, Addr: m.Addr, TTL: m.TTL}
		if s.st == stateOpening {
			s.decideOpenLocked(e)
		}
		if m.Reason == cell.EndDone && s.st == stateOpen {
			e = io.EOF
		}
		s.endLocked(e, e)
		return false, true, nil
	case cell.RelayXoff, cell.RelayXon:
		return false, false, s.handleFlow(cmd, body)
	case cell.RelaySendme:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fc != nil {
			return false, false, protoErr("stream SENDME on a congestion-controlled circuit")
		}
		if s.packageWindow+WindowIncrement > WindowStart {
			return false, false, protoErr("stream SENDME would open the window past %d", WindowStart)
		}
		s.packageWindow += WindowIncrement
		notify(s.wwake)
		return false, false, nil
	}
	// Other commands on a stream (RESOLVED on a data stream, unknown
	// commands) are dropped, as the spec says of unknown relay commands.
	return false, false, nil
}

func (s *Stream) handleData(c *cell.Cell, body []byte) (act flowAction, sendEnd bool, err error) {
	pool := s.sink.Pool()
	// Claim before taking the lock: with a hard limit the claim may wait
	// (the channel reader then stops reading, which is the backpressure
	// we want) until reclamation makes room, and reclamation must not
	// need this stream's lock meanwhile.
	var claimErr error
	if len(body) > 0 {
		claimErr = s.in.Claim(queuedCost)
	}
	claimed := len(body) > 0 && claimErr == nil
	drop := func() {
		pool.Put(c)
		if claimed {
			s.in.Release(queuedCost)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.st {
	case stateOpening:
		drop()
		return flowAction{}, false, protoErr("DATA before CONNECTED")
	case stateClosed:
		drop()
		return flowAction{}, false, nil
	case stateEnded:
		// The exit's END may race our own teardown; data after END is
		// a protocol violation only if the exit ended the stream.
		drop()
		if s.peerEnded && !s.reclaimed {
			return flowAction{}, false, protoErr("DATA after END")
		}
		return flowAction{}, false, nil
	}
	if s.fc == nil {
		if s.deliverWindow <= 0 {
			drop()
			return flowAction{}, false, protoErr("DATA beyond the stream window")
		}
		s.deliverWindow--
	}
	if len(body) == 0 {
		drop()
		return flowAction{}, false, nil
	}
	if claimErr != nil {
		// The stream's account collapsed (Reclaimed will say so too, on
		// another goroutine): the cell cannot be kept, nor anything after
		// it, so the stream ends now.
		drop()
		return flowAction{}, s.reclaimLocked(claimErr), nil
	}
	at := s.clk.Now()
	if s.head == len(s.inq) {
		s.oldest.Set(at)
	}
	s.inq = append(s.inq, queued{c: c, body: body, at: at})
	s.inqBytes += int64(len(body))
	s.flowing = true
	notify(s.rwake)
	if s.fc == nil {
		return flowAction{}, false, nil
	}
	return s.fc.onArrival(s.inqBytes, int64(len(body)), wallNow()), false, nil
}

// endLocked ends the stream with the given read and write errors, keeping
// queued data for Read. Called with s.mu held.
func (s *Stream) endLocked(readErr, writeErr error) {
	if s.st == stateClosed || s.st == stateEnded {
		return
	}
	s.st = stateEnded
	s.readErr = readErr
	s.writeErr = writeErr
	s.cancel(writeErr)
	notify(s.rwake)
	notify(s.wwake)
}

// CircuitClosed is called by the circuit when it dies: pending opens fail
// and reads end with err after queued data.
func (s *Stream) CircuitClosed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decideOpenLocked(err)
	s.endLocked(err, err)
}

// dropQueueLocked returns every queued cell to the pool.
func (s *Stream) dropQueueLocked() {
	pool := s.sink.Pool()
	n := 0
	for i := s.head; i < len(s.inq); i++ {
		pool.Put(s.inq[i].c)
		n++
	}
	clear(s.inq)
	s.inq, s.head = s.inq[:0], 0
	s.inqBytes = 0
	s.oldest.Clear()
	s.in.Release(int64(n) * queuedCost)
}

// Oldest implements memquota.Participant: when the oldest unread cell
// arrived. It takes no lock, so reclamation never waits for a stream.
func (s *Stream) Oldest() (time.Time, bool) { return s.oldest.Get() }

// Reclaimed implements memquota.Participant: the memory quota collapsed
// the stream's account (or its circuit's). Queued cells go back to the
// pool, reads and writes fail with err, and the exit is told with END
// (reason RESOURCELIMIT).
func (s *Stream) Reclaimed(err error) {
	s.mu.Lock()
	sendEnd := s.reclaimLocked(err)
	s.mu.Unlock()
	if sendEnd {
		s.sink.SendEnd(s.id, cell.EndResourceLimit)
	}
}

// reclaimLocked drops the queue and ends the stream with err. It reports
// whether the caller must send END once s.mu is released. Called with
// s.mu held.
func (s *Stream) reclaimLocked(err error) (sendEnd bool) {
	if s.st == stateClosed || s.reclaimed {
		return false
	}
	s.reclaimed = true
	s.dropQueueLocked()
	s.decideOpenLocked(err)
	s.st = stateEnded
	s.readErr, s.writeErr = err, err
	s.cancel(err)
	notify(s.rwake)
	notify(s.wwake)
	if s.peerEnded {
		return false
	}
	s.peerEnded = true // no second END from Close
	return true
}

// Read reads stream data. After the stream ends it returns queued data
// first, then io.EOF (END with DONE) or the error that ended it.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if s.st == stateClosed {
			s.mu.Unlock()
			return 0, ErrClosed
		}
		if s.head < len(s.inq) {
			n, sendmes := s.readLocked(p)
			var act flowAction
			if s.fc != nil && s.st != stateClosed {
				act = s.fc.onRead(int64(n), s.inqBytes, wallNow())
			}
			s.mu.Unlock()
			s.sendFlow(act)
			for ; sendmes > 0; sendmes-- {
				// A failed SENDME means the circuit is dying; its error
				// reaches the reader through CircuitClosed.
				if err := s.sink.SendSendme(s.ctx, s.id); err != nil {
					break
				}
			}
			return n, nil
		}
		if s.readErr != nil {
			err := s.readErr
			s.mu.Unlock()
			return 0, err
		}
		if s.st == stateOpening {
			// Reading before CONNECTED waits for it, like a dial.
			s.mu.Unlock()
			select {
			case <-s.openCh:
			case <-s.rdl.wait():
				return 0, os.ErrDeadlineExceeded
			}
			continue
		}
		var stall <-chan time.Time
		if s.flowing && s.stallSink != nil && len(p) > 0 {
			if s.stallT == nil {
				s.stallT = time.NewTimer(s.stallAfter)
			} else {
				s.stallT.Reset(s.stallAfter)
			}
			stall = s.stallT.C
		}
		s.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}
		expired := false
		select {
		case <-s.rwake:
		case <-s.rdl.wait():
			expired = true
		case <-stall:
			s.noteStall()
		}
		if stall != nil {
			s.mu.Lock()
			s.stallT.Stop()
			s.mu.Unlock()
		}
		if expired {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// noteStall tells the stall sink, once per run of data, that the reader
// has waited StallAfter since data stopped arriving.
func (s *Stream) noteStall() {
	s.mu.Lock()
	tell := s.flowing && s.head == len(s.inq) && s.readErr == nil && s.st == stateOpen
	if tell {
		s.flowing = false
	}
	s.mu.Unlock()
	if tell {
		s.stallSink.Stalled()
	}
}

// readLocked copies queued data into p and works out how many stream
// SENDMEs are now due.
func (s *Stream) readLocked(p []byte) (n, sendmes int) {
	pool := s.sink.Pool()
	freed := 0
	for n < len(p) && s.head < len(s.inq) {
		q := &s.inq[s.head]
		k := copy(p[n:], q.body)
		n += k
		s.inqBytes -= int64(k)
		q.body = q.body[k:]
		if len(q.body) == 0 {
			pool.Put(q.c)
			s.inq[s.head] = queued{}
			s.head++
			freed++
		}
	}
	if s.head == len(s.inq) {
		s.inq, s.head = s.inq[:0], 0
		s.oldest.Clear()
	} else {
		if s.head > 64 && s.head*2 > len(s.inq) {
			m := copy(s.inq, s.inq[s.head:])
			clear(s.inq[m:])
			s.inq, s.head = s.inq[:m], 0
		}
		s.oldest.Set(s.inq[s.head].at)
	}
	s.in.Release(int64(freed) * queuedCost)
	if s.fc == nil && s.st == stateOpen && len(s.inq)-s.head < sendmeMaxQueued {
		for s.deliverWindow <= WindowStart-WindowIncrement {
			s.deliverWindow += WindowIncrement
			sendmes++
		}
	}
	return n, sendmes
}

// Write sends p as DATA cells of up to cell.RelayBodyMax bytes. It blocks
// while the stream or circuit windows are closed (or, under flow control,
// while the exit has sent XOFF or its XON rate limit is spent), and
// before CONNECTED unless the stream is optimistic.
func (s *Stream) Write(p []byte) (int, error) {
	ctx, stop := s.writeContext()
	defer stop()
	if !s.optimistic {
		if err := s.WaitOpen(ctx); err != nil {
			return 0, s.writeFailure(err)
		}
	}
	n := 0
	for n < len(p) {
		k := min(len(p)-n, cell.RelayBodyMax)
		if err := s.takeWindow(ctx, k); err != nil {
			return n, err
		}
		if err := s.sink.SendData(ctx, s.id, p[n:n+k]); err != nil {
			return n, s.writeFailure(err)
		}
		n += k
	}
	return n, nil
}

// writeFailure turns an error from waiting or sending into what Write
// reports: the stream's own error when it ended, else a deadline.
func (s *Stream) writeFailure(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.st == stateClosed:
		return ErrClosed
	case s.writeErr != nil:
		return s.writeErr
	case s.openErr != nil:
		return s.openErr
	}
	select {
	case <-s.wdl.wait():
		return os.ErrDeadlineExceeded
	default:
	}
	return err
}

// takeWindow waits until one DATA cell of n bytes may be sent and takes
// its share: a unit of the package window, or under flow control no XOFF
// in force and n bytes of the XON rate limit.
func (s *Stream) takeWindow(ctx context.Context, n int) error {
	for {
		var wait time.Duration
		s.mu.Lock()
		switch {
		case s.st == stateClosed:
			s.mu.Unlock()
			return ErrClosed
		case s.writeErr != nil:
			err := s.writeErr
			s.mu.Unlock()
			return err
		case s.fc != nil:
			if !s.fc.xoffReceived {
				if wait = s.fc.takeTokens(int64(n), wallNow()); wait == 0 {
					s.mu.Unlock()
					return nil
				}
			}
		case s.packageWindow > 0:
			s.packageWindow--
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		var t *time.Timer
		var tick <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			tick = t.C
		}
		select {
		case <-s.wwake:
		case <-tick:
		case <-ctx.Done():
			return s.writeFailure(context.Cause(ctx))
		}
		if t != nil {
			t.Stop()
		}
	}
}

// writeContext returns a context that ends when the stream can no longer
// write or the write deadline passes, and a func to release it.
func (s *Stream) writeContext() (context.Context, func()) {
	dl := s.wdl.wait()
	select {
	case <-dl:
		ctx, cancel := context.WithCancelCause(s.ctx)
		cancel(os.ErrDeadlineExceeded)
		return ctx, func() {}
	default:
	}
	if !s.wdl.isSet() {
		return s.ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-dl:
			cancel(os.ErrDeadlineExceeded)
		case <-stop:
			cancel(nil)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { close(stop) }
}

// Close sends END (unless the exit already ended the stream), discards
// queued data and fails pending and later operations with ErrClosed. A
// second Close returns ErrClosed.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.st == stateClosed {
		s.mu.Unlock()
		return ErrClosed
	}
	sendEnd := !s.peerEnded
	s.peerEnded = true
	s.decideOpenLocked(ErrClosed)
	s.st = stateClosed
	s.dropQueueLocked()
	s.readErr, s.writeErr = ErrClosed, ErrClosed
	s.cancel(ErrClosed)
	notify(s.rwake)
	notify(s.wwake)
	s.mu.Unlock()
	s.rdl.stop()
	s.wdl.stop()
	s.in.Close()
	s.acct.Close()
	if sendEnd {
		s.sink.SendEnd(s.id, cell.EndMisc)
	}
	return nil
}

// Addr is a stream's address: network "tor" and the destination as given.
type Addr struct{ Target string }

// Network returns "tor".
func (Addr) Network() string { return "tor" }

func (a Addr) String() string { return a.Target }

// LocalAddr returns an Addr with no target.
func (s *Stream) LocalAddr() net.Addr { return Addr{} }

// RemoteAddr returns the destination the stream was opened to.
func (s *Stream) RemoteAddr() net.Addr { return Addr{Target: s.target} }

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; the zero time clears it.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.rdl.set(t)
	notify(s.rwake)
	return nil
}

// SetWriteDeadline sets the write deadline; the zero time clears it.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.wdl.set(t)
	notify(s.wwake)
	return nil
}

// deadline is a channel closed when a deadline passes (as in net.Pipe).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	ch     chan struct{}
	active bool
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

// wallNow is the real clock, which deadlines are set from (net.Conn
// callers use time.Now) and which XON/XOFF rates are measured on. Under
// testing/synctest it is the bubble's fake clock.
var wallNow = clock.Real{}.Now

// set arms the deadline at t, a time on the real clock; the zero t
// disarms it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired and closed ch; wait for nothing, it is closed
	}
	d.timer = nil
	closed := false
	select {
	case <-d.ch:
		closed = true
	default:
	}
	d.active = !t.IsZero()
	if !d.active {
		if closed {
			d.ch = make(chan struct{})
		}
		return
	}
	dur := t.Sub(wallNow())
	if dur <= 0 {
		if !closed {
			close(d.ch)
		}
		return
	}
	if closed {
		d.ch = make(chan struct{})
	}
	ch := d.ch
	d.timer = time.AfterFunc(dur, func() { close(ch) })
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) isSet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
