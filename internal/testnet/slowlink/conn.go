package slowlink

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one proxied connection: two directions, each a reader that
// shapes chunks into a queue and a writer that delivers them on time.
type conn struct {
	p            *Proxy
	client, dest net.Conn

	mu        sync.Mutex
	fwd       int64 // bytes claimed for forwarding, both directions
	stalled   bool
	resetting bool

	closing   chan struct{}
	closeOnce sync.Once
	wasReset  atomic.Bool
}

func newConn(p *Proxy, client, dest net.Conn) *conn {
	return &conn{p: p, client: client, dest: dest, closing: make(chan struct{})}
}

type action int

const (
	forward action = iota
	stall
	reset
)

// claim decides how many of n bytes just read may be forwarded, and
// whether a fault fires after them. After a stall or reset it returns 0.
func (c *conn) claim(n int) (int, action) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled || c.resetting {
		return 0, forward
	}
	cfg := &c.p.cfg
	fwd, act := int64(n), forward
	if cfg.StallAfter > 0 && c.fwd+fwd >= cfg.StallAfter {
		fwd, act = cfg.StallAfter-c.fwd, stall
	}
	if cfg.ResetAfter > 0 && c.fwd+fwd >= cfg.ResetAfter {
		fwd, act = min(fwd, cfg.ResetAfter-c.fwd), reset
	}
	if e := cfg.ResetEvery; e > 0 && fwd > 0 {
		now := c.p.total.Add(fwd)
		old := now - fwd
		if now/e > old/e {
			cross := (old/e+1)*e - old
			c.p.total.Add(cross - fwd)
			fwd, act = cross, reset
		}
	}
	c.fwd += fwd
	switch act {
	case stall:
		c.stalled = true
		c.p.stats.stalls.Add(1)
	case reset:
		c.resetting = true
		c.p.stats.resets.Add(1)
	}
	return int(fwd), act
}

func (c *conn) isStalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stalled
}

// chunk is one unit in a direction's queue: data, or the end of the
// direction (eof, with err set when the source failed rather than
// closed), or a fault reset.
type chunk struct {
	data  []byte
	at    time.Time // delivery time
	eof   bool
	err   error
	reset bool
}

func (c *conn) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.direction(c.client, c.dest, &c.p.up, &c.p.stats.up)
	}()
	go func() {
		defer wg.Done()
		c.direction(c.dest, c.client, &c.p.down, &c.p.stats.down)
	}()
	wg.Wait()
	c.abort()
}

// direction moves bytes from src to dst through l until src ends or the
// connection is torn down.
func (c *conn) direction(src, dst net.Conn, l *link, counter *atomic.Int64) {
	p := c.p
	slots := make(chan struct{}, p.slots)
	q := make(chan chunk, p.slots+1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.deliver(dst, q, slots, counter)
	}()
	defer func() {
		<-done
		// Whatever the writer left behind is no longer queued.
		for {
			select {
			case ch := <-q:
				p.stats.queued.Add(-int64(len(ch.data)))
			default:
				return
			}
		}
	}()

	var last time.Time
	push := func(ch chunk) bool {
		if ch.at.Before(last) {
			ch.at = last
		}
		last = ch.at
		select {
		case q <- ch:
			return true
		case <-c.closing:
			return false
		}
	}
	for {
		buf := make([]byte, ChunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			fwd, act := c.claim(n)
			if dropped := n - fwd; dropped > 0 {
				p.stats.dropped.Add(int64(dropped))
			}
			if fwd > 0 {
				select {
				case slots <- struct{}{}:
				case <-c.closing:
					return
				}
				now := p.clk.Now()
				dep := l.reserve(now, fwd)
				at := dep.Add(p.cfg.Delay + p.jitter())
				if at.Before(dep) {
					at = dep
				}
				p.stats.queued.Add(int64(fwd))
				if !push(chunk{data: buf[:fwd], at: at}) {
					p.stats.queued.Add(-int64(fwd))
					return
				}
			}
			if act == reset {
				push(chunk{reset: true, at: last})
				return
			}
		}
		if err != nil {
			if c.isStalled() {
				// A stalled link forwards nothing, not even the close:
				// the stall ends when one end gives up.
				c.abort()
				return
			}
			if err == io.EOF {
				err = nil
			}
			push(chunk{eof: true, err: err, at: p.clk.Now().Add(p.cfg.Delay)})
			return
		}
	}
}

// deliver writes queued chunks to dst at their delivery times.
func (c *conn) deliver(dst net.Conn, q <-chan chunk, slots <-chan struct{}, counter *atomic.Int64) {
	p := c.p
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var ch chunk
		select {
		case ch = <-q:
		case <-c.closing:
			return
		}
		if wait := ch.at.Sub(p.clk.Now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.closing:
				if ch.data != nil {
					p.stats.queued.Add(-int64(len(ch.data)))
				}
				return
			}
		}
		switch {
		case ch.data != nil:
			_, err := dst.Write(ch.data)
			p.stats.queued.Add(-int64(len(ch.data)))
			<-slots
			if err != nil {
				c.abort()
				return
			}
			counter.Add(int64(len(ch.data)))
		case ch.reset:
			c.resetBoth()
			return
		case ch.eof:
			if ch.err != nil {
				c.resetBoth()
				return
			}
			closeWrite(dst)
			return
		}
	}
}

// closeWrite forwards a half-close; a conn that cannot half-close is
// closed.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// resetBoth closes both ends with an RST (SO_LINGER 0).
func (c *conn) resetBoth() {
	c.wasReset.Store(true)
	for _, nc := range []net.Conn{c.client, c.dest} {
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	c.abort()
}

// abort closes both ends and wakes every goroutine of the connection.
func (c *conn) abort() {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.client.Close()
		c.dest.Close()
	})
}
