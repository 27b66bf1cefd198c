package circuit

import (
	"fmt"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/relaycrypto"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// Circuit-level flow control constants (tor-spec 7.3).
const (
	CircWindowStart     = 1000
	CircWindowIncrement = 100
)

// flowControl is one hop's circuit-level flow control as the origin runs
// it: the fixed window of tor-spec 7.3 (fixedWindow) or prop 324's
// congestion control with TOR_VEGAS (vegas). Methods are called with the
// circuit's mutex held; times come from the monotonic clock.
type flowControl interface {
	// canSend reports whether one more DATA cell may be sent to the hop.
	canSend() bool
	// sent records a DATA cell sent to the hop at now, with the running
	// digest after it.
	sent(d relaycrypto.Digest, now time.Time)
	// sendmeReceived processes a circuit-level SENDME from the hop that
	// arrived at now.
	sendmeReceived(m *cell.Sendme, now time.Time) error
	// delivered records a DATA cell received from the hop, with the
	// running digest after it, and says whether a SENDME is now due and
	// what it must echo.
	delivered(d relaycrypto.Digest) (sendme bool, echo relaycrypto.Digest, err error)
}

// deliverWindow is the receiving half shared by both kinds of flow
// control: the window starts at start and a SENDME v1 is due after every
// inc-th DATA cell, echoing the running digest after that cell (prop 289;
// with congestion control inc is the negotiated cc_sendme_inc, prop 324
// 2.2). The window never falls below start-inc when SENDMEs go out, so
// only a relay ignoring our SENDMEs can overrun it.
type deliverWindow struct {
	start, inc int
	window     int
	echo       relaycrypto.Digest
}

func newDeliverWindow(start, inc int) deliverWindow {
	return deliverWindow{start: start, inc: inc, window: start}
}

func (w *deliverWindow) delivered(d relaycrypto.Digest) (bool, relaycrypto.Digest, error) {
	if w.window <= 0 {
		return false, relaycrypto.Digest{}, protoErr("DATA beyond the circuit window")
	}
	w.window--
	if (w.start-w.window)%w.inc == 0 {
		w.echo = d
	}
	if w.window <= w.start-w.inc {
		w.window += w.inc
		return true, w.echo, nil
	}
	return false, relaycrypto.Digest{}, nil
}

// checkSendme applies the version rules every circuit SENDME must pass
// and pops the digest it must echo from expected.
func checkSendme(m *cell.Sendme, acceptMinVersion int, expected *[]relaycrypto.Digest) error {
	if int(m.Version) < acceptMinVersion {
		return protoErr("SENDME version %d below the accepted minimum %d", m.Version, acceptMinVersion)
	}
	if m.Version > 1 {
		return protoErr("SENDME version %d unsupported", m.Version)
	}
	if len(*expected) == 0 {
		return protoErr("circuit SENDME without outstanding data")
	}
	want := (*expected)[0]
	*expected = (*expected)[1:]
	if m.Version == 1 && !torcrypto.Equal(m.Digest[:], want[:]) {
		return protoErr("SENDME v1 digest does not match the cell it acknowledges")
	}
	return nil
}

// fixedWindow is tor-spec 7.3's flow control with authenticated SENDMEs.
type fixedWindow struct {
	start            int
	packageWindow    int
	acceptMinVersion int
	// expected holds the digests recorded after every 100th DATA cell
	// sent; each circuit SENDME must echo the oldest (prop 289).
	expected []relaycrypto.Digest
	recv     deliverWindow
}

func newFixedWindow(start, acceptMinVersion int) *fixedWindow {
	return &fixedWindow{start: start, packageWindow: start, acceptMinVersion: acceptMinVersion,
		recv: newDeliverWindow(start, CircWindowIncrement)}
}

func (f *fixedWindow) canSend() bool { return f.packageWindow > 0 }

func (f *fixedWindow) sent(d relaycrypto.Digest, _ time.Time) {
	// Tor records the digest of the cell sent while the window, before
	// this cell, is one more than a multiple of the increment: the cell
	// after which a SENDME is due.
	if (f.packageWindow-1)%CircWindowIncrement == 0 {
		f.expected = append(f.expected, d)
	}
	f.packageWindow--
}

func (f *fixedWindow) sendmeReceived(m *cell.Sendme, _ time.Time) error {
	if err := checkSendme(m, f.acceptMinVersion, &f.expected); err != nil {
		return err
	}
	if f.packageWindow+CircWindowIncrement > f.start {
		return protoErr("circuit SENDME would open the window past %d", f.start)
	}
	f.packageWindow += CircWindowIncrement
	return nil
}

func (f *fixedWindow) delivered(d relaycrypto.Digest) (bool, relaycrypto.Digest, error) {
	return f.recv.delivered(d)
}

func (f *fixedWindow) String() string {
	return fmt.Sprintf("package %d deliver %d", f.packageWindow, f.recv.window)
}
