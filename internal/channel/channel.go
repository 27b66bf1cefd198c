package channel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/torcrypto"
	"github.com/onionlite/onionlite/memquota"
	"github.com/onionlite/onionlite/transport"
)

// Config configures channels. The zero value is usable. A Config must not
// be modified after it is passed to Dial or Client.
type Config struct {
	// Dialer reaches ORPorts. Nil means transport.Direct{}.
	Dialer transport.Dialer
	// Clock is used for certificate validity and the NETINFO clock skew.
	// Nil means the real clock.
	Clock clock.Clock
	// Rand supplies circuit IDs and the TLS server name. Nil means
	// crypto/rand.
	Rand io.Reader
	// Pool supplies cell buffers. Nil means cell.DefaultPool().
	Pool *cell.Pool
	// Memory is the memory quota. Each channel opens a top-level account
	// in it ("chan N"), charges its outbound queue there, and offers the
	// account to its circuits (Account), which open theirs below it. When
	// the quota collapses a channel's account, the channel closes with
	// the *memquota.ReclaimedError. Nil means no accounting.
	Memory *memquota.Tracker
	// WriteBatch is the most cells drained into one TLS write. Zero
	// means 31 (15,934 bytes: one full TLS record).
	WriteBatch int
	// HighWater is the outbound queue length, in cells, at which
	// WaitWritable starts to block. Zero means 256.
	HighWater int
	// HandshakeTimeout bounds the TLS and link handshakes (not the TCP
	// or proxy dial, which the Dialer bounds) when the context passed to
	// Dial or Client has no earlier deadline. Zero means 60 s.
	HandshakeTimeout time.Duration
	// Padding chooses what the relay is asked about link padding
	// (padding-spec 2.5). The zero value leaves the relay to pad as the
	// consensus says. onionlite itself never sends link padding.
	Padding Padding
	// Logf logs debugging events; nil discards them. Addresses are never
	// logged.
	Logf func(format string, args ...any)
}

// Padding is a link padding policy.
type Padding uint8

const (
	// PaddingDefault sends no PADDING_NEGOTIATE: the relay pads an idle
	// link every 1.5-9.5 s (consensus nf_ito_low/high).
	PaddingDefault Padding = iota
	// PaddingOff asks the relay to stop padding (PADDING_NEGOTIATE STOP),
	// saving bytes and radio wake-ups on mobile links at some cost in
	// traffic-analysis resistance.
	PaddingOff
)

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.Dialer = transport.OrDirect(out.Dialer)
	out.Clock = clock.OrReal(out.Clock)
	out.Rand = torcrypto.Rand(out.Rand)
	out.Pool = out.Pool.OrDefault()
	if out.WriteBatch <= 0 {
		out.WriteBatch = 31
	}
	if out.HighWater <= 0 {
		out.HighWater = 256
	}
	if out.HandshakeTimeout <= 0 {
		out.HandshakeTimeout = 60 * time.Second
	}
	if out.Logf == nil {
		out.Logf = func(string, ...any) {}
	}
	return out
}

// Target names the relay to connect to.
type Target struct {
	// Addr is the ORPort as "host:port".
	Addr string
	// RSAID is the expected RSA identity digest (the fingerprint). It is
	// required.
	RSAID [20]byte
	// Ed25519ID is the expected Ed25519 identity. The zero value means
	// "not known": only the RSA identity is then enforced, though the
	// relay must still prove an Ed25519 identity.
	Ed25519ID [32]byte
}

// Handler receives the cells of one circuit.
type Handler interface {
	// HandleCell is called on the channel's reader goroutine with each
	// cell for the circuit (RELAY, RELAY_EARLY, DESTROY, CREATED2,
	// CREATED_FAST, CREATED), in order. The handler owns c and must give
	// it back to the channel's Pool. It must not block: a slow handler
	// stalls every circuit on the channel.
	HandleCell(c *cell.Cell)
	// ChannelClosed is called once, after the last HandleCell, when the
	// channel closes with cause err.
	ChannelClosed(err error)
}

// Stats counts a channel's traffic.
type Stats struct {
	// BytesRead and BytesWritten count bytes on the socket, TLS included.
	BytesRead, BytesWritten int64
	// CellsRead and CellsWritten count cells after the handshake.
	CellsRead, CellsWritten int64
	// Queued is the outbound queue length now.
	Queued int
	// Nudges counts the nudges sent (Nudge).
	Nudges int64
}

