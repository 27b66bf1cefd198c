package circuit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/relaycrypto"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/torcrypto"
	"github.com/onionlite/onionlite/memquota"
)

// fakeLink is a channel whose far end is the test.
type fakeLink struct {
	pool   *cell.Pool
	acct   *memquota.Account // nil: no memory accounting
	ctx    context.Context
	cancel context.CancelCauseFunc
	sent   chan *cell.Cell
	mu     sync.Mutex
	h      channel.Handler
	gone   bool
	nudges atomic.Int32
}

var _ Link = (*fakeLink)(nil)

// Nudge counts the circuit's nudges (channel.Channel.Nudge).
func (l *fakeLink) Nudge() { l.nudges.Add(1) }

func newFakeLink() *fakeLink {
	l := &fakeLink{pool: cell.NewPool(4096), sent: make(chan *cell.Cell, 4096)}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	return l
}

func (l *fakeLink) AddCircuit(h channel.Handler) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h = h
	return 0x80000123, nil
}

func (l *fakeLink) RemoveCircuit(uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gone = true
}

func (l *fakeLink) Send(c *cell.Cell) error            { l.sent <- c; return nil }
func (l *fakeLink) WaitWritable(context.Context) error { return nil }
func (l *fakeLink) Pool() *cell.Pool                   { return l.pool }
func (l *fakeLink) Context() context.Context           { return l.ctx }
func (l *fakeLink) Account() *memquota.Account         { return l.acct }
func (l *fakeLink) handler() channel.Handler           { l.mu.Lock(); defer l.mu.Unlock(); return l.h }
func (l *fakeLink) removed() bool                      { l.mu.Lock(); defer l.mu.Unlock(); return l.gone }

// fakeRelay is the relay side of a one-hop circuit, written from the spec:
// CREATE_FAST keys by KDF-TOR, then relay crypto as the responder.
type fakeRelay struct {
	t    testing.TB
	link *fakeLink
	hop  *relaycrypto.Hop
	id   uint32
}

func createFast(t testing.TB, cfg *Config) (*Circuit, *fakeRelay) {
	t.Helper()
	return createFastOn(t, newFakeLink(), cfg)
}

// createFastOn is createFast over a given link.
func createFastOn(t testing.TB, l *fakeLink, cfg *Config) (*Circuit, *fakeRelay) {
	t.Helper()
	type res struct {
		c   *Circuit
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := Create(context.Background(), l, Relay{Handshake: HandshakeFast}, cfg)
		done <- res{c, err}
	}()
	req := <-l.sent
	if req.Command() != cell.CmdCreateFast {
		t.Fatalf("got %v", req.Command())
	}
	x := append([]byte(nil), req.Payload()[:20]...)
	y := bytes.Repeat([]byte{0x59}, 20)
	k, _ := torcrypto.KDFTor(append(x, y...), torcrypto.RelayKeyMaterialLen)
	keys := &torcrypto.RelayKeys{}
	copy(keys.KH[:], k[:20])
	copy(keys.Df[:], k[20:40])
	copy(keys.Db[:], k[40:60])
	copy(keys.Kf[:], k[60:76])
	copy(keys.Kb[:], k[76:92])
	hop, _ := relaycrypto.NewResponderHop(keys)
	rep, _ := l.pool.Get(context.Background())
	rep.SetPayload(req.CircID(), cell.CmdCreatedFast, append(y, k[:20]...))
	id := req.CircID()
	l.pool.Put(req)
	l.handler().HandleCell(rep)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c, &fakeRelay{t: t, link: l, hop: hop, id: id}
}

// recv reads the next cell the client sent; relay cells are decrypted and
// must be recognized.
func (r *fakeRelay) recv() (*cell.Cell, cell.RelayHeader, []byte) {
	r.t.Helper()
	c := <-r.link.sent
	if c.Command() != cell.CmdRelay && c.Command() != cell.CmdRelayEarly {
		return c, cell.RelayHeader{}, nil
	}
	if _, ok := r.hop.Open(c); !ok {
		r.t.Fatal("relay did not recognize the client's cell")
	}
	h, body, err := c.RelayBody()
	if err != nil {
		r.t.Fatal(err)
	}
	return c, h, body
}

