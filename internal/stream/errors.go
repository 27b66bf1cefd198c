package stream

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/onionlite/onionlite/internal/cell"
)

// EndError is a stream ended by the other side with a RELAY_END reason
// other than DONE (or DONE before the stream opened).
type EndError struct {
	Reason cell.EndReason
	// Addr and TTL are set for EXITPOLICY when the exit sent them.
	Addr netip.Addr
	TTL  uint32
}

func (e *EndError) Error() string {
	return "stream: closed by the exit: " + e.Reason.String()
}

// Is matches another *EndError with the same reason, so the sentinels
// below work with errors.Is.
func (e *EndError) Is(target error) bool {
	t, ok := target.(*EndError)
	return ok && t.Reason == e.Reason
}

// Timeout reports whether the exit timed out connecting (net.Error).
func (e *EndError) Timeout() bool { return e.Reason == cell.EndTimeout }

// Temporary is part of the deprecated net.Error interface.
func (e *EndError) Temporary() bool { return e.Timeout() }

// Sentinels for errors.Is against an *EndError.
var (
	ErrResolveFailed  error = &EndError{Reason: cell.EndResolveFailed}
	ErrConnectRefused error = &EndError{Reason: cell.EndConnectRefused}
	ErrExitPolicy     error = &EndError{Reason: cell.EndExitPolicy}
	ErrExitTimeout    error = &EndError{Reason: cell.EndTimeout}
	ErrNoRoute        error = &EndError{Reason: cell.EndNoRoute}
	ErrConnReset      error = &EndError{Reason: cell.EndConnReset}
	ErrNotDirectory   error = &EndError{Reason: cell.EndNotDirectory}
	ErrTorProtocol    error = &EndError{Reason: cell.EndTorProtocol}
	ErrExitMisc       error = &EndError{Reason: cell.EndMisc}
)

// ErrClosed is returned by operations on a stream closed locally.
// errors.Is(ErrClosed, net.ErrClosed) holds.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "stream closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// ErrProtocol is wrapped by errors HandleRelay returns for messages the
// exit must not send; the circuit is then closed.
var ErrProtocol = errors.New("stream: protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