// Channel is an open link to a relay. Its methods are safe for concurrent
// use.
type Channel struct {
	cfg  Config
	raw  *countingConn
	conn *tls.Conn
	br   *bufio.Reader

	linkVersion int
	peer        torcrypto.RelayIdentity
	netinfo     cell.Netinfo
	skew        time.Duration
	skewKnown   bool

	ctx        context.Context
	cancel     context.CancelCauseFunc
	writerDone chan struct{}
	acct       *memquota.Account
	out        *memquota.Participation // the outbound queue's claims
	oldest     memquota.Oldest         // when outq's head was queued; read without mu
	wg         sync.WaitGroup
	closed     atomic.Bool

	cellsRead, cellsWritten atomic.Int64
	nudges                  atomic.Int64

	mu       sync.Mutex
	circuits map[uint32]Handler
	outq     []queued // FIFO: outq[head:]
	head     int
	wake     chan struct{} // cap 1: the writer has work
	space    chan struct{} // closed when the queue drops below HighWater
	err      error         // set once by fail
	// nudging is set while a nudge's circuit is open; lastNudge is when
	// the last one was sent (Nudge).
	nudging   bool
	lastNudge time.Time
}

type queued struct {
	c  *cell.Cell
	at time.Time
}

// queuedCost is what one outbound cell costs while it waits for the
// writer, and what the queue claims for it: the pooled buffer and its
// entry in the queue.
const queuedCost = cell.Len + int64(unsafe.Sizeof(queued{}))

// ErrClosed is wrapped by the error of operations on a closed channel.
// errors.Is(ErrClosed, net.ErrClosed) holds.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "channel closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// closedErr is the error for an operation on a channel that closed with
// cause.
func closedErr(cause error) error {
	if cause == ErrClosed {
		return ErrClosed
	}
	return fmt.Errorf("%w (%w)", ErrClosed, cause)
}

// Dial connects to t with cfg (nil means the zero Config) and completes the
// link handshake. ctx bounds the connection and the handshake.
func Dial(ctx context.Context, cfg *Config, t Target) (*Channel, error) {
	c := cfg.withDefaults()
	raw, err := c.Dialer.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("channel: dial: %w", err)
	}
	return client(ctx, &c, raw, t)
}

// Client runs the link handshake over conn, an established byte stream to
// t's ORPort, and takes ownership of conn.
func Client(ctx context.Context, cfg *Config, conn net.Conn, t Target) (*Channel, error) {
	c := cfg.withDefaults()
	return client(ctx, &c, conn, t)
}

func client(ctx context.Context, cfg *Config, raw net.Conn, t Target) (ch *Channel, err error) {
	cc := &countingConn{Conn: raw}
	ch = &Channel{
		cfg:      *cfg,
		raw:      cc,
		circuits: make(map[uint32]Handler),
		wake:     make(chan struct{}, 1),
		space:    make(chan struct{}),
	}
	defer func() {
		if err != nil {
			raw.Close()
		}
	}()
	// The handshake obeys ctx: a deadline or a cancellation interrupts
	// blocked reads and writes.
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	err = ch.handshake(ctx, t)
	if !stop() || ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("channel: handshake: %w", errors.Join(context.Cause(ctx), err))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket deadline is the context's; say so even if the
		// context's own timer has not fired yet.
		return nil, fmt.Errorf("channel: handshake: %w (%w)", context.DeadlineExceeded, err)
	}
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})

	// The context exists before the quota can call Reclaimed.
	ch.ctx, ch.cancel = context.WithCancelCause(context.Background())
	if ch.acct, err = cfg.Memory.NewAccount(fmt.Sprintf("chan %d", chanSeq.Add(1))); err == nil {
		if ch.out, err = ch.acct.Register(ch); err != nil {
			ch.acct.Close()
		}
	}
	if err != nil {
		ch.cancel(err)
		return nil, fmt.Errorf("channel: memory quota: %w", err)
	}
	ch.writerDone = make(chan struct{})
	ch.wg.Add(2)
	go ch.readLoop()
	go ch.writeLoop()
	return ch, nil
}

// chanSeq numbers channels for their memory account names.
var chanSeq atomic.Uint64

// Account returns the channel's memory account (nil without a quota).
// Circuits on the channel open their accounts below it. After the channel
// closes it takes no new children, and it goes away with the last one.
func (ch *Channel) Account() *memquota.Account { return ch.acct }

// LinkVersion is the negotiated link protocol version (4 or 5).
func (ch *Channel) LinkVersion() int { return ch.linkVersion }

// Peer returns the relay's proven identities.
func (ch *Channel) Peer() torcrypto.RelayIdentity { return ch.peer }

// Netinfo returns the relay's NETINFO cell.
func (ch *Channel) Netinfo() cell.Netinfo { return ch.netinfo }

// ClockSkew returns the relay's clock minus ours, measured when its
// NETINFO arrived (so it includes up to one network delay). ok is false
// when the relay sent no time.
func (ch *Channel) ClockSkew() (skew time.Duration, ok bool) { return ch.skew, ch.skewKnown }

// Pool returns the pool the channel's cells come from; handlers return
// cells to it.
func (ch *Channel) Pool() *cell.Pool { return ch.cfg.Pool }

