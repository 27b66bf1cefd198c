package stream

import (
	"math"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
)

// flowState is prop 324 section 4's flow control for one stream, as a
// client runs it: our receive queue is the buffer that Read drains. It is
// guarded by the stream's mutex. Rates are in units of 1000 bytes per
// second.
//
// The drain rate advertised in XON is measured as section 4.1.2 defines
// it: bytes drained over the time the buffer was busy being drained,
// here the time the queue was not empty. C tor approximates that by the
// time since its outbuf last became non-empty, restarted whenever a
// burst of more than 32 cells arrives; since exits pace an XON's rate
// with a token bucket refilled every 100 ms, every refill arrives as such
// a burst, and a client whose first XON advertised a low rate (say, after
// its reader paused) would keep it however fast it reads afterwards.
// Summing the non-empty time instead measures a reader that keeps up as
// fast, whatever the arrival pattern, so advisory XONs raise the rate
// again.
type flowState struct {
	xoffLimit    int64 // bytes
	xonRateBytes int64
	changePct    int64
	ewmaCount    int64

	// Sending side: what the exit asked of us.
	xoffReceived bool
	rate         int64 // bytes/s from the last XON; 0 = unlimited
	tokens       int64 // bytes we may send now times 10^9, when rate > 0
	refilled     time.Time

	// Receiving side: what we asked of the exit.
	xoffSent     bool
	busySince    time.Time     // when the queue became non-empty; zero while empty
	busy         time.Duration // earlier non-empty time in the current sample
	busyBytes    int64         // bytes read in the current sample
	ewmaRate     int64
	lastSentRate int64
	// seq numbers decisions; only the latest one goes on the wire.
	seq uint64

	stats FlowStats
}

func newFlowState(c FlowControl) *flowState {
	def := func(v, d int) int64 {
		if v <= 0 {
			return int64(d)
		}
		return int64(v)
	}
	return &flowState{
		xoffLimit:    def(c.XoffCells, 500) * cell.RelayBodyMax,
		xonRateBytes: def(c.XonRateCells, 500) * cell.RelayBodyMax,
		changePct:    def(c.XonChangePct, 25),
		ewmaCount:    def(c.XonEWMACount, 2),
	}
}

// flowAction is a decided XON or XOFF, to send once the stream's mutex is
// released.
type flowAction struct {
	msg cell.RelayMsg
	seq uint64
}

func (f *flowState) decide(m cell.RelayMsg) flowAction {
	f.seq++
	return flowAction{msg: m, seq: f.seq}
}

// onArrival runs when DATA was queued, queued bytes now waiting: it starts
// the busy clock and decides on XOFF past cc_xoff_client.
func (f *flowState) onArrival(queued, n int64, now time.Time) flowAction {
	f.stats.MaxQueued = max(f.stats.MaxQueued, queued)
	if queued == n {
		f.busySince = now
	}
	if queued > f.xoffLimit && !f.xoffSent {
		f.xoffSent = true
		f.ewmaRate = 0 // the rate was wrong if we got this far
		f.stats.XoffSent++
		return f.decide(&cell.Xoff{})
	}
	return flowAction{}
}

// onRead runs when n bytes were read and queued remain. Every cc_xon_rate
// cells' worth of bytes read it folds a drain rate sample into the EWMA;
// it decides on an XON when an XOFF's queue has emptied, or when the rate
// moved enough for an advisory one (after a first XON).
func (f *flowState) onRead(n, queued int64, now time.Time) flowAction {
	f.busyBytes += n
	elapsed := f.busy
	if !f.busySince.IsZero() {
		elapsed += now.Sub(f.busySince)
	}
	if queued == 0 {
		f.busy, f.busySince = elapsed, time.Time{}
	}
	if f.busyBytes > f.xonRateBytes {
		if r := drainRate(f.busyBytes, elapsed); r != 0 {
			f.ewmaRate = nEWMA(r, f.ewmaRate, f.ewmaCount)
			f.busy, f.busyBytes = 0, 0
			if !f.busySince.IsZero() {
				f.busySince = now
			}
		}
	}
	if (f.xoffSent && queued == 0) || (!f.xoffSent && f.rateChanged()) {
		f.lastSentRate = f.ewmaRate
		f.xoffSent = false
		f.stats.XonSent++
		f.stats.XonRate = f.ewmaRate
		return f.decide(&cell.Xon{KBpsEWMA: uint32(f.ewmaRate)})
	}
	return flowAction{}
}

