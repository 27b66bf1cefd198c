package cell

// Account is the memory-accounting hook that every queue in the link layer
// (channel outbound queues, circuit and stream inbound queues, stream
// buffers) calls as it grows and shrinks. The memquota package's accounts
// are meant to satisfy it; the link-layer packages only see this
// interface.
//
// Charge records n more bytes held by the caller's queue. A non-nil error
// means the account has been reclaimed (or is over a hard limit): the
// caller drops what it was about to queue and tears the queue's owner down
// with that error. Release records n bytes freed. Both must be cheap and
// safe for concurrent use.
type Account interface {
	Charge(n int) error
	Release(n int)
}

// NoAccount accounts nothing. It is used when a configuration leaves its
// Account nil.
type NoAccount struct{}

// Charge implements Account.
func (NoAccount) Charge(int) error { return nil }

// Release implements Account.
func (NoAccount) Release(int) {}

// OrNoAccount returns a, or NoAccount{} when a is nil.
func OrNoAccount(a Account) Account {
	if a == nil {
		return NoAccount{}
	}
	return a
}