// send encrypts a relay message to the client and delivers it, returning
// the running digest after it.
func (r *fakeRelay) send(cmd cell.Command, rcmd cell.RelayCmd, streamID uint16, body []byte) relaycrypto.Digest {
	r.t.Helper()
	c, _ := r.link.pool.Get(context.Background())
	if err := c.SetRelayBody(r.id, cmd, rcmd, streamID, body); err != nil {
		r.t.Fatal(err)
	}
	d := r.hop.Seal(c)
	r.link.handler().HandleCell(c)
	return d
}

// openDir opens a BEGIN_DIR stream, answering CONNECTED.
func (r *fakeRelay) openDir(c *Circuit) *stream.Stream {
	r.t.Helper()
	type res struct {
		s   *stream.Stream
		err error
	}
	done := make(chan res, 1)
	go func() {
		s, err := c.BeginDir(context.Background())
		done <- res{s, err}
	}()
	b, h, _ := r.recv()
	r.link.pool.Put(b)
	if h.Cmd != cell.RelayBeginDir || h.StreamID == 0 {
		r.t.Fatalf("got %v on stream %d", h.Cmd, h.StreamID)
	}
	r.send(cell.CmdRelay, cell.RelayConnected, h.StreamID, nil)
	res1 := <-done
	if res1.err != nil {
		r.t.Fatal(res1.err)
	}
	return res1.s
}

// TestStalledNudgesLink: a stream whose data stopped while its reader
// waits makes the circuit nudge its link once, after StallAfter.
func TestStalledNudgesLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, r := createFast(t, nil)
		s := r.openDir(c)
		r.send(cell.CmdRelay, cell.RelayData, s.ID(), []byte("hello"))
		buf := make([]byte, 16)
		if n, err := s.Read(buf); n != 5 || err != nil {
			t.Fatalf("read %d %v", n, err)
		}
		done := make(chan error, 1)
		go func() { _, err := s.Read(buf); done <- err }()
		time.Sleep(stream.DefaultStallAfter - time.Second)
		synctest.Wait()
		if n := r.link.nudges.Load(); n != 0 {
			t.Fatalf("%d nudges before StallAfter", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := r.link.nudges.Load(); n != 1 {
			t.Fatalf("%d nudges after StallAfter, want 1", n)
		}
		// The relay's DESTROY, which the nudge was for, ends the read.
		d, _ := r.link.pool.Get(context.Background())
		d.SetPayload(r.id, cell.CmdDestroy, []byte{byte(cell.DestroyDestroyed)})
		r.link.handler().HandleCell(d)
		var de *DestroyedError
		if err := <-done; !errors.As(err, &de) {
			t.Fatalf("read after DESTROY: %v", err)
		}
		for len(r.link.sent) > 0 {
			r.link.pool.Put(<-r.link.sent)
		}
	})
}

// TestSendmeV1Emitted: after 100 DATA cells the client sends a SENDME v1
// echoing the relay's running digest after the 100th, and the payload
// reaches the stream intact.
func TestSendmeV1Emitted(t *testing.T) {
	c, r := createFast(t, nil)
	s := r.openDir(c)
	var digests []relaycrypto.Digest
	var want []byte
	for i := 0; i < 250; i++ {
		body := bytes.Repeat([]byte{byte(i)}, 400)
		want = append(want, body...)
		digests = append(digests, r.send(cell.CmdRelay, cell.RelayData, s.ID(), body))
	}
	for k := 1; k <= 2; k++ {
		b, h, body := r.recv()
		if h.Cmd != cell.RelaySendme || h.StreamID != 0 {
			t.Fatalf("got %v on stream %d", h.Cmd, h.StreamID)
		}
		m, err := cell.ParseSendme(body)
		if err != nil || m.Version != 1 || m.Digest != digests[100*k-1] {
			t.Fatalf("SENDME %d: %+v %v, want digest of cell %d", k, m, err, 100*k)
		}
		r.link.pool.Put(b)
	}
	select {
	case b := <-r.link.sent:
		t.Fatalf("unexpected %v", b.Command())
	default:
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("stream data: %v", err)
	}
}