// Context is done, with the channel's error as its cause, when the
// channel fails or is closed.
func (ch *Channel) Context() context.Context { return ch.ctx }

// Done is closed when the channel has failed or been closed.
func (ch *Channel) Done() <-chan struct{} { return ch.ctx.Done() }

// Err returns why the channel closed, or nil while it is open.
func (ch *Channel) Err() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// Stats returns the channel's counters.
func (ch *Channel) Stats() Stats {
	ch.mu.Lock()
	q := len(ch.outq) - ch.head
	ch.mu.Unlock()
	return Stats{
		BytesRead:    ch.raw.read.Load(),
		BytesWritten: ch.raw.written.Load(),
		CellsRead:    ch.cellsRead.Load(),
		CellsWritten: ch.cellsWritten.Load(),
		Queued:       q,
		Nudges:       ch.nudges.Load(),
	}
}

// Circuits returns how many circuits are registered.
func (ch *Channel) Circuits() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.circuits)
}

// AddCircuit registers h under a fresh random circuit ID with the high bit
// set and returns the ID.
func (ch *Channel) AddCircuit(h Handler) (uint32, error) {
	var b [4]byte
	for tries := 0; tries < 64; tries++ {
		if err := torcrypto.RandomBytes(ch.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("channel: circuit ID: %w", err)
		}
		id := binary.BigEndian.Uint32(b[:]) | 0x80000000
		ch.mu.Lock()
		if ch.err != nil {
			err := ch.err
			ch.mu.Unlock()
			return 0, closedErr(err)
		}
		if _, used := ch.circuits[id]; !used {
			ch.circuits[id] = h
			ch.mu.Unlock()
			return id, nil
		}
		ch.mu.Unlock()
	}
	return 0, errors.New("channel: no free circuit ID after 64 tries")
}

// RemoveCircuit unregisters circuit id; later cells for it are dropped.
func (ch *Channel) RemoveCircuit(id uint32) {
	ch.mu.Lock()
	delete(ch.circuits, id)
	ch.mu.Unlock()
}

// Send queues c for writing and takes ownership of it (it returns to the
// Pool after writing, or on failure). It never blocks, not even on the
// memory quota's hard limit: the queue is bounded by WaitWritable for
// data, and control cells must not wait.
func (ch *Channel) Send(c *cell.Cell) error {
	if err := ch.out.ClaimNoWait(queuedCost); err != nil {
		ch.cfg.Pool.Put(c)
		ch.fail(err)
		return closedErr(err)
	}
	now := ch.cfg.Clock.Now()
	ch.mu.Lock()
	if ch.err != nil {
		err := ch.err
		ch.mu.Unlock()
		ch.out.Release(queuedCost)
		ch.cfg.Pool.Put(c)
		return closedErr(err)
	}
	if ch.head == len(ch.outq) {
		ch.oldest.Set(now)
	}
	ch.outq = append(ch.outq, queued{c: c, at: now})
	ch.mu.Unlock()
	select {
	case ch.wake <- struct{}{}:
	default:
	}
	return nil
}

// WaitWritable blocks while the outbound queue holds HighWater cells or
// more. Data senders call it before encrypting and Send-ing, so a fast
// sender cannot queue without bound. It returns an error when ctx is done
// or the channel closes.
func (ch *Channel) WaitWritable(ctx context.Context) error {
	for {
		ch.mu.Lock()
		if ch.err != nil {
			err := ch.err
			ch.mu.Unlock()
			return closedErr(err)
		}
		if len(ch.outq)-ch.head < ch.cfg.HighWater {
			ch.mu.Unlock()
			return nil
		}
		space := ch.space
		ch.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch.ctx.Done():
		}
	}
}

// Close closes the channel and waits for its goroutines. Registered
// circuits see ChannelClosed with ErrClosed. A second Close returns an
// error wrapping net.ErrClosed.
func (ch *Channel) Close() error {
	if ch.closed.Swap(true) {
		return fmt.Errorf("channel: already closed: %w", net.ErrClosed)
	}
	ch.fail(ErrClosed)
	ch.wg.Wait()
	return nil
}

// fail records the first error, stops the goroutines and closes the
// socket. It does not block.
func (ch *Channel) fail(err error) {
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		return
	}
	ch.err = err
	ch.mu.Unlock()
	ch.cancel(err)
	// Close the socket, not the TLS connection: tls.Conn.Close would wait
	// for a writer stuck on a full socket to send close_notify.
	ch.raw.Conn.Close()
}

// Oldest implements memquota.Participant: when the oldest queued outbound
// cell was queued. It takes no lock.
func (ch *Channel) Oldest() (time.Time, bool) { return ch.oldest.Get() }

// Reclaimed implements memquota.Participant: the memory quota collapsed
// the channel's account, so the channel closes with err (its circuits and
// streams, whose accounts collapsed with it, fail with err too).
func (ch *Channel) Reclaimed(err error) { ch.fail(err) }

