package memquota

import (
	"errors"
	"fmt"
	"time"
)

// ErrReclaimed is matched (with errors.Is) by every error that reports an
// account collapsed by reclamation. Message text is not stable; match with
// errors.Is or errors.As(*ReclaimedError).
var ErrReclaimed = errors.New("memquota: reclaimed under memory pressure")

// ErrClosed is returned when claiming on, registering with, or creating a
// child of an account, participation or tracker that its owner closed.
var ErrClosed = errors.New("memquota: closed")

// ReclaimedError is the error handed to every participant of a collapsed
// account, and returned by every later Claim on it. One value is shared by
// the whole collapsed subtree.
type ReclaimedError struct {
	// Account is the name of the account whose participant held the oldest
	// data: the root of the collapsed subtree.
	Account string
	// Age is how old that data was when reclamation chose it (by the
	// tracker's clock); zero if the participant reported no data.
	Age time.Duration
	// Oldest is when that data was queued, as the participant reported it
	// (by the tracker's clock); zero if it reported no data.
	Oldest time.Time
	// Seq numbers the collapses of one tracker in the order reclamation
	// made them, from 1: a lower Seq was collapsed earlier.
	Seq uint64
}

func (e *ReclaimedError) Error() string {
	return fmt.Sprintf("memquota: account %q reclaimed under memory pressure (oldest data %v old)", e.Account, e.Age)
}

// Is reports whether target is ErrReclaimed.
func (e *ReclaimedError) Is(target error) bool { return target == ErrReclaimed }

var errNegative = errors.New("memquota: negative claim")
var errTooBig = fmt.Errorf("memquota: claim larger than %d bytes", MaxClaim)
