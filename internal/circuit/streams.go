package circuit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/memquota"
)

var (
	_ stream.FlowSink  = (*Circuit)(nil)
	_ stream.StallSink = (*Circuit)(nil)
)

// nudger is a Link that can make its relay write to it (channel.Nudge).
type nudger interface{ Nudge() }

// Stalled implements stream.StallSink: a stream's data stopped while its
// reader waits. The circuit may be dead at the relays with the DESTROY
// held back by the first hop (see internal/channel's Nudge), so the link
// is nudged; a live circuit is not disturbed.
func (c *Circuit) Stalled() {
	if n, ok := c.link.(nudger); ok && !c.closed.Load() {
		n.Nudge()
	}
}

// Pool implements stream.Sink.
func (c *Circuit) Pool() *cell.Pool { return c.pool }

func (c *Circuit) streamHop(id uint16) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	e, ok := c.streams[id]
	if !ok {
		return 0, stream.ErrClosed
	}
	return e.(*streamEntry).hop, nil
}

// SendData implements stream.Sink: one DATA cell, respecting the circuit
// window and the link's backpressure.
func (c *Circuit) SendData(ctx context.Context, id uint16, p []byte) error {
	h, err := c.streamHop(id)
	if err != nil {
		return err
	}
	return c.send(ctx, h, id, nil, cell.RelayData, p, sendOpts{data: true, wait: true})
}

// SendSendme implements stream.Sink.
func (c *Circuit) SendSendme(ctx context.Context, id uint16) error {
	h, err := c.streamHop(id)
	if err != nil {
		return err
	}
	return c.send(ctx, h, id, nil, cell.RelaySendme, nil, sendOpts{})
}

// SendFlowControl implements stream.FlowSink: an XON or XOFF, which does
// not count against any window.
func (c *Circuit) SendFlowControl(ctx context.Context, id uint16, m cell.RelayMsg) error {
	h, err := c.streamHop(id)
	if err != nil {
		return err
	}
	return c.sendMsg(ctx, h, id, m, sendOpts{})
}

// SendEnd implements stream.Sink. It does not block: when no cell buffer
// is free the END is skipped (the stream is forgotten either way).
func (c *Circuit) SendEnd(id uint16, reason cell.EndReason) {
	c.mu.Lock()
	e, ok := c.streams[id]
	if ok {
		delete(c.streams, id)
	}
	c.mu.Unlock()
	if !ok || c.closed.Load() {
		return
	}
	b := c.pool.TryGet()
	if b == nil {
		return
	}
	c.send(c.ctx, e.(*streamEntry).hop, id, nil, cell.RelayEnd, []byte{byte(reason)}, sendOpts{buf: b})
}

// reserved holds a stream ID while its entry is being made.
type reserved struct{}

func (reserved) HandleRelay(*cell.Cell, cell.RelayCmd, []byte) (bool, bool, error) {
	return false, false, nil
}
func (reserved) CircuitClosed(error) {}

// addStream registers the entry mk makes under a fresh stream ID on the
// last hop; mk learns the ID and whether that hop runs congestion
// control. mk runs without the circuit's lock (a memory quota may call
// back into the stream while it registers).
func (c *Circuit) addStream(mk func(id uint16, cc bool) (entry, error)) (uint16, int, error) {
	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return 0, 0, c.err
	}
	if len(c.hops) == 0 {
		c.mu.Unlock()
		return 0, 0, errors.New("circuit: no hops")
	}
	var id uint16
	for tries := 0; ; tries++ {
		if tries == 1<<16 {
			c.mu.Unlock()
			return 0, 0, errors.New("circuit: no free stream ID")
		}
		c.nextStream++
		if _, used := c.streams[c.nextStream]; c.nextStream != 0 && !used {
			id = c.nextStream
			break
		}
	}
	hop := len(c.hops) - 1
	cc := c.hops[hop].cc != nil
	slot := &streamEntry{entry: reserved{}, hop: hop}
	c.streams[id] = slot
	c.mu.Unlock()

	e, err := mk(id, cc)
	c.mu.Lock()
	dead := err == nil && c.err != nil
	if dead {
		err = c.err
	}
	if c.streams[id] == entry(slot) {
		if err != nil {
			delete(c.streams, id)
		} else {
			c.streams[id] = &streamEntry{entry: e, hop: hop}
		}
	}
	c.mu.Unlock()
	if dead {
		// The circuit died while the entry was made.
		e.CircuitClosed(err)
	}
	if err != nil {
		return 0, 0, err
	}
	return id, hop, nil
}

// BeginOptions modify how Begin and BeginDir open a stream. The zero value
// waits for CONNECTED.
type BeginOptions struct {
	// Optimistic returns the stream as soon as BEGIN (or BEGIN_DIR) is
	// sent, so the caller can Write its request at once (optimistic data,
	// tor-spec 6.2; consensus parameter UseOptimisticData, on by
	// default). It saves the round trip to CONNECTED: exits accept data
	// for a stream they are still connecting, and a relay opens a
	// BEGIN_DIR stream before it reads the next cell. Read waits for
	// CONNECTED; if the exit answers END instead, Read (and later Writes)
	// return the *stream.EndError, and what was written is lost.
	Optimistic bool
}

// streamHost is where streams live: a circuit, or a conflux set whose
// streams any of its legs may carry.
type streamHost interface {
	addStream(mk func(id uint16, cc bool) (entry, error)) (uint16, int, error)
	// streamAccount is the parent of each stream's memory account.
	streamAccount() *memquota.Account
	streamConfig() *Config
	sink() stream.FlowSink
	// sendOpen sends a stream's first message (BEGIN, RESOLVE, ...).
	sendOpen(ctx context.Context, hop int, id uint16, msg cell.RelayMsg) error
	forget(id uint16, e entry)
}

