package memquota

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/clock"
)

// MaxClaim is the largest single Claim accepted. Anything larger is bad
// input (and would risk overflowing the counters), not a real queue.
const MaxClaim int64 = 1 << 40

// Config configures a Tracker. The zero value is an unlimited tracker: it
// accounts and reports, but never reclaims.
type Config struct {
	// Limit is the number of bytes above which reclamation starts.
	// 0 means no limit. Negative is an error.
	Limit int64
	// LowWater is where reclamation stops: it collapses accounts until
	// usage is at or below LowWater. 0 means 3/4 of Limit. It must be
	// below Limit (and 0 when Limit is 0).
	LowWater int64
	// HardLimit, if set, bounds usage: a Claim that leaves usage above it
	// waits until reclamation brings usage back to HardLimit or below (or
	// its own account collapses, or the tracker closes). It must be at
	// least Limit. 0 means claims never wait and usage can overshoot the
	// limit by whatever is claimed before the reclaim goroutine runs.
	// See Participant for what a tracker with a HardLimit requires.
	HardLimit int64
	// Now tells the time; participants should stamp their data with the
	// same clock (Tracker.Now). nil means the real clock.
	Now func() time.Time
	// Logf receives reclamation events and accounting bugs. nil discards.
	Logf func(format string, args ...any)
}

// Limits are a tracker's thresholds in bytes, as in Config.
type Limits struct {
	Limit, LowWater, HardLimit int64
}

// limits are Limits checked, defaulted, and with "none" as MaxInt64 so the
// hot path compares without branching on zero.
type limits struct {
	limit, lowWater, hard int64
	public                Limits
}

func makeLimits(l Limits) (*limits, error) {
	switch {
	case l.Limit < 0:
		return nil, fmt.Errorf("memquota: negative limit %d", l.Limit)
	case l.LowWater < 0:
		return nil, fmt.Errorf("memquota: negative low-water mark %d", l.LowWater)
	case l.HardLimit < 0:
		return nil, fmt.Errorf("memquota: negative hard limit %d", l.HardLimit)
	case l.Limit == 0 && (l.LowWater != 0 || l.HardLimit != 0):
		return nil, errors.New("memquota: low-water mark or hard limit set without a limit")
	case l.Limit == 0:
		return &limits{limit: math.MaxInt64, lowWater: math.MaxInt64, hard: math.MaxInt64}, nil
	case l.LowWater == 0:
		l.LowWater = l.Limit / 4 * 3
	case l.LowWater >= l.Limit:
		return nil, fmt.Errorf("memquota: low-water mark %d not below limit %d", l.LowWater, l.Limit)
	}
	if l.HardLimit != 0 && l.HardLimit < l.Limit {
		return nil, fmt.Errorf("memquota: hard limit %d below limit %d", l.HardLimit, l.Limit)
	}
	lim := &limits{limit: l.Limit, lowWater: l.LowWater, hard: l.HardLimit, public: l}
	if lim.hard == 0 {
		lim.hard = math.MaxInt64
	}
	return lim, nil
}

// Tracker is one memory quota: a tree of accounts whose participants claim
// and release bytes, and a goroutine that reclaims the oldest data when the
// total crosses the limit. Trackers are independent of each other. All
// methods are safe for concurrent use.
//
// A nil *Tracker, and the nil *Account and *Participation it hands out,
// account nothing: their methods succeed and do nothing, so a package can
// take an optional tracker or account and call it unconditionally.
type Tracker struct {
	total atomic.Int64 // written by every Claim and Release
	_     [56]byte     // keep the read-mostly fields below off total's cache line
	peak  atomic.Int64

	limits atomic.Pointer[limits]

	reclaims    atomic.Int64
	collapsed   atomic.Int64
	freed       atomic.Int64
	badReleases atomic.Int64
	waits       atomic.Int64
	collapseSeq atomic.Uint64 // last ReclaimedError.Seq handed out

	// progress is closed, and replaced, whenever reclamation forgets bytes
	// or the limits change: claims waiting on the hard limit look again.
	progress atomic.Pointer[chan struct{}]

	now  func() time.Time
	logf func(format string, args ...any)

	wake chan struct{} // capacity 1: "usage crossed the limit"
	reqs chan reclaimRequest
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex // guards everything below, and the tree in Account
	closed bool
	nextID uint64
	top    map[*Account]struct{}
	parts  map[*Participation]struct{} // every live participation
	nAccts int

	// owned by the reclaim goroutine
	cands []candidate
}