// TestPackageWindowAndSendmeCheck: with a 200-cell window the client sends
// 200 DATA cells and stops; a SENDME v1 with the digest of the 100th opens
// 100 more; a SENDME with a wrong digest closes the circuit.
func TestPackageWindowAndSendmeCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, r := createFast(t, &Config{CircWindow: 200})
		s := r.openDir(c)
		go s.Write(make([]byte, 300*cell.RelayBodyMax))
		var after100 relaycrypto.Digest
		for i := 1; i <= 200; i++ {
			b := <-r.link.sent
			d, ok := r.hop.Open(b)
			if !ok {
				t.Fatal("not recognized")
			}
			if i == 100 {
				after100 = d
			}
			r.link.pool.Put(b)
		}
		r.send(cell.CmdRelay, cell.RelaySendme, 0, append([]byte{1, 0, 20}, after100[:]...))
		for i := 0; i < 100; i++ {
			b, h, _ := r.recv()
			if h.Cmd != cell.RelayData {
				t.Fatalf("after SENDME: %v", h.Cmd)
			}
			r.link.pool.Put(b)
		}
		synctest.Wait()
		select {
		case b := <-r.link.sent:
			t.Fatalf("sent %v past the reopened window", b.Command())
		default:
		}
		// The next SENDME must echo the digest after cell 200; a wrong
		// one is fatal.
		r.send(cell.CmdRelay, cell.RelaySendme, 0, append([]byte{1, 0, 20}, make([]byte, 20)...))
		<-c.Done()
		if !errors.Is(c.Err(), ErrProtocol) {
			t.Fatalf("circuit error %v", c.Err())
		}
		b := <-r.link.sent
		if b.Command() != cell.CmdDestroy || b.Payload()[0] != byte(cell.DestroyNone) {
			t.Fatalf("got %v reason %d, want DESTROY NONE", b.Command(), b.Payload()[0])
		}
		if !r.link.removed() {
			t.Fatal("circuit still registered")
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, ErrProtocol) {
			t.Fatalf("stream write after the circuit died: %v", err)
		}
	})
}

func TestInboundViolationsClose(t *testing.T) {
	cases := map[string]func(r *fakeRelay){
		"RELAY_EARLY inbound": func(r *fakeRelay) { r.send(cell.CmdRelayEarly, cell.RelayDrop, 0, nil) },
		"unrecognized cell": func(r *fakeRelay) {
			c, _ := r.link.pool.Get(context.Background())
			c.SetRelayBody(r.id, cell.CmdRelay, cell.RelayDrop, 0, nil)
			c[20] ^= 0xff // garbage where the digest would be
			r.link.handler().HandleCell(c)
		},
		"SENDME without data": func(r *fakeRelay) { r.send(cell.CmdRelay, cell.RelaySendme, 0, nil) },
		"DATA on stream 0":    func(r *fakeRelay) { r.send(cell.CmdRelay, cell.RelayData, 0, []byte("x")) },
		"unexpected EXTENDED2": func(r *fakeRelay) {
			r.send(cell.CmdRelay, cell.RelayExtended2, 0, []byte{0, 0})
		},
		"unexpected CREATED2": func(r *fakeRelay) {
			c, _ := r.link.pool.Get(context.Background())
			c.SetPayload(r.id, cell.CmdCreated2, []byte{0, 0})
			r.link.handler().HandleCell(c)
		},
	}
	for name, inject := range cases {
		t.Run(name, func(t *testing.T) {
			c, r := createFast(t, nil)
			inject(r)
			<-c.Done()
			if !errors.Is(c.Err(), ErrProtocol) {
				t.Fatalf("circuit error %v", c.Err())
			}
			if b := <-r.link.sent; b.Command() != cell.CmdDestroy {
				t.Fatalf("sent %v, want DESTROY", b.Command())
			}
		})
	}
}

func TestDestroyAndTruncatedFromRelay(t *testing.T) {
	c, r := createFast(t, nil)
	s := r.openDir(c)
	d, _ := r.link.pool.Get(context.Background())
	d.SetPayload(r.id, cell.CmdDestroy, []byte{byte(cell.DestroyHibernating)})
	r.link.handler().HandleCell(d)
	<-c.Done()
	var de *DestroyedError
	if !errors.As(c.Err(), &de) || de.Reason != cell.DestroyHibernating || de.Truncated {
		t.Fatalf("%v", c.Err())
	}
	select {
	case b := <-r.link.sent:
		t.Fatalf("answered DESTROY with %v", b.Command())
	default:
	}
	if _, err := s.Read(make([]byte, 1)); !errors.As(err, &de) {
		t.Fatalf("stream read: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close after DESTROY: %v", err)
	}

	c2, r2 := createFast(t, nil)
	r2.send(cell.CmdRelay, cell.RelayTruncated, 0, []byte{byte(cell.DestroyConnectFailed)})
	<-c2.Done()
	if !errors.As(c2.Err(), &de) || !de.Truncated || de.Reason != cell.DestroyConnectFailed {
		t.Fatalf("%v", c2.Err())
	}
	if b := <-r2.link.sent; b.Command() != cell.CmdDestroy {
		t.Fatal("TRUNCATED not followed by DESTROY")
	}
}

