package memquota

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// Participant is implemented by a queue (or anything else holding data an
// adversary or a slow app can grow) to take part in reclamation.
//
// Oldest is called from the tracker's reclaim goroutine, and Reclaimed
// from a goroutine the tracker starts for each batch of collapses, both
// while the participant's own goroutines run, so they must synchronize.
// Neither is called with a tracker lock held. Oldest must not call into
// the tracker at all (a Claim there can wait on the very goroutine asking).
// Reclaimed may call anything except Tracker.Close and Tracker.ReclaimTo.
//
// Oldest should not wait for a lock that a producer holds while it claims
// (keep the head's time in an Oldest value): a producer in a tight loop
// then delays reclamation, and with a HardLimit, a producer waiting inside
// Claim while holding that lock deadlocks it.
type Participant interface {
	// Oldest returns when the oldest data the participant still holds was
	// queued (by Tracker.Now), or ok == false if it holds none. It is asked
	// only while reclaiming, and must be fast and must not block.
	Oldest() (t time.Time, ok bool)
	// Reclaimed says the participant's account (or an ancestor) collapsed:
	// err is a *ReclaimedError. The tracker has already forgotten the
	// participant's bytes and every later Claim fails with err. The
	// participant must drop its queued data, make readers see err (after
	// any data it chooses to deliver first, if it can do so without more
	// memory) and writers fail with err. It may take the participant's
	// locks but should not block for long: the participants of one batch
	// are told one after another. It is called at most once.
	Reclaimed(err error)
}

// Funcs adapts two funcs to a Participant. A nil OldestFunc means the
// participant never reports data age (it is then reclaimed after every
// participant that does); a nil ReclaimedFunc ignores the call.
type Funcs struct {
	OldestFunc    func() (time.Time, bool)
	ReclaimedFunc func(err error)
}

// Oldest calls f.OldestFunc.
func (f Funcs) Oldest() (time.Time, bool) {
	if f.OldestFunc == nil {
		return time.Time{}, false
	}
	return f.OldestFunc()
}

// Reclaimed calls f.ReclaimedFunc.
func (f Funcs) Reclaimed(err error) {
	if f.ReclaimedFunc != nil {
		f.ReclaimedFunc(err)
	}
}

// Account is a node of the account tree: typically a channel at the top, a
// circuit below it, a stream below that. Reclamation collapses a whole
// account and all its descendants at once. The owner (the channel, circuit
// or stream object) must Close the account when it goes away, or the
// tracker keeps it forever.
type Account struct {
	t      *Tracker
	id     uint64
	name   string
	parent *Account // nil for top level; immutable

	// err is nil while open, then ErrClosed or the *ReclaimedError; it is
	// set once, under t.mu, and read without it.
	err atomic.Pointer[error]

	// guarded by t.mu
	children map[*Account]struct{}
	parts    map[*Participation]struct{}
	retired  bool // see Retire
}

// ID returns the account's id, unique within its tracker.
func (a *Account) ID() uint64 {
	if a == nil {
		return 0
	}
	return a.id
}

// Tracker returns the tracker the account belongs to.
func (a *Account) Tracker() *Tracker {
	if a == nil {
		return nil
	}
	return a.t
}

// Name returns the name given when the account was made.
func (a *Account) Name() string {
	if a == nil {
		return ""
	}
	return a.name
}

// Err returns nil while the account is open, ErrClosed after Close (its
// own or an ancestor's), or the *ReclaimedError that collapsed it.
func (a *Account) Err() error {
	if a == nil {
		return nil
	}
	if e := a.err.Load(); e != nil {
		return *e
	}
	return nil
}