type reclaimRequest struct {
	target int64
	done   chan struct{}
}

// New validates cfg and starts a tracker and its reclaim goroutine. Close
// stops the goroutine.
func New(cfg Config) (*Tracker, error) {
	lim, err := makeLimits(Limits{Limit: cfg.Limit, LowWater: cfg.LowWater, HardLimit: cfg.HardLimit})
	if err != nil {
		return nil, err
	}
	t := &Tracker{
		now:   cfg.Now,
		logf:  cfg.Logf,
		wake:  make(chan struct{}, 1),
		reqs:  make(chan reclaimRequest),
		done:  make(chan struct{}),
		top:   make(map[*Account]struct{}),
		parts: make(map[*Participation]struct{}),
	}
	if t.now == nil {
		t.now = clock.Real{}.Now
	}
	if t.logf == nil {
		t.logf = func(string, ...any) {}
	}
	t.limits.Store(lim)
	ch := make(chan struct{})
	t.progress.Store(&ch)
	t.wg.Add(1)
	go t.run()
	return t, nil
}

// Close stops the reclaim goroutine and waits for it to exit. Afterwards no
// accounts or participants can be created and nothing is reclaimed, but
// existing participations keep accounting (so owners tearing down in any
// order see no spurious errors). A second Close returns ErrClosed.
//
// Close must not be called from a Participant callback.
func (t *Tracker) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.closed = true
	t.mu.Unlock()
	close(t.done)
	t.wg.Wait()
	return nil
}

// Now returns the tracker's time. Participants stamp queued data with it
// so that ages compare on one clock.
func (t *Tracker) Now() time.Time {
	if t == nil {
		return clock.Real{}.Now()
	}
	return t.now()
}

// Used returns the bytes currently claimed. It is one atomic load.
func (t *Tracker) Used() int64 {
	if t == nil {
		return 0
	}
	return t.total.Load()
}

// Limits returns the thresholds in force, defaults filled in (all 0 when
// unlimited).
func (t *Tracker) Limits() Limits {
	if t == nil {
		return Limits{}
	}
	return t.limits.Load().public
}

// Pressure reports whether usage is above the low-water mark, that is,
// whether reclamation is running or about to. It is cheap enough for a
// buffer pool to call on every Put, to drop spare buffers instead of
// keeping them while queues are being collapsed.
func (t *Tracker) Pressure() bool {
	if t == nil {
		return false
	}
	return t.total.Load() > t.limits.Load().lowWater
}

// SetLimits changes the thresholds, with the same rules and defaults as
// Config. Lowering the limit below current usage starts reclamation;
// raising the hard limit releases waiting claims.
func (t *Tracker) SetLimits(l Limits) error {
	if t == nil {
		return errors.New("memquota: SetLimits on a nil Tracker")
	}
	lim, err := makeLimits(l)
	if err != nil {
		return err
	}
	t.limits.Store(lim)
	t.kick()
	t.signalProgress()
	return nil
}