func TestChannelClosed(t *testing.T) {
	c, r := createFast(t, nil)
	s := r.openDir(c)
	cause := errors.New("link gone")
	r.link.cancel(cause)
	r.link.handler().ChannelClosed(cause)
	<-c.Done()
	var cc *ChannelClosedError
	if !errors.As(c.Err(), &cc) || !errors.Is(c.Err(), cause) {
		t.Fatal(c.Err())
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, cause) {
		t.Fatalf("write: %v", err)
	}
	if _, err := c.BeginDir(context.Background()); !errors.Is(err, cause) {
		t.Fatalf("BeginDir on a dead circuit: %v", err)
	}
}

func TestStreamEndAndUnknownStream(t *testing.T) {
	c, r := createFast(t, nil)
	s := r.openDir(c)
	r.send(cell.CmdRelay, cell.RelayData, s.ID(), []byte("bye"))
	r.send(cell.CmdRelay, cell.RelayEnd, s.ID(), []byte{byte(cell.EndDone)})
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "bye" {
		t.Fatalf("%q %v", got, err)
	}
	// Cells for a stream the circuit forgot are dropped; the circuit lives.
	r.send(cell.CmdRelay, cell.RelayData, s.ID(), []byte("late"))
	r.send(cell.CmdRelay, cell.RelayData, 4242, []byte("never was"))
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	// Closing the stream now sends nothing: the exit ended it.
	s.Close()
	select {
	case b := <-r.link.sent:
		t.Fatalf("sent %v for an ended stream", b.Command())
	default:
	}
	// A locally closed stream sends END (MISC).
	s2 := r.openDir(c)
	s2.Close()
	b, h, body := r.recv()
	if h.Cmd != cell.RelayEnd || h.StreamID != s2.ID() || !bytes.Equal(body, []byte{byte(cell.EndMisc)}) {
		t.Fatalf("%v %d %x", h.Cmd, h.StreamID, body)
	}
	r.link.pool.Put(b)
	if s2.ID() == s.ID() {
		t.Fatal("stream ID reused while the old one was in use")
	}
}

func TestResolveExchange(t *testing.T) {
	c, r := createFast(t, nil)
	type res struct {
		a   []cell.Answer
		err error
	}
	done := make(chan res, 1)
	go func() {
		a, err := c.Resolve(context.Background(), "example.org")
		done <- res{a, err}
	}()
	b, h, body := r.recv()
	if h.Cmd != cell.RelayResolve || string(body) != "example.org\x00" {
		t.Fatalf("%v %q", h.Cmd, body)
	}
	r.link.pool.Put(b)
	ans, _ := (&cell.Resolved{Answers: []cell.Answer{{Type: cell.AnswerIPv4, Addr: mustAddr("93.184.216.34"), TTL: 300}}}).Append(nil)
	r.send(cell.CmdRelay, cell.RelayResolved, h.StreamID, ans)
	got := <-done
	if got.err != nil || len(got.a) != 1 || got.a[0].Addr.String() != "93.184.216.34" {
		t.Fatalf("%+v", got)
	}
}

func TestChooseHandshake(t *testing.T) {
	var id, key [32]byte
	id[0], key[0] = 1, 2
	cases := []struct {
		r     Relay
		first bool
		want  Handshake
		ok    bool
	}{
		{Relay{Ed25519ID: id, NtorKey: key, NtorV3: true}, false, HandshakeNtorV3, true},
		{Relay{Ed25519ID: id, NtorKey: key}, false, HandshakeNtor, true},
		{Relay{NtorKey: key, NtorV3: true}, false, HandshakeNtor, true},
		{Relay{}, true, HandshakeFast, true},
		{Relay{}, false, 0, false},
		{Relay{Handshake: HandshakeFast}, false, 0, false},
		{Relay{Handshake: HandshakeNtorV3, NtorKey: key}, true, 0, false},
		{Relay{Handshake: HandshakeNtor}, true, 0, false},
	}
	for i, tc := range cases {
		got, err := chooseHandshake(tc.r, tc.first)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("case %d: %v %v", i, got, err)
		}
	}
}