// Used returns the bytes claimed by this account and all its descendants:
// what collapsing it would free.
func (a *Account) Used() int64 {
	if a == nil {
		return 0
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	return a.subtreeUsedLocked()
}

func (a *Account) subtreeUsedLocked() int64 {
	var n int64
	for p := range a.parts {
		n += p.Used()
	}
	for c := range a.children {
		n += c.subtreeUsedLocked()
	}
	return n
}

// NewChild makes an account below a. It fails with a's error if a is
// closed or collapsed. name is as for Tracker.NewAccount.
func (a *Account) NewChild(name string) (*Account, error) {
	if a == nil {
		return nil, nil
	}
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := a.Err(); err != nil {
		return nil, err
	}
	if t.closed || a.retired {
		return nil, ErrClosed
	}
	c := t.newAccountLocked(a, name)
	if a.children == nil {
		a.children = make(map[*Account]struct{})
	}
	a.children[c] = struct{}{}
	return c, nil
}

// Register adds a participant to the account and returns the handle it
// claims and releases through. It fails with the account's error if the
// account is closed or collapsed.
//
// The participant's Reclaimed may be called, from another goroutine, as
// soon as Register returns, possibly before the caller has stored the
// returned Participation (if an ancestor collapses concurrently).
func (a *Account) Register(p Participant) (*Participation, error) {
	if p == nil {
		return nil, errors.New("memquota: nil Participant")
	}
	if a == nil {
		return nil, nil
	}
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := a.Err(); err != nil {
		return nil, err
	}
	if t.closed || a.retired {
		return nil, ErrClosed
	}
	t.nextID++
	pn := &Participation{t: t, acct: a, p: p, id: t.nextID}
	if a.parts == nil {
		a.parts = make(map[*Participation]struct{})
	}
	a.parts[pn] = struct{}{}
	t.parts[pn] = struct{}{}
	return pn, nil
}

// Close closes the account and all its descendants, forgetting every byte
// their participants still hold; later claims fail with ErrClosed. It does
// not call Reclaimed: the owner is tearing down and knows. Close the
// account when its queues are discarded, not before. Closing a closed or
// collapsed account does nothing.
func (a *Account) Close() {
	if a == nil {
		return
	}
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.Err() != nil {
		return
	}
	parent := a.parent
	t.detachLocked(a, ErrClosed, nil)
	t.pruneLocked(parent)
	t.signalProgress() // its claims waiting on the hard limit fail now
}

// Retire says the owner is done with the account but its descendants may
// still hold data: a channel that closed while a stream of one of its
// circuits still holds unread cells, say. The account takes no new
// children or participants (they fail with ErrClosed), its data stays
// accounted and reclaimable, and it closes itself, as Close would, once
// its last participant and child are gone. The owner should close its own
// participations first. Retiring a closed or collapsed account does
// nothing; Close still closes a retired account at once.
func (a *Account) Retire() {
	if a == nil {
		return
	}
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.Err() != nil || a.retired {
		return
	}
	a.retired = true
	if t.pruneLocked(a) {
		t.signalProgress()
	}
}

// pruneLocked closes a if it is retired and empty, then its parent if
// that is now retired and empty, and so on up. It reports whether it
// closed any.
func (t *Tracker) pruneLocked(a *Account) bool {
	pruned := false
	for a != nil && a.retired && a.Err() == nil && len(a.parts) == 0 && len(a.children) == 0 {
		parent := a.parent
		t.detachLocked(a, ErrClosed, nil)
		pruned = true
		a = parent
	}
	return pruned
}

// detachLocked marks a and its subtree dead with err, forgets their bytes,
// unlinks a from its parent, and appends the dead participations to out.
// It returns out, the bytes forgotten and the number of accounts.
func (t *Tracker) detachLocked(a *Account, err error, out []*Participation) ([]*Participation, int64, int64) {
	if a.parent != nil {
		delete(a.parent.children, a)
	} else {
		delete(t.top, a)
	}
	return t.killLocked(a, err, out)
}

func (t *Tracker) killLocked(a *Account, err error, out []*Participation) ([]*Participation, int64, int64) {
	a.err.Store(&err)
	t.nAccts--
	var freed, n int64 = 0, 1
	for p := range a.parts {
		freed += p.killLocked(err)
		out = append(out, p)
	}
	a.parts = nil
	for c := range a.children {
		var f, k int64
		out, f, k = t.killLocked(c, err, out)
		freed += f
		n += k
	}
	a.children = nil
	return out, freed, n
}

// dead marks a participation's used counter: any negative value means the
// participation no longer claims.
const dead = -1

// Participation is a participant's handle for claiming and releasing
// bytes. Claim and Release are safe for concurrent use and allocate
// nothing.
type Participation struct {
	// used is the bytes this participation holds, or dead. Invariant:
	// tracker.total >= sum of used over live participations, because
	// claims add to total before used, and releases and kills take from
	// used before total.
	used atomic.Int64
	t    *Tracker
	acct *Account
	p    Participant
	id   uint64
	err  error // written under t.mu before used becomes dead
}

// Claim records that n more bytes are (about to be) queued. It fails with
// the account's error (a *ReclaimedError, or ErrClosed) once the account is
// gone; the caller must then not queue the data. Going over the limit does
// not fail the claim: it wakes reclamation, which collapses the accounts
// with the oldest data, possibly this one. If the tracker has a HardLimit
// and this claim leaves usage above it, Claim waits for reclamation to
// bring usage back under it; if this account collapses meanwhile, Claim
// returns its error (and the bytes are already forgotten).
func (p *Participation) Claim(n int64) error { return p.claim(n, true) }

// ClaimNoWait is Claim that never waits on the hard limit: it claims,
// wakes reclamation if the total is over the limit, and returns. It is
// for producers that must not block, such as a queue documented never to
// block whose own length is bounded some other way; usage can then pass
// the hard limit by what such producers hold.
func (p *Participation) ClaimNoWait(n int64) error { return p.claim(n, false) }

func (p *Participation) claim(n int64, wait bool) error {
	if n < 0 {
		return errNegative
	}
	if n > MaxClaim {
		return errTooBig
	}
	if p == nil {
		return nil
	}
	t := p.t
	if n == 0 {
		if p.used.Load() < 0 {
			return p.err
		}
		return nil
	}
	total := t.total.Add(n)
	for {
		u := p.used.Load()
		if u < 0 {
			t.total.Add(-n)
			return p.err
		}
		if p.used.CompareAndSwap(u, u+n) {
			break
		}
	}
	for {
		pk := t.peak.Load()
		if total <= pk || t.peak.CompareAndSwap(pk, total) {
			break
		}
	}
	if lim := t.limits.Load(); total > lim.limit {
		t.kick()
		if wait && total > lim.hard {
			return p.waitBelowHard()
		}
		// Give the reclaimer this P, so it runs now rather than when the
		// claimer next blocks.
		runtime.Gosched()
	}
	return nil
}

// waitBelowHard waits until usage is at or below the hard limit, this
// participation dies, or the tracker closes.
func (p *Participation) waitBelowHard() error {
	t := p.t
	t.waits.Add(1)
	for {
		progress := *t.progress.Load() // before the checks: no lost wakeup
		if p.used.Load() < 0 {
			return p.err
		}
		if t.total.Load() <= t.limits.Load().hard {
			return nil
		}
		t.kick()
		select {
		case <-progress:
		case <-t.done:
			return nil
		}
	}
}

// Release records that n bytes claimed earlier are no longer queued.
// Releasing after the account collapsed or closed does nothing (those
// bytes were already forgotten). Releasing more than is held is a bug in
// the caller: it is logged, counted in Stats.BadReleases and clamped so
// accounting never goes negative.
func (p *Participation) Release(n int64) {
	if n == 0 || p == nil {
		return
	}
	t := p.t
	if n < 0 {
		t.badReleases.Add(1)
		t.logf("memquota: BUG: account %q released %d bytes (negative); ignored", p.acct.name, n)
		return
	}
	for {
		u := p.used.Load()
		if u < 0 {
			return
		}
		m := min(n, u)
		if !p.used.CompareAndSwap(u, u-m) {
			continue
		}
		t.total.Add(-m)
		if m < n {
			t.badReleases.Add(1)
			t.logf("memquota: BUG: account %q released %d bytes but held %d; clamped", p.acct.name, n, u)
		}
		return
	}
}

// Used returns the bytes the participation holds (0 once dead).
func (p *Participation) Used() int64 {
	if p == nil {
		return 0
	}
	return max(p.used.Load(), 0)
}

// Err returns nil while the participation can claim, or why it cannot.
func (p *Participation) Err() error {
	if p == nil {
		return nil
	}
	if p.used.Load() < 0 {
		return p.err
	}
	return nil
}

// Account returns the account the participation belongs to.
func (p *Participation) Account() *Account {
	if p == nil {
		return nil
	}
	return p.acct
}

// Close unregisters the participation, forgetting the bytes it still
// holds; later claims fail with ErrClosed. It does not call Reclaimed.
// Closing twice, or after a collapse, does nothing.
func (p *Participation) Close() {
	if p == nil {
		return
	}
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.used.Load() < 0 {
		return
	}
	delete(p.acct.parts, p)
	p.killLocked(ErrClosed)
	t.pruneLocked(p.acct)
	t.signalProgress() // a claim of its waiting on the hard limit fails now
}

// killLocked makes p dead and forgets its bytes, returning them. Its caller
// removes p from its account's map.
func (p *Participation) killLocked(err error) int64 {
	p.err = err
	u := p.used.Swap(dead)
	delete(p.t.parts, p)
	if u > 0 {
		p.t.total.Add(-u)
		return u
	}
	return 0
}

// Oldest holds a queue's oldest-data timestamp where Participant.Oldest
// can read it without the queue's lock. A queue sets it when it pushes
// onto an empty queue and when it pops (to the new head's time, or Clear
// when empty), under its own lock. Use it: a Participant.Oldest that waits
// for a lock held by a busy producer delays reclamation while that
// producer keeps claiming. The zero value holds no time.
type Oldest struct {
	ns   atomic.Int64 // Unix nanoseconds
	some atomic.Bool
}

// Set records t as the oldest data's time.
func (o *Oldest) Set(t time.Time) {
	o.ns.Store(t.UnixNano())
	o.some.Store(true)
}

// Clear records that there is no data.
func (o *Oldest) Clear() { o.some.Store(false) }

// Get returns the recorded time, in the form Participant.Oldest returns.
// It is exact to the nanosecond but carries no monotonic clock reading.
func (o *Oldest) Get() (time.Time, bool) {
	if !o.some.Load() {
		return time.Time{}, false
	}
	return time.Unix(0, o.ns.Load()), true
}
