package circmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Kinds of failure. An *Error's Kind is one of these (or context.Canceled);
// match them with errors.Is. Message text is not stable.
var (
	// ErrClosed: the Manager was closed. errors.Is(err, net.ErrClosed)
	// holds too.
	ErrClosed error = closedError{}
	// ErrBadTarget: the host or port cannot be asked for (empty or
	// over-long host, NUL bytes, port 0, an .onion address).
	ErrBadTarget = errors.New("circmgr: bad target")
	// ErrDirectoryNotReady: no network view yet, one too old to use, or
	// the primary guards' microdescriptors are missing (the Err is then a
	// *guard.MissingDescriptorsError listing them).
	ErrDirectoryNotReady = errors.New("circmgr: directory not ready")
	// ErrNoExitForPort: no usable exit allows the port (after the exits
	// that refused it were excluded).
	ErrNoExitForPort = errors.New("circmgr: no exit allows the port")
	// ErrNoPath: no guard or no path could be chosen for another reason.
	ErrNoPath = errors.New("circmgr: no usable path")
	// ErrBuildFailed: circuits could not be built (the Err is the last
	// build's error, a *circuit.DestroyedError, a channel error, ...).
	ErrBuildFailed = errors.New("circmgr: circuit build failed")
	// ErrExitRefused: the exit refused the stream with a RELAY_END; the
	// Err is the *stream.EndError (errors.Is(err, stream.ErrConnectRefused)
	// and the like work).
	ErrExitRefused = errors.New("circmgr: exit refused the stream")
	// ErrResolveFailed: the exit could not resolve the name (END
	// RESOLVEFAILED three times, or a RESOLVED error answer).
	ErrResolveFailed = errors.New("circmgr: exit could not resolve the name")
	// ErrCircuitFailed: every circuit tried died under the request.
	ErrCircuitFailed = errors.New("circmgr: circuit failed")
	// ErrTimeout: the request's deadline passed, or BEGIN went unanswered
	// on every circuit tried. Error.Timeout reports true.
	ErrTimeout = errors.New("circmgr: timed out")
)

type closedError struct{}

func (closedError) Error() string        { return "circmgr: closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// Error is what Dial, Resolve and ResolvePTR return on failure.
type Error struct {
	Op   string // "dial", "resolve" or "resolve-ptr"
	Kind error  // a sentinel above, or context.Canceled
	// Err is the last underlying cause (may be nil).
	Err error
	// Attempts counts circuits the request was sent on; Builds counts
	// failed builds it waited for.
	Attempts, Builds int
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %v", e.Op, e.Kind)
	if e.Err != nil && e.Err != e.Kind {
		s += ": " + e.Err.Error()
	}
	if e.Attempts > 1 || e.Builds > 0 {
		s += fmt.Sprintf(" (%d circuits tried, %d builds failed)", e.Attempts, e.Builds)
	}
	return s
}

// Unwrap returns the Kind and the cause, so errors.Is and errors.As see
// both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Timeout reports whether the request timed out (net.Error).
func (e *Error) Timeout() bool {
	return e.Kind == ErrTimeout || errors.Is(e.Err, context.DeadlineExceeded)
}

// Temporary is part of the deprecated net.Error interface: a timeout, a
// failed build or a dead circuit may go better on a later try.
func (e *Error) Temporary() bool {
	return e.Timeout() || e.Kind == ErrBuildFailed || e.Kind == ErrCircuitFailed
}

var _ net.Error = (*Error)(nil)
