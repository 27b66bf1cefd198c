package channel

import (
	"sync"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// A C tor relay can hold back a DESTROY for one of our circuits until
// something else is queued for the channel. It queues the DESTROY in the
// channel's circuit mux and starts a flush only when nothing waits to be
// written; when the link towards us is backed up (a slow phone link while
// the circuit was streaming to us), later flushes of the connection do not
// look at the mux again, and nothing else on the channel wakes it. The
// circuit is gone at the relay, its queued data dropped, and our reader
// waits for data that never comes. Any cell the relay queues for the
// channel releases the DESTROY first, so Nudge makes the relay answer
// something: a CREATE_FAST on a throwaway circuit, which costs the relay
// no public-key work, destroyed again as soon as its CREATED_FAST is back.

const (
	// nudgeGap is the least time between two nudges of one channel.
	nudgeGap = 10 * time.Second
	// nudgeTimeout is how long a nudge waits for its reply before it
	// destroys the throwaway circuit anyway.
	nudgeTimeout = time.Minute
)

// Nudge asks the relay to write to the channel, which flushes any DESTROY
// it holds back for our circuits (see above). It does not block. A nudge
// costs two cells out and one back; at most one is in flight, and one is
// sent at most every 10 seconds: more calls do nothing.
func (ch *Channel) Nudge() {
	now := ch.cfg.Clock.Now()
	ch.mu.Lock()
	if ch.err != nil || ch.nudging || (!ch.lastNudge.IsZero() && now.Sub(ch.lastNudge) < nudgeGap) {
		ch.mu.Unlock()
		return
	}
	ch.nudging = true
	ch.lastNudge = now
	ch.mu.Unlock()
	if !ch.nudge() {
		ch.mu.Lock()
		ch.nudging = false
		ch.mu.Unlock()
	}
}

// nudge sends the CREATE_FAST; it reports whether it did.
func (ch *Channel) nudge() bool {
	var x [20]byte
	if err := torcrypto.RandomBytes(ch.cfg.Rand, x[:]); err != nil {
		return false
	}
	b := ch.cfg.Pool.TryGet()
	if b == nil {
		return false
	}
	p := &nudgeCircuit{ch: ch}
	id, err := ch.AddCircuit(p)
	if err != nil {
		ch.cfg.Pool.Put(b)
		return false
	}
	if err := b.SetPayload(id, cell.CmdCreateFast, x[:]); err != nil {
		ch.cfg.Pool.Put(b)
		ch.RemoveCircuit(id)
		return false
	}
	// The channel may close (ChannelClosed) before this returns, so
	// finish reads id and timer under p.mu.
	p.mu.Lock()
	p.id = id
	p.timer = time.AfterFunc(nudgeTimeout, func() { p.finish(true) })
	p.mu.Unlock()
	if ch.Send(b) != nil {
		p.finish(false)
		return false
	}
	ch.nudges.Add(1)
	return true
}

// nudgeCircuit is the throwaway circuit of one nudge.
type nudgeCircuit struct {
	ch   *Channel
	once sync.Once

	mu    sync.Mutex
	id    uint32      // 0 until AddCircuit's ID is recorded
	timer *time.Timer // destroys the circuit if no reply comes
}

// HandleCell implements Handler: whatever the relay answered, the nudge
// has done its work.
func (p *nudgeCircuit) HandleCell(c *cell.Cell) {
	destroyed := c.Command() == cell.CmdDestroy
	p.ch.cfg.Pool.Put(c)
	p.finish(!destroyed)
}

// ChannelClosed implements Handler.
func (p *nudgeCircuit) ChannelClosed(error) { p.finish(false) }

// finish unregisters the circuit once, telling the relay with a DESTROY
// when it still has it.
func (p *nudgeCircuit) finish(destroy bool) {
	p.once.Do(func() {
		p.mu.Lock()
		id, t := p.id, p.timer
		p.mu.Unlock()
		if t != nil {
			t.Stop()
		}
		// id is 0 when the channel closed before it was recorded: the
		// channel has dropped its circuits already.
		if id != 0 {
			if destroy {
				if b := p.ch.cfg.Pool.TryGet(); b != nil {
					b.SetPayload(id, cell.CmdDestroy, []byte{byte(cell.DestroyNone)})
					p.ch.Send(b)
				}
			}
			p.ch.RemoveCircuit(id)
		}
		p.ch.mu.Lock()
		p.ch.nudging = false
		p.ch.mu.Unlock()
	})
}
