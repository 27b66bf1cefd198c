package netdir

import (
	"strings"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// Flags is a relay's flag set: the consensus status flags a client uses,
// plus facts this package derives from the relay's protocols and
// microdescriptor.
type Flags uint32

// Consensus status flags (dir-spec 3.4.2). A MiddleOnly relay never has
// FlagGuard, FlagExit, FlagV2Dir or FlagHSDir and always has FlagBadExit,
// as consensus method 32 requires, whatever its consensus entry says.
const (
	FlagRunning Flags = 1 << iota
	FlagValid
	FlagFast
	FlagStable
	FlagGuard
	FlagExit
	FlagBadExit
	FlagMiddleOnly
	FlagV2Dir
	FlagHSDir
	FlagAuthority
	FlagStaleDesc

	// FlagUnmeasured: the consensus weight was not measured by bandwidth
	// authorities ("w ... Unmeasured=1").
	FlagUnmeasured
	// FlagHasMicrodesc: the relay's microdescriptor is known, so are its
	// ntor key, exit policy and family.
	FlagHasMicrodesc
	// FlagHasEd25519: the microdescriptor gives an ed25519 identity and
	// the consensus does not mark it NoEdConsensus.
	FlagHasEd25519
	// FlagHasIPv6: the relay has an IPv6 ORPort.
	FlagHasIPv6
	// FlagExtend2: the relay handles EXTEND2 cells (Relay=2). Relays
	// without a "pr" line are assumed to, as C tor does.
	FlagExtend2
	// FlagNtorV3: the relay accepts the ntor-v3 handshake (Relay=4).
	FlagNtorV3
	// FlagCongestionControl: the relay negotiates congestion control
	// (FlowCtrl=2, proposal 324).
	FlagCongestionControl
	// FlagConflux: the relay, as an exit, links conflux sets (Conflux=1,
	// proposal 329).
	FlagConflux

	// flagV6FromMD (internal): the IPv6 address came from an old-style
	// microdescriptor "a" line, not from the consensus.
	flagV6FromMD

	numFlags = iota
)

var flagNames = [numFlags]string{
	"Running", "Valid", "Fast", "Stable", "Guard", "Exit", "BadExit",
	"MiddleOnly", "V2Dir", "HSDir", "Authority", "StaleDesc", "Unmeasured",
	"HasMicrodesc", "HasEd25519", "HasIPv6", "Extend2", "NtorV3",
	"CongestionControl", "Conflux", "v6FromMD",
}

// Has reports whether every flag in want is set.
func (f Flags) Has(want Flags) bool { return f&want == want }

// String lists the flags by name, space-separated.
func (f Flags) String() string {
	var sb strings.Builder
	for i := 0; i < numFlags; i++ {
		if f&(1<<i) != 0 {
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(flagNames[i])
		}
	}
	return sb.String()
}

// consensusFlags maps a consensus entry's flags and protocols to Flags.
func consensusFlags(rs *netdoc.RouterStatus) Flags {
	var f Flags
	for _, m := range [...]struct {
		in  netdoc.RelayFlags
		out Flags
	}{
		{netdoc.FlagRunning, FlagRunning},
		{netdoc.FlagValid, FlagValid},
		{netdoc.FlagFast, FlagFast},
		{netdoc.FlagStable, FlagStable},
		{netdoc.FlagGuard, FlagGuard},
		{netdoc.FlagExit, FlagExit},
		{netdoc.FlagBadExit, FlagBadExit},
		{netdoc.FlagMiddleOnly, FlagMiddleOnly},
		{netdoc.FlagV2Dir, FlagV2Dir},
		{netdoc.FlagHSDir, FlagHSDir},
		{netdoc.FlagAuthority, FlagAuthority},
		{netdoc.FlagStaleDesc, FlagStaleDesc},
	} {
		if rs.Flags&m.in != 0 {
			f |= m.out
		}
	}
	if f&FlagMiddleOnly != 0 {
		f &^= FlagGuard | FlagExit | FlagV2Dir | FlagHSDir
		f |= FlagBadExit
	}
	if rs.Unmeasured {
		f |= FlagUnmeasured
	}
	if p := rs.Protocols; p == nil {
		f |= FlagExtend2
	} else {
		if p.Supports(netdoc.ProtoRelay, 2) {
			f |= FlagExtend2
		}
		if p.Supports(netdoc.ProtoRelay, 4) {
			f |= FlagNtorV3
		}
		if p.Supports(netdoc.ProtoFlowCtrl, 2) {
			f |= FlagCongestionControl
		}
		if p.Supports(netdoc.ProtoConflux, 1) {
			f |= FlagConflux
		}
	}
	return f
}
