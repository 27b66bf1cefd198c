package cell

import (
	"context"
	"sync"
	"sync/atomic"
)

// Pool hands out cell buffers and caps how many are outstanding at once,
// so the cells queued anywhere in the link layer are bounded by
// Max*Len bytes. Get blocks at the cap; a full pool is backpressure, and
// the memory quota is expected to reclaim a queue before it stays full.
//
// Put zeroes the buffer (it may hold plaintext) before it can be reused.
// A Pool is safe for concurrent use.
type Pool struct {
	sem    chan struct{} // one token per outstanding buffer
	free   sync.Pool
	gets   atomic.Uint64
	waits  atomic.Uint64
	allocs atomic.Uint64
}

// NewPool returns a pool allowing max outstanding buffers; max <= 0 means
// DefaultPoolMax, the per-platform default.
func NewPool(max int) *Pool {
	if max <= 0 {
		max = DefaultPoolMax
	}
	p := &Pool{sem: make(chan struct{}, max)}
	p.free.New = func() any {
		p.allocs.Add(1)
		return new(Cell)
	}
	return p
}

var (
	defaultPoolOnce sync.Once
	defaultPool     *Pool
)

// DefaultPool is the process-wide pool with DefaultPoolMax buffers, used
// when a configuration leaves its Pool nil.
func DefaultPool() *Pool {
	defaultPoolOnce.Do(func() { defaultPool = NewPool(DefaultPoolMax) })
	return defaultPool
}

// OrDefault returns p, or DefaultPool() when p is nil.
func (p *Pool) OrDefault() *Pool {
	if p == nil {
		return DefaultPool()
	}
	return p
}

// Get returns a zeroed buffer, waiting while Max buffers are outstanding
// until one is returned or ctx is done.
func (p *Pool) Get(ctx context.Context) (*Cell, error) {
	p.gets.Add(1)
	select {
	case p.sem <- struct{}{}:
	default:
		p.waits.Add(1)
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return p.free.Get().(*Cell), nil
}

// TryGet returns a zeroed buffer, or nil when Max buffers are outstanding.
func (p *Pool) TryGet() *Cell {
	p.gets.Add(1)
	select {
	case p.sem <- struct{}{}:
		return p.free.Get().(*Cell)
	default:
		p.waits.Add(1)
		return nil
	}
}

// Put zeroes c and returns it to the pool. c must have come from this
// pool's Get and must not be used afterwards. Put(nil) does nothing.
func (p *Pool) Put(c *Cell) {
	if c == nil {
		return
	}
	clear(c[:])
	select {
	case <-p.sem:
	default:
		panic("BUG: cell.Pool.Put without a matching Get")
	}
	p.free.Put(c)
}

// PoolStats is a snapshot of a pool's usage.
type PoolStats struct {
	InUse  int    // buffers outstanding now
	Max    int    // cap on outstanding buffers
	Gets   uint64 // Get and TryGet calls
	Waits  uint64 // calls that found the pool at its cap
	Allocs uint64 // buffers allocated (not reused)
}

// Bytes is the memory held by outstanding buffers.
func (s PoolStats) Bytes() int64 { return int64(s.InUse) * Len }

// Stats returns current usage.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		InUse:  len(p.sem),
		Max:    cap(p.sem),
		Gets:   p.gets.Load(),
		Waits:  p.waits.Load(),
		Allocs: p.allocs.Load(),
	}
}