// ReclaimTo collapses accounts, oldest data first, until usage is at or
// below target, and waits until that pass is done and every collapsed
// participant has been told (or ctx ends). It is for
// memory-pressure signals from the OS (TrimMemory); the limit does not
// change. It must not be called from a Participant callback.
func (t *Tracker) ReclaimTo(ctx context.Context, target int64) error {
	if target < 0 {
		return fmt.Errorf("memquota: negative reclaim target %d", target)
	}
	if t == nil {
		return nil
	}
	req := reclaimRequest{target: target, done: make(chan struct{})}
	select {
	case t.reqs <- req:
	case <-t.done:
		return ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// signalProgress wakes every claim waiting on the hard limit.
func (t *Tracker) signalProgress() {
	ch := make(chan struct{})
	close(*t.progress.Swap(&ch))
}

// kick wakes the reclaim goroutine without blocking.
func (t *Tracker) kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// NewAccount makes a top-level account (typically one per channel, or one
// for directory downloads). name is for debugging output and errors: it
// must not contain addresses or other sensitive values.
func (t *Tracker) NewAccount(name string) (*Account, error) {
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	a := t.newAccountLocked(nil, name)
	t.top[a] = struct{}{}
	return a, nil
}

func (t *Tracker) newAccountLocked(parent *Account, name string) *Account {
	t.nextID++
	t.nAccts++
	return &Account{t: t, id: t.nextID, name: name, parent: parent}
}

// AccountUsage is one top-level account's share, in Stats.
type AccountUsage struct {
	ID   uint64
	Name string
	Used int64 // bytes claimed by the account and all its descendants
}

// Stats is a snapshot of a tracker. Counters only grow.
type Stats struct {
	Used      int64 // bytes claimed now
	Peak      int64 // highest Used since New
	Limit     int64 // 0: unlimited
	LowWater  int64
	HardLimit int64 // 0: none
	Waits     int64 // claims that waited for usage to fall below HardLimit

	Reclaims    int64 // reclamation passes started (limit crossed or ReclaimTo)
	Collapsed   int64 // accounts collapsed by reclamation, descendants included
	Freed       int64 // bytes forgotten by reclamation
	BadReleases int64 // releases of more than was claimed (bugs; clamped)

	Accounts     int // open accounts
	Participants int // registered participations
	// TopLevel lists each open top-level account, oldest first.
	TopLevel []AccountUsage
}

// Stats returns a snapshot. It takes the tree lock; do not call it on a
// hot path.
func (t *Tracker) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	l := t.Limits()
	s := Stats{
		Limit:       l.Limit,
		LowWater:    l.LowWater,
		HardLimit:   l.HardLimit,
		Reclaims:    t.reclaims.Load(),
		Collapsed:   t.collapsed.Load(),
		Freed:       t.freed.Load(),
		BadReleases: t.badReleases.Load(),
		Waits:       t.waits.Load(),
	}
	t.mu.Lock()
	s.Accounts = t.nAccts
	s.Participants = len(t.parts)
	for _, a := range sortedAccounts(t.top) {
		s.TopLevel = append(s.TopLevel, AccountUsage{ID: a.id, Name: a.name, Used: a.subtreeUsedLocked()})
	}
	t.mu.Unlock()
	s.Used = t.total.Load()
	s.Peak = max(t.peak.Load(), s.Used)
	return s
}

// AccountInfo describes one account, for debugging.
type AccountInfo struct {
	ID           uint64
	Parent       uint64 // 0 for a top-level account
	Depth        int    // 0 for a top-level account
	Name         string
	Participants int
	Used         int64 // claimed by this account's own participants
	SubtreeUsed  int64 // Used plus all descendants
}

// Accounts lists every open account depth-first, parents before children,
// siblings oldest first. It does not ask participants for data ages.
func (t *Tracker) Accounts() []AccountInfo {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]AccountInfo, 0, t.nAccts)
	var walk func(a *Account, depth int) int64
	walk = func(a *Account, depth int) int64 {
		i := len(out)
		info := AccountInfo{ID: a.id, Depth: depth, Name: a.name, Participants: len(a.parts)}
		if a.parent != nil {
			info.Parent = a.parent.id
		}
		for p := range a.parts {
			info.Used += p.Used()
		}
		out = append(out, info)
		sub := out[i].Used
		for _, c := range sortedAccounts(a.children) {
			sub += walk(c, depth+1)
		}
		out[i].SubtreeUsed = sub
		return sub
	}
	for _, a := range sortedAccounts(t.top) {
		walk(a, 0)
	}
	return out
}

func sortedAccounts(m map[*Account]struct{}) []*Account {
	s := make([]*Account, 0, len(m))
	for a := range m {
		s = append(s, a)
	}
	slices.SortFunc(s, func(a, b *Account) int { return cmp.Compare(a.id, b.id) })
	return s
}
