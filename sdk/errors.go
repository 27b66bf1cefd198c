package sdk

import (
	"fmt"
)

// Kind classifies errors so callers can react without parsing text.
type Kind int

// Error kinds. New kinds may be added; treat unknown ones as KindInternal.
const (
	KindInternal Kind = iota
	// KindConfig: the Client's configuration is invalid.
	KindConfig
	// KindClosed: the Client was closed.
	KindClosed
	// KindBootstrapRequired: the directory is not ready yet (dial before
	// Bootstrap finished and without waiting).
	KindBootstrapRequired
	// KindBootstrapFailed: no usable directory could be obtained.
	KindBootstrapFailed
	// KindDirectoryExpired: the directory is too old to use and could
	// not be refreshed.
	KindDirectoryExpired
	// KindClockSkew: the local clock is far from the network's; fix the
	// clock (see ClockSkew in the error chain).
	KindClockSkew
	// KindNoPath: no circuit can be built to reach the destination (no
	// exit allows the port, not enough relays).
	KindNoPath
	// KindExitRefused: the exit relay refused or could not reach the
	// destination (exit policy, resolve failure, connection refused).
	KindExitRefused
	// KindTimeout: an operation ran out of time.
	KindTimeout
	// KindNetwork: relays could not be reached or a circuit broke.
	KindNetwork
	// KindMemory: the memory budget reclaimed this stream or circuit.
	KindMemory
	// KindStorage: the data directory cannot be used; the client keeps
	// working from memory and reports this as a warning event.
	KindStorage
	// KindBadAddress: the address to dial or resolve is malformed.
	KindBadAddress
)

var kindNames = [...]string{"internal", "config", "closed", "bootstrap required", "bootstrap failed",
	"directory expired", "clock skew", "no path", "exit refused", "timeout", "network", "memory", "storage",
	"bad address"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is what the sdk returns. Match it with errors.As and switch on
// Kind; the underlying Err may carry more detail (errors.Is works through
// it). Message text is not stable.
type Error struct {
	Kind Kind
	Op   string // "bootstrap", "dial", "socks", ...
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "onionlite: " + e.Op + ": " + e.Kind.String()
	}
	return "onionlite: " + e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the error is a timeout (net.Error).
func (e *Error) Timeout() bool { return e.Kind == KindTimeout }

// Temporary reports whether retrying may help (net.Error, deprecated
// there but still read by some callers).
func (e *Error) Temporary() bool {
	switch e.Kind {
	case KindTimeout, KindNetwork, KindBootstrapRequired, KindMemory:
		return true
	}
	return false
}

// Is makes errors.Is(err, &Error{Kind: k}) match any Error of kind k.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Err == nil && t.Kind == e.Kind
}

// ErrClosed matches errors returned after Close; it wraps net.ErrClosed's
// meaning for callers using errors.Is(err, sdk.ErrClosed).
var ErrClosed = &Error{Kind: KindClosed}