// TestFixedWindowRecording mirrors tor's test_v1_record_digest: the digest
// is recorded for the cell sent while the window is one above a multiple
// of the increment.
func TestFixedWindowRecording(t *testing.T) {
	f := newFixedWindow(1000, 0)
	for i := 1; i <= 300; i++ {
		f.sent(relaycrypto.Digest{byte(i), byte(i >> 8)}, time.Time{})
	}
	if len(f.expected) != 3 {
		t.Fatalf("%d digests recorded for 300 cells", len(f.expected))
	}
	for k, d := range f.expected {
		n := 100 * (k + 1)
		if d != (relaycrypto.Digest{byte(n), byte(n >> 8)}) {
			t.Fatalf("digest %d is of the wrong cell: %x", k, d[:2])
		}
	}
	// v0 SENDMEs pop a digest without checking it; a v0 below the
	// accepted minimum is refused.
	if err := f.sendmeReceived(&cell.Sendme{}, time.Time{}); err != nil || len(f.expected) != 2 || f.packageWindow != 800 {
		t.Fatal(err, len(f.expected), f.packageWindow)
	}
	strict := newFixedWindow(1000, 1)
	strict.sent(relaycrypto.Digest{}, time.Time{})
	if err := strict.sendmeReceived(&cell.Sendme{}, time.Time{}); !errors.Is(err, ErrProtocol) {
		t.Fatal("v0 accepted under sendme_accept_min_version=1")
	}
	if err := f.sendmeReceived(&cell.Sendme{Version: 2}, time.Time{}); !errors.Is(err, ErrProtocol) {
		t.Fatal("unknown SENDME version accepted")
	}

	// Delivery: a SENDME is due at 900, echoing the 100th cell's digest.
	d := newFixedWindow(1000, 0)
	for i := 1; i <= 100; i++ {
		due, echo, err := d.delivered(relaycrypto.Digest{byte(i)})
		if err != nil || due != (i == 100) {
			t.Fatalf("cell %d: due %v %v", i, due, err)
		}
		if due && echo[0] != 100 {
			t.Fatalf("echo of cell %d", echo[0])
		}
	}
	if d.recv.window != 1000 {
		t.Fatalf("deliver window %d after the SENDME", d.recv.window)
	}
	d.recv.window = 0
	if _, _, err := d.delivered(relaycrypto.Digest{}); !errors.Is(err, ErrProtocol) {
		t.Fatal("overrun accepted")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// BenchmarkReceiveData is the inbound path of one full DATA cell on a
// one-hop circuit: decrypt in place, windows, the stream queue, Read. The
// circuit SENDMEs it sends are drained.
func BenchmarkReceiveData(b *testing.B) {
	c, r := createFast(b, nil)
	s := r.openDir(c)
	body := make([]byte, cell.RelayBodyMax)
	buf := make([]byte, cell.RelayBodyMax)
	b.SetBytes(cell.RelayBodyMax)
	b.ReportAllocs()
	for b.Loop() {
		r.send(cell.CmdRelay, cell.RelayData, s.ID(), body)
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		for len(r.link.sent) > 0 {
			x := <-r.link.sent
			if _, ok := r.hop.Open(x); !ok {
				b.Fatal("SENDME not recognized")
			}
			r.link.pool.Put(x)
		}
	}
}

// BenchmarkSendData is the outbound path of one full DATA cell: the
// stream's window, encryption in place, the circuit window, the link
// queue. The fake relay answers with circuit SENDMEs (v1 digests) and
// stream SENDMEs as tor would.
func BenchmarkSendData(b *testing.B) {
	c, r := createFast(b, nil)
	s := r.openDir(c)
	payload := make([]byte, cell.RelayBodyMax)
	circSendme := make([]byte, 3+20)
	circSendme[0], circSendme[2] = 1, 20
	n := 0
	b.SetBytes(cell.RelayBodyMax)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(payload); err != nil {
			b.Fatal(err)
		}
		x := <-r.link.sent
		d, ok := r.hop.Open(x)
		if !ok {
			b.Fatal("not recognized")
		}
		r.link.pool.Put(x)
		n++
		if n%CircWindowIncrement == 0 {
			copy(circSendme[3:], d[:])
			r.send(cell.CmdRelay, cell.RelaySendme, 0, circSendme)
		}
		if n%stream.WindowIncrement == 0 {
			r.send(cell.CmdRelay, cell.RelaySendme, s.ID(), nil)
		}
	}
}