func (ch *Channel) writeLoop() {
	defer ch.wg.Done()
	defer close(ch.writerDone)
	batch := make([]byte, 0, ch.cfg.WriteBatch*cell.Len)
	for {
		select {
		case <-ch.wake:
		case <-ch.ctx.Done():
			return
		}
		for {
			batch = batch[:0]
			ch.mu.Lock()
			full := len(ch.outq)-ch.head >= ch.cfg.HighWater
			n := 0
			for ch.head < len(ch.outq) && n < ch.cfg.WriteBatch {
				q := ch.outq[ch.head]
				ch.outq[ch.head] = queued{}
				ch.head++
				batch = append(batch, q.c[:]...)
				ch.cfg.Pool.Put(q.c)
				n++
			}
			if ch.head == len(ch.outq) {
				ch.outq = ch.outq[:0]
				ch.head = 0
				ch.oldest.Clear()
			} else {
				if ch.head > 1024 && ch.head*2 > len(ch.outq) {
					m := copy(ch.outq, ch.outq[ch.head:])
					clear(ch.outq[m:])
					ch.outq = ch.outq[:m]
					ch.head = 0
				}
				ch.oldest.Set(ch.outq[ch.head].at)
			}
			if full && len(ch.outq)-ch.head < ch.cfg.HighWater {
				// WaitWritable only waits at or above HighWater, so the
				// crossing is the only moment to wake it.
				close(ch.space)
				ch.space = make(chan struct{})
			}
			ch.mu.Unlock()
			if n == 0 {
				break
			}
			ch.out.Release(int64(n) * queuedCost)
			if _, err := ch.conn.Write(batch); err != nil {
				ch.fail(fmt.Errorf("channel: write: %w", err))
				return
			}
			ch.cellsWritten.Add(int64(n))
		}
	}
}

func (ch *Channel) readLoop() {
	defer ch.wg.Done()
	err := ch.readCells()
	ch.fail(err)
	// Let the writer stop before draining the queue and telling the
	// circuits.
	<-ch.writerDone
	ch.mu.Lock()
	cause := ch.err
	circs := ch.circuits
	ch.circuits = make(map[uint32]Handler)
	rest := ch.outq[ch.head:]
	ch.outq, ch.head = nil, 0
	close(ch.space)
	ch.space = make(chan struct{})
	ch.mu.Unlock()
	for _, q := range rest {
		ch.cfg.Pool.Put(q.c)
	}
	ch.oldest.Clear()
	ch.out.Release(int64(len(rest)) * queuedCost)
	ch.out.Close()
	// Streams of its circuits may still hold unread data: the account
	// stays (reclaimable) until the last of them closes.
	ch.acct.Retire()
	for _, h := range circs {
		h.ChannelClosed(cause)
	}
}

// readCells parses cells until the link fails.
func (ch *Channel) readCells() error {
	pool := ch.cfg.Pool
	for {
		c, err := pool.Get(ch.ctx)
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(ch.br, c[:cell.HeaderLen]); err != nil {
			pool.Put(c)
			return fmt.Errorf("channel: read: %w", err)
		}
		cmd := c.Command()
		if cmd.IsVariable() {
			// Only padding and late handshake cells are variable-length
			// on an open channel; none of them matter to a client.
			pool.Put(c)
			var l [2]byte
			if _, err := io.ReadFull(ch.br, l[:]); err != nil {
				return fmt.Errorf("channel: read: %w", err)
			}
			if _, err := ch.br.Discard(int(binary.BigEndian.Uint16(l[:]))); err != nil {
				return fmt.Errorf("channel: read: %w", err)
			}
			continue
		}
		if _, err := io.ReadFull(ch.br, c[cell.HeaderLen:]); err != nil {
			pool.Put(c)
			return fmt.Errorf("channel: read: %w", err)
		}
		ch.cellsRead.Add(1)
		switch cmd {
		case cell.CmdRelay, cell.CmdRelayEarly, cell.CmdDestroy, cell.CmdCreated2,
			cell.CmdCreatedFast, cell.CmdCreated:
			id := c.CircID()
			ch.mu.Lock()
			h := ch.circuits[id]
			ch.mu.Unlock()
			if h == nil || id == 0 {
				pool.Put(c)
				continue
			}
			h.HandleCell(c)
		case cell.CmdPaddingNegotiate:
			// padding-spec 2.5: clients MUST reject padding negotiation
			// from relays and close the channel.
			pool.Put(c)
			return protoErr("relay sent PADDING_NEGOTIATE")
		default:
			// PADDING, late NETINFO, CREATE* (a client accepts no
			// circuits), unknown commands.
			pool.Put(c)
		}
	}
}

// countingConn counts bytes on the socket.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}
