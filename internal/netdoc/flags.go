package netdoc

import "strings"

// RelayFlags is the set of status flags of a relay ("s" line).
type RelayFlags uint32

// Status flags (dir-spec 3.4.1). Flags a consensus lists in known-flags
// that are not here are accepted and dropped.
const (
	FlagAuthority RelayFlags = 1 << iota
	FlagBadExit
	FlagExit
	FlagFast
	FlagGuard
	FlagHSDir
	FlagMiddleOnly
	FlagNoEdConsensus
	FlagRunning
	FlagStable
	FlagStaleDesc
	FlagSybil
	FlagV2Dir
	FlagValid
	numFlags = iota
)

var flagNames = [numFlags]string{
	"Authority", "BadExit", "Exit", "Fast", "Guard", "HSDir", "MiddleOnly",
	"NoEdConsensus", "Running", "Stable", "StaleDesc", "Sybil", "V2Dir", "Valid",
}

// Has reports whether every flag in f2 is set.
func (f RelayFlags) Has(f2 RelayFlags) bool { return f&f2 == f2 }

// String lists the flags by name, space-separated, in lexical order.
func (f RelayFlags) String() string {
	var sb strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(n)
		}
	}
	return sb.String()
}

// flagByName returns the bit for a flag name, or 0 for a flag this
// package does not know.
func flagByName(b []byte) RelayFlags {
	for i, n := range flagNames {
		if string(b) == n {
			return 1 << i
		}
	}
	return 0
}
