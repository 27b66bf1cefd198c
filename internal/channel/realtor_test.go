package channel_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

func target(t testing.TB, nd testnet.Node) channel.Target {
	t.Helper()
	fp, err := hex.DecodeString(nd.Fingerprint)
	if err != nil || len(fp) != 20 {
		t.Fatalf("node %s fingerprint %q", nd.Nick, nd.Fingerprint)
	}
	return channel.Target{Addr: fmt.Sprintf("127.0.0.1:%d", nd.ORPort), RSAID: [20]byte(fp), Ed25519ID: nd.Ed25519ID}
}

func dial(t testing.TB, cfg *channel.Config, tg channel.Target) (*channel.Channel, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return channel.Dial(ctx, cfg, tg)
}

// TestRealRelayHandshake opens a channel to an authority, a middle relay
// and an exit of the test network, checking the proven identities, the
// link version, the clock skew and the counters.
func TestRealRelayHandshake(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	picked := map[testnet.Role]bool{}
	for _, nd := range n.Nodes() {
		if picked[nd.Role] {
			continue
		}
		picked[nd.Role] = true
		t.Run(nd.Nick, func(t *testing.T) {
			tg := target(t, nd)
			// A clock an hour fast sees the relay an hour behind.
			cfg := &channel.Config{Clock: clock.Offset{D: time.Hour}}
			ch, err := dial(t, cfg, tg)
			if err != nil {
				t.Fatal(err)
			}
			if ch.LinkVersion() != 5 {
				t.Errorf("link version %d, want 5 (tor 0.4.9 speaks 3-5)", ch.LinkVersion())
			}
			if got := ch.Peer(); got.RSA != tg.RSAID || got.Ed25519 != tg.Ed25519ID {
				t.Errorf("peer %x/%x", got.RSA, got.Ed25519)
			}
			skew, ok := ch.ClockSkew()
			if !ok || skew > -59*time.Minute || skew < -61*time.Minute {
				t.Errorf("clock skew %v (known %v), want about -1h", skew, ok)
			}
			if ni := ch.Netinfo(); len(ni.MyAddrs) == 0 || ni.MyAddrs[0].String() != "127.0.0.1" {
				t.Errorf("relay's NETINFO addresses %v", ni.MyAddrs)
			}
			st := ch.Stats()
			if st.BytesRead < 1000 || st.BytesWritten < 100 {
				t.Errorf("socket counters %+v", st)
			}
			if err := ch.Close(); err != nil {
				t.Fatal(err)
			}
			if err := ch.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close: %v", err)
			}
			<-ch.Done()
			if !errors.Is(ch.Err(), channel.ErrClosed) {
				t.Errorf("Err after Close: %v", ch.Err())
			}
		})
	}
}

// TestRealRelayWrongIdentity expects one relay's identity from another
// relay, which must be refused.
func TestRealRelayWrongIdentity(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	nodes := n.Nodes()
	a, b := target(t, nodes[0]), target(t, nodes[1])

	wrongRSA := a
	wrongRSA.RSAID, wrongRSA.Ed25519ID = b.RSAID, b.Ed25519ID
	_, err := dial(t, nil, wrongRSA)
	var ie *channel.IdentityError
	if !errors.Is(err, channel.ErrIdentity) || !errors.As(err, &ie) || ie.Got.RSA != a.RSAID {
		t.Fatalf("other relay's identity: %v", err)
	}

	wrongEd := a
	wrongEd.Ed25519ID = b.Ed25519ID
	if _, err := dial(t, nil, wrongEd); !errors.Is(err, channel.ErrIdentity) {
		t.Fatalf("right RSA, wrong Ed25519: %v", err)
	}

	// Without an expected Ed25519 identity the RSA one still binds.
	rsaOnly := a
	rsaOnly.Ed25519ID = [32]byte{}
	ch, err := dial(t, nil, rsaOnly)
	if err != nil {
		t.Fatalf("RSA-only target: %v", err)
	}
	if ch.Peer().Ed25519 != a.Ed25519ID {
		t.Errorf("proven Ed25519 %x", ch.Peer().Ed25519)
	}
	ch.Close()

	// A clock far in the future sees expired certificates.
	_, err = dial(t, &channel.Config{Clock: clock.Offset{D: 5 * 365 * 24 * time.Hour}}, a)
	if !errors.Is(err, torcrypto.ErrCertificate) {
		t.Fatalf("certificates checked at a far-future time: %v", err)
	}
}

// TestRealRelayClockSkew: with our clock three days fast, the relay's
// link certificate (tor makes them for two days) has expired by our
// clock. The handshake fails, but reads on to the relay's NETINFO and
// says our clock is the likely cause: a ClockSkewError with the relay's
// clock about three days behind, wrapping the certificate error. Five
// years fast, every certificate has expired and the same holds.
func TestRealRelayClockSkew(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	a := target(t, n.Nodes()[0])
	for _, off := range []time.Duration{72 * time.Hour, 5 * 365 * 24 * time.Hour} {
		_, err := dial(t, &channel.Config{Clock: clock.Offset{D: off}}, a)
		var cs *channel.ClockSkewError
		if !errors.As(err, &cs) || !errors.Is(err, torcrypto.ErrCertTime) || !errors.Is(err, torcrypto.ErrCertificate) {
			t.Fatalf("clock %v fast: %v, want a ClockSkewError wrapping a certificate time error", off, err)
		}
		if d := cs.Skew + off; d < -time.Minute || d > time.Minute {
			t.Errorf("clock %v fast: skew %v", off, cs.Skew)
		}
	}
}

