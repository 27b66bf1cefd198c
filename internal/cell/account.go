package cell

import "time"

// Account is the memory-accounting hook that every queue in the link layer
// (channel outbound queues, circuit and stream inbound queues, stream
// buffers) calls as it grows and shrinks. memquota's *Participation
// satisfies it; the link-layer packages only see this interface.
//
// Claim records n more bytes about to be queued. A non-nil error means the
// account has been reclaimed or closed: the caller must not queue the data
// and tears the queue's owner down with that error. Release records n
// bytes freed. Close ends the accounting when the owner goes away. All
// must be cheap and safe for concurrent use.
type Account interface {
	Claim(n int64) error
	Release(n int64)
	Close()
}

// Participant is what a queue owner (a channel, circuit or stream) shows
// the memory quota so it can be reclaimed. Its method set matches
// memquota.Participant.
//
// Oldest says when the oldest data still queued arrived (ok false when
// nothing is queued). Reclaimed tells the owner its account collapsed: it
// drops its queues, and readers and writers see err. Neither blocks.
type Participant interface {
	Oldest() (t time.Time, ok bool)
	Reclaimed(err error)
}

// Quota registers a queue owner for memory accounting and returns the
// Account it charges. A nil Quota means no accounting. With memquota it is
// typically
//
//	func(p cell.Participant) (cell.Account, error) { return acct.Register(p) }
type Quota func(p Participant) (Account, error)

// Register calls q, or returns NoAccount{} when q is nil.
func (q Quota) Register(p Participant) (Account, error) {
	if q == nil {
		return NoAccount{}, nil
	}
	a, err := q(p)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return NoAccount{}, nil
	}
	return a, nil
}

// NoAccount accounts nothing.
type NoAccount struct{}

// Claim implements Account.
func (NoAccount) Claim(int64) error { return nil }

// Release implements Account.
func (NoAccount) Release(int64) {}

// Close implements Account.
func (NoAccount) Close() {}
