package circuit

import (
	"fmt"

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
// it. The fixed window of tor-spec 7.3 implements it; prop 324's
// congestion control will be a second implementation. Methods are called
// with the circuit's mutex held.
type flowControl interface {
	// canSend reports whether one more DATA cell may be sent to the hop.
	canSend() bool
	// sent records a DATA cell sent to the hop, with the running digest
	// after it.
	sent(d relaycrypto.Digest)
	// sendmeReceived processes a circuit-level SENDME from the hop.
	sendmeReceived(m *cell.Sendme) error
	// delivered records a DATA cell received from the hop, with the
	// running digest after it, and says whether a SENDME is now due and
	// what it must echo.
	delivered(d relaycrypto.Digest) (sendme bool, echo relaycrypto.Digest, err error)
}

// fixedWindow is tor-spec 7.3's flow control with authenticated SENDMEs.
type fixedWindow struct {
	start            int
	packageWindow    int
	deliverWindow    int
	acceptMinVersion int
	// expected holds the digests recorded after every 100th DATA cell
	// sent; each circuit SENDME must echo the oldest (prop 289).
	expected []relaycrypto.Digest
	// echo is the running digest after the DATA cell that brought the
	// deliver window to a multiple of the increment.
	echo relaycrypto.Digest
}

func newFixedWindow(start, acceptMinVersion int) *fixedWindow {
	return &fixedWindow{start: start, packageWindow: start, deliverWindow: start, acceptMinVersion: acceptMinVersion}
}

func (f *fixedWindow) canSend() bool { return f.packageWindow > 0 }

func (f *fixedWindow) sent(d relaycrypto.Digest) {
	// Tor records the digest of the cell sent while the window, before
	// this cell, is one more than a multiple of the increment: the cell
	// after which a SENDME is due.
	if (f.packageWindow-1)%CircWindowIncrement == 0 {
		f.expected = append(f.expected, d)
	}
	f.packageWindow--
}

func (f *fixedWindow) sendmeReceived(m *cell.Sendme) error {
	if int(m.Version) < f.acceptMinVersion {
		return protoErr("SENDME version %d below the accepted minimum %d", m.Version, f.acceptMinVersion)
	}
	if m.Version > 1 {
		return protoErr("SENDME version %d unsupported", m.Version)
	}
	if len(f.expected) == 0 {
		return protoErr("circuit SENDME without outstanding data")
	}
	want := f.expected[0]
	f.expected = f.expected[1:]
	if m.Version == 1 && !torcrypto.Equal(m.Digest[:], want[:]) {
		return protoErr("SENDME v1 digest does not match the cell it acknowledges")
	}
	if f.packageWindow+CircWindowIncrement > f.start {
		return protoErr("circuit SENDME would open the window past %d", f.start)
	}
	f.packageWindow += CircWindowIncrement
	return nil
}

func (f *fixedWindow) delivered(d relaycrypto.Digest) (bool, relaycrypto.Digest, error) {
	if f.deliverWindow <= 0 {
		return false, relaycrypto.Digest{}, protoErr("DATA beyond the circuit window")
	}
	f.deliverWindow--
	if (f.start-f.deliverWindow)%CircWindowIncrement == 0 {
		f.echo = d
	}
	if f.deliverWindow <= f.start-CircWindowIncrement {
		f.deliverWindow += CircWindowIncrement
		return true, f.echo, nil
	}
	return false, relaycrypto.Digest{}, nil
}

func (f *fixedWindow) String() string {
	return fmt.Sprintf("package %d deliver %d", f.packageWindow, f.deliverWindow)
}