func (c *Circuit) streamAccount() *memquota.Account { return c.acct }
func (c *Circuit) streamConfig() *Config            { return &c.cfg }
func (c *Circuit) sink() stream.FlowSink            { return c }
func (c *Circuit) sendOpen(ctx context.Context, hop int, id uint16, msg cell.RelayMsg) error {
	return c.sendMsg(ctx, hop, id, msg, sendOpts{wait: true})
}

// openStream sends msg on a new stream of h and, unless optimistic, waits
// for CONNECTED. A stream on a hop that runs congestion control uses
// XON/XOFF flow control instead of stream windows.
func openStream(h streamHost, ctx context.Context, msg cell.RelayMsg, target string, o BeginOptions) (*stream.Stream, error) {
	var s *stream.Stream
	id, hop, err := h.addStream(func(id uint16, cc bool) (entry, error) {
		parent := h.streamAccount()
		acct, err := parent.NewChild(fmt.Sprintf("%s stream %d", parent.Name(), id))
		if err != nil {
			return nil, fmt.Errorf("circuit: memory quota: %w", err)
		}
		ccfg := h.streamConfig()
		cfg := &stream.Config{Clock: ccfg.Clock, Account: acct, Target: target, Optimistic: o.Optimistic}
		if cc {
			p := ccfg.CongestionControl
			cfg.FlowControl = &stream.FlowControl{XoffCells: p.XoffClient, XonRateCells: p.XonRate,
				XonChangePct: p.XonChangePct, XonEWMACount: p.XonEwmaCnt}
		}
		s, err = stream.New(h.sink(), id, cfg)
		return s, err
	})
	if err != nil {
		if s != nil {
			s.Close() // made, but the circuit died meanwhile
		}
		return nil, err
	}
	if err := h.sendOpen(ctx, hop, id, msg); err != nil {
		s.Close()
		return nil, err
	}
	if o.Optimistic {
		return s, nil
	}
	if err := s.WaitOpen(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// BeginDir opens a directory stream to the last hop (tor-spec 6.2.1). The
// stream is a net.Conn speaking HTTP/1.0 to the relay's directory service.
func (c *Circuit) BeginDir(ctx context.Context) (*stream.Stream, error) {
	return c.BeginDirWith(ctx, BeginOptions{})
}

// BeginDirWith is BeginDir with options.
func (c *Circuit) BeginDirWith(ctx context.Context, o BeginOptions) (*stream.Stream, error) {
	return openStream(c, ctx, &cell.BeginDir{}, "dir", o)
}

// Begin opens a stream from the exit (the last hop) to host:port. host is
// sent as given, never resolved locally; IPv6 literals go without
// brackets.
func (c *Circuit) Begin(ctx context.Context, host string, port uint16, flags uint32) (*stream.Stream, error) {
	return c.BeginWith(ctx, host, port, flags, BeginOptions{})
}

// BeginWith is Begin with options.
func (c *Circuit) BeginWith(ctx context.Context, host string, port uint16, flags uint32, o BeginOptions) (*stream.Stream, error) {
	return openStream(c, ctx, &cell.Begin{Host: host, Port: port, Flags: flags},
		net.JoinHostPort(host, strconv.Itoa(int(port))), o)
}

// resolver is a RESOLVE in flight: an entry waiting for RESOLVED or END.
type resolver struct {
	reply chan resolveReply
}

type resolveReply struct {
	answers []cell.Answer
	err     error
}

func (r *resolver) HandleRelay(_ *cell.Cell, cmd cell.RelayCmd, body []byte) (owned, done bool, err error) {
	switch cmd {
	case cell.RelayResolved:
		m, err := cell.ParseResolved(body)
		if err != nil {
			r.reply <- resolveReply{err: protoErr("RESOLVED: %v", err)}
			return false, true, protoErr("RESOLVED: %v", err)
		}
		// Copy the answers out of the cell, which goes back to the pool.
		for i := range m.Answers {
			m.Answers[i].Value = append([]byte(nil), m.Answers[i].Value...)
		}
		r.reply <- resolveReply{answers: m.Answers}
		return false, true, nil
	case cell.RelayEnd:
		m, _ := cell.ParseEnd(body)
		r.reply <- resolveReply{err: &stream.EndError{Reason: m.Reason}}
		return false, true, nil
	}
	return false, false, protoErr("%v in reply to RESOLVE", cmd)
}

func (r *resolver) CircuitClosed(err error) {
	select {
	case r.reply <- resolveReply{err: err}:
	default:
	}
}

// Resolve asks the exit to resolve host (tor-spec 6.4). Answers of error
// type are returned as they are; the caller interprets them.
func (c *Circuit) Resolve(ctx context.Context, host string) ([]cell.Answer, error) {
	return resolve(c, ctx, host)
}

func resolve(h streamHost, ctx context.Context, host string) ([]cell.Answer, error) {
	r := &resolver{reply: make(chan resolveReply, 1)}
	id, hop, err := h.addStream(func(uint16, bool) (entry, error) { return r, nil })
	if err != nil {
		return nil, err
	}
	if err := h.sendOpen(ctx, hop, id, &cell.Resolve{Query: host}); err != nil {
		h.forget(id, r)
		return nil, err
	}
	select {
	case rep := <-r.reply:
		return rep.answers, rep.err
	case <-ctx.Done():
		h.forget(id, r)
		return nil, fmt.Errorf("circuit: resolving: %w", context.Cause(ctx))
	}
}

// forget drops stream id if it still belongs to e.
func (c *Circuit) forget(id uint16, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if se, ok := c.streams[id]; ok && se.(*streamEntry).entry == e {
		delete(c.streams, id)
	}
}