// TestRealRelayCreateFastDestroy registers a circuit by hand, sends
// CREATE_FAST and expects CREATED_FAST; then a DESTROY.
func TestRealRelayCreateFastDestroy(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, err := dial(t, nil, target(t, n.Nodes()[3]))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	h := &recorder{cells: make(chan *cell.Cell, 4), closed: make(chan error, 1), pool: ch.Pool()}
	id, err := ch.AddCircuit(h)
	if err != nil {
		t.Fatal(err)
	}
	if id&0x80000000 == 0 {
		t.Fatalf("circuit ID %x lacks the initiator's high bit", id)
	}
	fc, err := torcrypto.NewFastClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ch.Pool().Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.SetPayload(id, cell.CmdCreateFast, fc.Handshake())
	if err := ch.Send(c); err != nil {
		t.Fatal(err)
	}
	reply := h.next(t)
	if reply.CircID() != id || reply.Command() != cell.CmdCreatedFast {
		t.Fatalf("got %v on %x", reply.Command(), reply.CircID())
	}
	if _, err := fc.Complete(reply.Payload()[:cell.CreatedFastLen]); err != nil {
		t.Fatalf("CREATED_FAST from real tor: %v", err)
	}
	ch.Pool().Put(reply)

	// CREATE_FAST again on the same ID is a protocol error: tor drops it
	// or destroys the circuit. A second circuit, then a DESTROY from us,
	// leaves the channel usable.
	d, _ := ch.Pool().Get(context.Background())
	d.SetPayload(id, cell.CmdDestroy, []byte{byte(cell.DestroyNone)})
	if err := ch.Send(d); err != nil {
		t.Fatal(err)
	}
	ch.RemoveCircuit(id)
	if ch.Circuits() != 0 {
		t.Fatal("circuit still registered")
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.closed:
		t.Fatalf("removed circuit told of close: %v", err)
	default:
	}
}

// TestRealRelayNudge: a real relay answers a nudge's CREATE_FAST, the
// throwaway circuit is destroyed and unregistered, the channel stays open,
// and a second nudge right after is not sent.
func TestRealRelayNudge(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, err := dial(t, nil, target(t, n.Nodes()[4]))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	before := ch.Stats()
	ch.Nudge()
	if got := ch.Stats().Nudges; got != 1 {
		t.Fatalf("%d nudges sent, want 1", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := ch.Stats()
		if ch.Circuits() == 0 && st.CellsRead > before.CellsRead && st.CellsWritten >= before.CellsWritten+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nudge not finished: %d circuits, stats %+v (before %+v)", ch.Circuits(), st, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ch.Nudge()
	if got := ch.Stats().Nudges; got != 1 {
		t.Fatalf("a second nudge within the gap was sent (%d)", got)
	}
	time.Sleep(200 * time.Millisecond)
	if err := ch.Err(); err != nil {
		t.Fatalf("channel closed after a nudge: %v", err)
	}
}

// TestRealRelayCloseNotifiesCircuits checks that circuits registered at
// Close learn about it.
func TestRealRelayCloseNotifiesCircuits(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, err := dial(t, nil, target(t, n.Nodes()[4]))
	if err != nil {
		t.Fatal(err)
	}
	h := &recorder{cells: make(chan *cell.Cell, 1), closed: make(chan error, 1), pool: ch.Pool()}
	if _, err := ch.AddCircuit(h); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if err := <-h.closed; !errors.Is(err, channel.ErrClosed) {
		t.Fatalf("ChannelClosed(%v)", err)
	}
	if _, err := ch.AddCircuit(h); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("AddCircuit after Close: %v", err)
	}
	c, _ := ch.Pool().Get(context.Background())
	if err := ch.Send(c); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	// Tests in this package run one at a time and close what they open,
	// so every buffer of the shared pool is back.
	if st := ch.Pool().Stats(); st.InUse != 0 {
		t.Errorf("pool buffers still out: %+v", st)
	}
}

type recorder struct {
	cells  chan *cell.Cell
	closed chan error
	pool   *cell.Pool
}

func (r *recorder) HandleCell(c *cell.Cell) {
	select {
	case r.cells <- c:
	default:
		r.pool.Put(c)
	}
}

func (r *recorder) ChannelClosed(err error) { r.closed <- err }

func (r *recorder) next(t *testing.T) *cell.Cell {
	t.Helper()
	select {
	case c := <-r.cells:
		return c
	case err := <-r.closed:
		t.Fatalf("channel closed: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no cell from the relay")
	}
	return nil
}

// TestRealRelayPaddingOff asks a real relay to stop padding; the link
// stays usable (a circuit still builds on it).
func TestRealRelayPaddingOff(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, err := dial(t, &channel.Config{Padding: channel.PaddingOff}, target(t, n.Nodes()[5]))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	h := &recorder{cells: make(chan *cell.Cell, 4), closed: make(chan error, 1), pool: ch.Pool()}
	id, _ := ch.AddCircuit(h)
	fc, _ := torcrypto.NewFastClient(nil)
	c, _ := ch.Pool().Get(context.Background())
	c.SetPayload(id, cell.CmdCreateFast, fc.Handshake())
	ch.Send(c)
	reply := h.next(t)
	if reply.Command() != cell.CmdCreatedFast {
		t.Fatalf("got %v", reply.Command())
	}
	ch.Pool().Put(reply)
	if ch.Err() != nil {
		t.Fatal(ch.Err())
	}
}
