package safelog

import (
	"fmt"
	"sync/atomic"
)

var unsafe atomic.Bool

// SetSafe turns scrubbing on (true, the default) or off for the process.
func SetSafe(safe bool) { unsafe.Store(!safe) }

// Safe reports whether sensitive values are scrubbed.
func Safe() bool { return !unsafe.Load() }

// Scrubbed is what a sensitive value prints as.
const Scrubbed = "[scrubbed]"

// Sensitive wraps a value (a host name, an address, a URL) that must not
// reach logs while safe logging is on.
type Sensitive struct{ V any }

// S wraps v.
func S(v any) Sensitive { return Sensitive{v} }

// String implements fmt.Stringer.
func (s Sensitive) String() string {
	if Safe() {
		return Scrubbed
	}
	return fmt.Sprint(s.V)
}

// Format makes every verb (%v, %s, %q, %+v …) respect scrubbing.
func (s Sensitive) Format(f fmt.State, verb rune) {
	if Safe() {
		if verb == 'q' {
			fmt.Fprintf(f, "%q", Scrubbed)
			return
		}
		fmt.Fprint(f, Scrubbed)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.V)
}
