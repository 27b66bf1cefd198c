package memquota

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock for deterministic data ages.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// queue is a minimal accounted FIFO, shaped like the ones channels,
// circuits and streams will have: items stamped with the tracker's clock,
// claim before queueing, release after dequeueing, drop all on reclaim.
type queue struct {
	trk   *Tracker
	partn *Participation

	oldest Oldest // the head item's time, for Oldest without mu

	mu     sync.Mutex
	items  []item
	held   int64 // sum of items[].n
	err    error // set by Reclaimed
	called int   // Reclaimed calls
}

type item struct {
	at time.Time
	n  int64
}

func newQueue(t testing.TB, a *Account) *queue {
	t.Helper()
	q := &queue{trk: a.t}
	p, err := a.Register(q)
	if err != nil {
		t.Fatalf("Register(%s): %v", a.Name(), err)
	}
	q.mu.Lock()
	q.partn = p
	q.mu.Unlock()
	return q
}

func (q *queue) push(n int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	if err := q.partn.Claim(n); err != nil {
		return err
	}
	now := q.trk.Now()
	if len(q.items) == 0 {
		q.oldest.Set(now)
	}
	q.items = append(q.items, item{at: now, n: n})
	q.held += n
	return nil
}

// pop dequeues the oldest item; after a reclaim it returns the error, as a
// reader would see it.
func (q *queue) pop() (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0, q.err
	}
	if len(q.items) == 0 {
		return 0, nil
	}
	it := q.items[0]
	q.items = q.items[1:]
	if len(q.items) > 0 {
		q.oldest.Set(q.items[0].at)
	} else {
		q.oldest.Clear()
	}
	q.held -= it.n
	q.partn.Release(it.n)
	return it.n, nil
}

func (q *queue) Oldest() (time.Time, bool) { return q.oldest.Get() }

func (q *queue) Reclaimed(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.called++
	q.err = err
	q.oldest.Clear()
	q.items = nil
	q.held = 0
}

func (q *queue) state() (held int64, called int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held, q.called, q.err
}

func newTracker(t testing.TB, cfg Config) *Tracker {
	t.Helper()
	trk, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return trk
}

func mustAccount(t testing.TB, parent *Account, trk *Tracker, name string) *Account {
	t.Helper()
	var a *Account
	var err error
	if parent == nil {
		a, err = trk.NewAccount(name)
	} else {
		a, err = parent.NewChild(name)
	}
	if err != nil {
		t.Fatalf("new account %s: %v", name, err)
	}
	return a
}

func mustPush(t testing.TB, q *queue, n int64) {
	t.Helper()
	if err := q.push(n); err != nil {
		t.Fatalf("push %d: %v", n, err)
	}
}

// wantReclaimed checks that q was reclaimed exactly once by the collapse of
// the account named root.
func wantReclaimed(t testing.TB, name string, q *queue, root string) {
	t.Helper()
	held, called, err := q.state()
	var re *ReclaimedError
	if called != 1 || !errors.As(err, &re) || !errors.Is(err, ErrReclaimed) {
		t.Fatalf("%s: Reclaimed called %d times with %v; want once with *ReclaimedError", name, called, err)
	}
	if re.Account != root {
		t.Errorf("%s: collapsed with root %q, want %q", name, re.Account, root)
	}
	if held != 0 {
		t.Errorf("%s: still holds %d bytes", name, held)
	}
	if err := q.partn.Claim(1); !errors.Is(err, ErrReclaimed) {
		t.Errorf("%s: Claim after collapse = %v, want ErrReclaimed", name, err)
	}
	if _, err := q.pop(); !errors.Is(err, ErrReclaimed) {
		t.Errorf("%s: reader sees %v, want ErrReclaimed", name, err)
	}
}

func wantAlive(t testing.TB, name string, q *queue) {
	t.Helper()
	if _, called, err := q.state(); called != 0 || err != nil {
		t.Fatalf("%s: reclaimed (%d calls, %v), want alive", name, called, err)
	}
	if err := q.partn.Err(); err != nil {
		t.Fatalf("%s: participation error %v", name, err)
	}
}
