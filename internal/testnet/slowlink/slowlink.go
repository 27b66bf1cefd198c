package slowlink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/clock"
)

// ChunkSize is the largest piece read from a connection and shaped as one
// unit (about one Ethernet-sized packet).
const ChunkSize = 1400

// DefaultQueueBytes is the per-connection, per-direction queue when
// Config.QueueBytes is zero.
const DefaultQueueBytes = 16 << 10

// Config describes the emulated link. The zero value forwards without
// shaping.
type Config struct {
	// Rate is the bandwidth of each direction in bits per second, shared
	// by all connections. 0 means unlimited.
	Rate int64
	// Delay is the one-way delay added to every chunk and half-close.
	Delay time.Duration
	// Jitter varies each chunk's delay uniformly within ±Jitter (never
	// below zero, and never reordering a connection's bytes).
	Jitter time.Duration
	// QueueBytes bounds what one connection may hold per direction
	// waiting for the link, besides the bytes on the wire. 0 means
	// DefaultQueueBytes.
	QueueBytes int

	// ResetAfter resets each connection (RST both ways) once it has
	// forwarded this many bytes, both directions together. Bytes still in
	// flight when the reset fires may be lost, as with a real RST.
	// 0 means never.
	ResetAfter int64
	// ResetEvery resets the connection that carries byte number k*N of
	// the proxy's total traffic, for every k. 0 means never.
	ResetEvery int64
	// StallAfter stops forwarding each connection, both ways, once it has
	// forwarded this many bytes: later bytes are read and dropped, and
	// neither end is closed until it closes itself. 0 means never.
	StallAfter int64

	// Dial reaches destinations. Nil means a net.Dialer with a 10 s
	// timeout. It is only ever called with "tcp4" and a 127.0.0.0/8
	// address.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Seed seeds the jitter. 0 means a random seed.
	Seed uint64
	// Logf receives one line per connection event. Nil means discard.
	Logf func(format string, args ...any)
}

// Stats are the proxy's counters since New.
type Stats struct {
	Up       int64 // bytes forwarded client → destination
	Down     int64 // bytes forwarded destination → client
	Queued   int64 // bytes read but not yet delivered, now
	Accepted int64 // connections accepted
	Active   int64 // connections open now
	Refused  int64 // SOCKS requests refused (destination, command, method)
	Failed   int64 // destinations that could not be reached
	Resets   int64 // connections reset by ResetAfter or ResetEvery
	Stalls   int64 // connections stalled by StallAfter
	Dropped  int64 // bytes read and dropped on stalled connections
}

// Proxy is a shaping SOCKS5 proxy. Create it with New.
type Proxy struct {
	cfg   Config
	clk   clock.Clock
	up    link // client → destination
	down  link // destination → client
	slots int  // queue capacity per connection per direction, in chunks

	rndMu sync.Mutex
	rnd   *rand.Rand

	stats struct {
		up, down, queued, accepted, active, refused, failed, resets, stalls, dropped atomic.Int64
	}
	total atomic.Int64 // bytes forwarded, both ways, for ResetEvery

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	addr      string
	wg        sync.WaitGroup
}

// link is one direction's serialising bottleneck.
type link struct {
	mu     sync.Mutex
	rate   int64
	freeAt time.Time
}

// reserve books n bytes on the link and returns when they have left it.
func (l *link) reserve(now time.Time, n int) time.Time {
	if l.rate <= 0 {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := now
	if l.freeAt.After(start) {
		start = l.freeAt
	}
	dep := start.Add(time.Duration(int64(n) * 8 * int64(time.Second) / l.rate))
	l.freeAt = dep
	return dep
}

// New returns a proxy for cfg. It does not listen yet: see Start, Serve
// and ListenAndServe.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.Rate < 0, cfg.Delay < 0, cfg.Jitter < 0, cfg.QueueBytes < 0,
		cfg.ResetAfter < 0, cfg.ResetEvery < 0, cfg.StallAfter < 0:
		return nil, errors.New("slowlink: negative value in Config")
	case cfg.Rate > 0 && cfg.Rate < 800:
		return nil, fmt.Errorf("slowlink: rate %d bit/s is below 800 bit/s", cfg.Rate)
	case cfg.Delay > time.Minute || cfg.Jitter > time.Minute:
		return nil, errors.New("slowlink: delay and jitter must be at most a minute")
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := &Proxy{
		cfg:       cfg,
		clk:       clock.Real{},
		up:        link{rate: cfg.Rate},
		down:      link{rate: cfg.Rate},
		rnd:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
	}
	// The queue holds QueueBytes plus the bytes on the wire (Rate*Delay),
	// so a long delay does not cap throughput below Rate.
	wire := 0
	if cfg.Delay+cfg.Jitter > 0 {
		if cfg.Rate > 0 {
			wire = int(cfg.Rate / 8 * int64(cfg.Delay+cfg.Jitter) / int64(time.Second))
		} else {
			wire = 1024 * ChunkSize
		}
	}
	p.slots = (cfg.QueueBytes+ChunkSize-1)/ChunkSize + (wire+ChunkSize-1)/ChunkSize
	return p, nil
}

func (p *Proxy) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf("slowlink: "+format, args...)
	}
}

// jitter returns a random offset within ±Jitter.
func (p *Proxy) jitter() time.Duration {
	j := p.cfg.Jitter
	if j <= 0 {
		return 0
	}
	p.rndMu.Lock()
	defer p.rndMu.Unlock()
	return time.Duration(p.rnd.Int64N(int64(2*j)+1)) - j
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := &p.stats
	return Stats{
		Up: s.up.Load(), Down: s.down.Load(), Queued: s.queued.Load(),
		Accepted: s.accepted.Load(), Active: s.active.Load(), Refused: s.refused.Load(),
		Failed: s.failed.Load(), Resets: s.resets.Load(), Stalls: s.stalls.Load(), Dropped: s.dropped.Load(),
	}
}

// Addr returns the address of the listener opened by Start or
// ListenAndServe (or the first passed to Serve), or "" before.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// checkListenAddr refuses listen addresses that are not loopback: the
// proxy reaches loopback services, so it must not be reachable from
// elsewhere.
func checkListenAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("slowlink: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("slowlink: listen address %q is not loopback", addr)
	}
	return nil
}

// Start listens on addr (a loopback address; port 0 picks one) and serves
// in the background until Close.
func (p *Proxy) Start(addr string) error {
	if err := checkListenAddr(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if err := p.track(ln); err != nil {
		ln.Close()
		return err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serve(ln)
	}()
	return nil
}

// ListenAndServe listens on addr (a loopback address) and serves until
// Close, when it returns net.ErrClosed.
func (p *Proxy) ListenAndServe(addr string) error {
	if err := checkListenAddr(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return p.Serve(ln)
}

// Serve accepts connections on ln until Close (or until ln fails), and
// returns net.ErrClosed after Close. The caller decides who may reach ln.
func (p *Proxy) Serve(ln net.Listener) error {
	if err := p.track(ln); err != nil {
		ln.Close()
		return err
	}
	p.wg.Add(1)
	defer p.wg.Done()
	return p.serve(ln)
}

func (p *Proxy) track(ln net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	p.listeners[ln] = struct{}{}
	if p.addr == "" {
		p.addr = ln.Addr().String()
	}
	return nil
}

func (p *Proxy) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		p.stats.accepted.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// Close stops listening, closes every connection and waits until every
// goroutine of the proxy has returned. Later calls return net.ErrClosed.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	p.closed = true
	for ln := range p.listeners {
		ln.Close()
	}
	for c := range p.conns {
		c.abort()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}