func (f *flowState) rateChanged() bool {
	if f.lastSentRate == 0 {
		return false
	}
	return f.ewmaRate > (100+f.changePct)*f.lastSentRate/100 ||
		f.ewmaRate < (100-f.changePct)*f.lastSentRate/100
}

// drainRate is bytes over d in units of 1000 bytes/s, at least 1; 0 when
// d is not positive.
func drainRate(bytes int64, d time.Duration) int64 {
	us := d.Microseconds()
	if us <= 0 {
		return 0
	}
	if bytes > math.MaxInt32/1000 || bytes/us > math.MaxInt32/1000 {
		return math.MaxInt32
	}
	return max(1, bytes*1000/us)
}

// nEWMA is prop 324's N_EWMA (section 2.1.2); a zero previous value takes
// the new one.
func nEWMA(curr, prev, n int64) int64 {
	if prev == 0 {
		return curr
	}
	return (2*curr + (n-1)*prev) / (n + 1)
}

// onXon applies an XON's advisory rate, a token bucket holding one
// second's worth as C tor sets for the connection, and lifts an XOFF.
func (f *flowState) onXon(kbps uint32, now time.Time) {
	r := int64(kbps) * 1000
	if r > math.MaxInt32 {
		r = 0 // as good as unlimited
	}
	switch {
	case r == 0:
	case f.rate == 0:
		f.tokens, f.refilled = r*nsPerSec, now
	default:
		f.refill(now)
		f.tokens = min(f.tokens, r*nsPerSec)
	}
	f.rate = r
	f.xoffReceived = false
	f.stats.XonReceived++
	f.stats.RateLimit = r
}

// nsPerSec scales the token bucket: tokens are bytes times 10^9, so a
// refill of rate bytes/s over d nanoseconds is exact.
const nsPerSec = int64(time.Second)

func (f *flowState) refill(now time.Time) {
	if d := now.Sub(f.refilled); d > 0 {
		f.tokens = min(f.rate*nsPerSec, f.tokens+f.rate*min(d.Nanoseconds(), nsPerSec))
		f.refilled = now
	}
}

// takeTokens takes n bytes of the rate limit, or says how long to wait
// before they are there.
func (f *flowState) takeTokens(n int64, now time.Time) time.Duration {
	if f.rate == 0 {
		return 0
	}
	f.refill(now)
	need := min(n, f.rate) * nsPerSec // a cell never waits for more than the bucket holds
	if f.tokens >= need {
		f.tokens -= need
		return 0
	}
	return time.Duration((need - f.tokens + f.rate - 1) / f.rate)
}

// handleFlow processes an XON or XOFF from the exit. On a stream without
// flow control they are dropped, as C tor does.
func (s *Stream) handleFlow(cmd cell.RelayCmd, body []byte) error {
	m, err := cell.ParseRelayMsg(cmd, body)
	if err != nil {
		return protoErr("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fc == nil || s.st == stateClosed {
		return nil
	}
	switch m := m.(type) {
	case *cell.Xoff:
		if !s.fc.xoffReceived {
			s.fc.xoffReceived = true
			s.fc.stats.XoffReceived++
		}
	case *cell.Xon:
		s.fc.onXon(m.KBpsEWMA, wallNow())
		notify(s.wwake)
	}
	return nil
}

// sendFlow sends a decided XON or XOFF unless a later decision superseded
// it, so the last message on the wire is always the latest decision.
func (s *Stream) sendFlow(a flowAction) {
	if a.msg == nil {
		return
	}
	s.flowMu.Lock()
	defer s.flowMu.Unlock()
	s.mu.Lock()
	stale := s.fc.seq != a.seq || s.st == stateClosed
	s.mu.Unlock()
	if stale {
		return
	}
	// A failure means the circuit is dying; readers learn it from
	// CircuitClosed.
	s.flowSink.SendFlowControl(s.ctx, s.id, a.msg)
}

// FlowStats reports the stream's XON/XOFF counters; ok is false for a
// stream without flow control.
func (s *Stream) FlowStats() (st FlowStats, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fc == nil {
		return FlowStats{}, false
	}
	return s.fc.stats, true
}
