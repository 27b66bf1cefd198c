package sdk

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/onionlite/onionlite/bootstrap"
	"github.com/onionlite/onionlite/internal/clock"
)

// parseBridge parses a torrc-style bridge line, with or without the
// leading "Bridge" keyword: "IP:ORPORT FINGERPRINT". The fingerprint is
// required (it authenticates the bridge); pluggable transports are not
// supported.
func parseBridge(line string) (bootstrap.DirServer, error) {
	f := strings.Fields(line)
	if len(f) > 0 && strings.EqualFold(f[0], "Bridge") {
		f = f[1:]
	}
	if len(f) == 0 {
		return bootstrap.DirServer{}, fmt.Errorf("empty bridge line")
	}
	ap, err := netip.ParseAddrPort(f[0])
	if err != nil {
		return bootstrap.DirServer{}, fmt.Errorf("bridge %q: want IP:ORPORT FINGERPRINT (pluggable transports are not supported)", line)
	}
	if ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().Zone() != "" {
		return bootstrap.DirServer{}, fmt.Errorf("bridge %q: %v is not an address a bridge can have", line, ap)
	}
	fp := strings.Join(f[1:], "")
	raw, err := hex.DecodeString(fp)
	if err != nil || len(raw) != 20 {
		return bootstrap.DirServer{}, fmt.Errorf("bridge %q: want a 40-digit hex fingerprint after the address", line)
	}
	d := bootstrap.DirServer{Nickname: "bridge", Addr: ap}
	copy(d.Fingerprint[:], raw)
	return d, nil
}

// StartingAt returns a Clock that reads t now and runs forward at the real
// rate: for replaying old Tor documents (whose validity and certificates
// lie in the past) and for tests.
func StartingAt(t time.Time) Clock { return clock.At(t) }
