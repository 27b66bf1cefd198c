package circuit

import (
	"errors"
	"fmt"
	"net"

	"github.com/onionlite/onionlite/internal/cell"
)

// ErrClosed is the error of a circuit closed locally.
// errors.Is(ErrClosed, net.ErrClosed) holds.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string        { return "circuit closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }

// ErrProtocol is wrapped by the error of a circuit closed because a relay
// broke the protocol.
var ErrProtocol = errors.New("circuit: protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// DestroyedError is a circuit torn down by the network: a DESTROY cell
// from the first hop, or a TRUNCATED from a later hop (Truncated, with
// Hop the 0-based hop that sent it).
type DestroyedError struct {
	Reason    cell.DestroyReason
	Truncated bool
	Hop       int
}

func (e *DestroyedError) Error() string {
	if e.Truncated {
		return fmt.Sprintf("circuit: truncated after hop %d: %v", e.Hop, e.Reason)
	}
	return fmt.Sprintf("circuit: destroyed by the relay: %v", e.Reason)
}

// ChannelClosedError is a circuit that died with its channel.
type ChannelClosedError struct{ Err error }

func (e *ChannelClosedError) Error() string { return "circuit: lost its channel: " + e.Err.Error() }

// Unwrap returns the channel's error.
func (e *ChannelClosedError) Unwrap() error { return e.Err }
