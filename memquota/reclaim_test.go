package memquota

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Tests that need the reclaim goroutine to have finished run in a synctest
// bubble: synctest.Wait returns once it is idle again, so nothing is timed.

func TestReclaimPicksOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 600, Now: clk.Now})
		defer trk.Close()

		// Created in the order a, b, c, d; data ages in the order b, d, a, c.
		a := newQueue(t, mustAccount(t, nil, trk, "a"))
		b := newQueue(t, mustAccount(t, nil, trk, "b"))
		c := newQueue(t, mustAccount(t, nil, trk, "c"))
		d := newQueue(t, mustAccount(t, nil, trk, "d"))
		mustPush(t, b, 200) // oldest
		clk.Advance(time.Second)
		mustPush(t, d, 200)
		clk.Advance(time.Second)
		mustPush(t, a, 200)
		mustPush(t, b, 100) // b's newer data does not make b younger
		clk.Advance(time.Second)
		mustPush(t, c, 300) // 1000: at the limit, not over
		synctest.Wait()
		if s := trk.Stats(); s.Reclaims != 0 || s.Used != 1000 {
			t.Fatalf("at the limit: %+v; want no reclaim, 1000 used", s)
		}

		clk.Advance(time.Second)
		mustPush(t, c, 1) // over: b (300) then d (200) go, leaving 501 <= 600
		synctest.Wait()

		wantReclaimed(t, "b", b, "b")
		wantReclaimed(t, "d", d, "d")
		wantAlive(t, "a", a)
		wantAlive(t, "c", c)
		var re *ReclaimedError
		_, _, err := b.state()
		errors.As(err, &re)
		if re.Age != 4*time.Second {
			t.Errorf("b's reclaimed data age = %v, want 4s", re.Age)
		}
		s := trk.Stats()
		if s.Used != 501 || s.Reclaims != 1 || s.Collapsed != 2 || s.Freed != 500 {
			t.Errorf("stats after reclaim: %+v", s)
		}
	})
}

func TestCollapsePropagatesToChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 900, Now: clk.Now})
		defer trk.Close()

		ch := mustAccount(t, nil, trk, "chan")
		circ1 := mustAccount(t, ch, trk, "circ1")
		circ2 := mustAccount(t, ch, trk, "circ2")
		s1 := mustAccount(t, circ1, trk, "s1")
		s2 := mustAccount(t, circ1, trk, "s2")
		s3 := mustAccount(t, circ2, trk, "s3")
		deep := mustAccount(t, s2, trk, "deep") // any depth
		other := mustAccount(t, nil, trk, "otherchan")

		qch, qc1, qc2 := newQueue(t, ch), newQueue(t, circ1), newQueue(t, circ2)
		qs1, qs2, qs3 := newQueue(t, s1), newQueue(t, s2), newQueue(t, s3)
		qs2b := newQueue(t, s2) // a second participant in the same account
		qdeep, qother := newQueue(t, deep), newQueue(t, other)
		mustPush(t, qc1, 100) // circuit 1's queue holds the oldest data
		clk.Advance(time.Second)
		for _, q := range []*queue{qch, qc2, qs1, qs2, qs3, qdeep, qother} {
			mustPush(t, q, 100)
		}
		mustPush(t, qs2b, 201) // 1001: over

		synctest.Wait()
		for name, q := range map[string]*queue{"circ1": qc1, "s1": qs1, "s2": qs2, "s2b": qs2b, "deep": qdeep} {
			wantReclaimed(t, name, q, "circ1")
		}
		for name, q := range map[string]*queue{"chan": qch, "circ2": qc2, "s3": qs3, "other": qother} {
			wantAlive(t, name, q)
		}
		if got := trk.Used(); got != 400 {
			t.Errorf("used %d after collapsing circ1's subtree, want 400", got)
		}
		for _, a := range []*Account{circ1, s1, s2, deep} {
			if !errors.Is(a.Err(), ErrReclaimed) {
				t.Errorf("account %s: Err() = %v", a.Name(), a.Err())
			}
			if _, err := a.NewChild("x"); !errors.Is(err, ErrReclaimed) {
				t.Errorf("NewChild on collapsed %s: %v", a.Name(), err)
			}
			if _, err := a.Register(Funcs{}); !errors.Is(err, ErrReclaimed) {
				t.Errorf("Register on collapsed %s: %v", a.Name(), err)
			}
		}
		if got, want := len(trk.Accounts()), 4; got != want {
			t.Errorf("%d accounts left, want %d: %+v", got, want, trk.Accounts())
		}

		// Now the channel's own queue is oldest: everything under it goes,
		// the unrelated channel stays.
		clk.Advance(time.Second)
		mustPush(t, qother, 601) // 1001
		synctest.Wait()
		for name, q := range map[string]*queue{"chan": qch, "circ2": qc2, "s3": qs3} {
			wantReclaimed(t, name, q, "chan")
		}
		wantAlive(t, "other", qother)
		if got := trk.Used(); got != 701 {
			t.Errorf("used %d, want 701", got)
		}
		if s := trk.Stats(); s.Collapsed != 7 || s.Accounts != 1 || len(s.TopLevel) != 1 || s.TopLevel[0].Name != "otherchan" {
			t.Errorf("stats: %+v", s)
		}
	})
}

func TestHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 500, Now: clk.Now})
		defer trk.Close()

		var qs []*queue
		for i := range 10 {
			q := newQueue(t, mustAccount(t, nil, trk, "q"+string(rune('0'+i))))
			mustPush(t, q, 100)
			clk.Advance(time.Second)
			qs = append(qs, q)
		}
		mustPush(t, qs[9], 1)
		synctest.Wait()
		// Not just below the limit: below low water. 1001 - 6*100 = 401.
		for i, q := range qs {
			if i < 6 {
				wantReclaimed(t, "q", q, "q"+string(rune('0'+i)))
			} else {
				wantAlive(t, "q", q)
			}
		}
		if got := trk.Used(); got != 401 {
			t.Fatalf("used %d after reclaim, want 401", got)
		}

		// Growing back up to the limit reclaims nothing.
		fresh := newQueue(t, mustAccount(t, nil, trk, "fresh"))
		for range 599 {
			mustPush(t, fresh, 1)
		}
		synctest.Wait()
		if s := trk.Stats(); s.Used != 1000 || s.Reclaims != 1 || s.Collapsed != 6 {
			t.Fatalf("refilled to the limit: %+v; want 1000 used and still one reclaim", s)
		}
		// Crossing it again starts a second pass.
		mustPush(t, fresh, 1)
		synctest.Wait()
		if s := trk.Stats(); s.Reclaims != 2 || s.Used > 500 {
			t.Fatalf("after crossing again: %+v", s)
		}
		wantReclaimed(t, "q6", qs[6], "q6")
	})
}

func TestNoAgeParticipantsGoLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 300, LowWater: 100, Now: clk.Now})
		defer trk.Close()

		var gotSilent error
		silentAcct := mustAccount(t, nil, trk, "silent")
		silent, err := silentAcct.Register(Funcs{ReclaimedFunc: func(err error) { gotSilent = err }})
		if err != nil {
			t.Fatal(err)
		}
		if err := silent.Claim(150); err != nil { // holds bytes, never reports an age
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		young := newQueue(t, mustAccount(t, nil, trk, "young"))
		mustPush(t, young, 151)
		synctest.Wait()
		// The participant that reports data goes first even though it is
		// younger; that is not enough (150 > 100), so the silent one goes too.
		wantReclaimed(t, "young", young, "young")
		if !errors.Is(gotSilent, ErrReclaimed) || trk.Used() != 0 {
			t.Fatalf("silent participant: %v, used %d", gotSilent, trk.Used())
		}
	})
}

func TestSetLimitStartsReclaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Now: clk.Now}) // unlimited
		defer trk.Close()
		if l := trk.Limits(); l != (Limits{}) || trk.Pressure() {
			t.Fatalf("unlimited tracker: limits %v, pressure %v", l, trk.Pressure())
		}
		old := newQueue(t, mustAccount(t, nil, trk, "old"))
		mustPush(t, old, 5000)
		clk.Advance(time.Second)
		newer := newQueue(t, mustAccount(t, nil, trk, "new"))
		mustPush(t, newer, 5000)
		synctest.Wait()
		if trk.Stats().Reclaims != 0 {
			t.Fatal("unlimited tracker reclaimed")
		}
		if err := trk.SetLimits(Limits{Limit: 8000}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantReclaimed(t, "old", old, "old")
		wantAlive(t, "new", newer)
		if l := trk.Limits(); l != (Limits{8000, 6000, 0}) {
			t.Errorf("limits %v, want 8000/6000/0", l)
		}
		if trk.Pressure() {
			t.Error("pressure at 5000 of 8000 (low water 6000)")
		}
	})
}

func TestReclaimTo(t *testing.T) {
	clk := newFakeClock()
	trk := newTracker(t, Config{Limit: 1 << 20, Now: clk.Now})
	defer trk.Close()
	var qs []*queue
	for range 5 {
		q := newQueue(t, mustAccount(t, nil, trk, "q"))
		mustPush(t, q, 100)
		clk.Advance(time.Second)
		qs = append(qs, q)
	}
	if err := trk.ReclaimTo(context.Background(), 250); err != nil {
		t.Fatal(err)
	}
	// ReclaimTo returns after the pass: no waiting needed.
	if got := trk.Used(); got != 200 {
		t.Fatalf("used %d after ReclaimTo(250), want 200", got)
	}
	wantReclaimed(t, "q0", qs[0], "q")
	wantReclaimed(t, "q2", qs[2], "q")
	wantAlive(t, "q3", qs[3])
	if err := trk.ReclaimTo(context.Background(), -1); err == nil {
		t.Error("ReclaimTo(-1) succeeded")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("app went to background")
	cancel(cause)
	if err := trk.ReclaimTo(ctx, 0); err != nil && !errors.Is(err, cause) {
		t.Errorf("ReclaimTo with cancelled ctx: %v", err)
	}
	if err := trk.Close(); err != nil {
		t.Fatal(err)
	}
	if err := trk.ReclaimTo(context.Background(), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReclaimTo after Close: %v", err)
	}
}

func TestCloseStopsReclaimGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trk := newTracker(t, Config{Limit: 100})
		q := newQueue(t, mustAccount(t, nil, trk, "q"))
		mustPush(t, q, 50)
		synctest.Wait()
		if !reclaimGoroutineRunning() {
			t.Fatal("no reclaim goroutine found before Close: the check below would prove nothing")
		}
		if err := trk.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // every goroutine in the bubble has exited or is blocked
		if reclaimGoroutineRunning() {
			t.Fatal("reclaim goroutine still there after Close")
		}
		if err := trk.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: %v, want ErrClosed", err)
		}
		// Existing participations keep accounting; nothing new can join.
		mustPush(t, q, 100)
		if trk.Used() != 150 {
			t.Errorf("used %d after Close, want 150", trk.Used())
		}
		if _, err := trk.NewAccount("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("NewAccount after Close: %v", err)
		}
		if _, err := q.partn.Account().NewChild("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("NewChild after Close: %v", err)
		}
		if _, err := q.partn.Account().Register(Funcs{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Register after Close: %v", err)
		}
	})
}

func reclaimGoroutineRunning() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Contains(string(buf), "memquota.(*Tracker).run(")
}

func TestReclaimStopsPromptlyOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 500, Now: clk.Now})

		// A survivor holding nothing yet, so it is no candidate.
		survivor := newQueue(t, mustAccount(t, nil, trk, "survivor"))

		// The oldest participant's callback closes the tracker, then pushes
		// usage back over the limit, which would take another round of
		// collapses if the pass did not stop. Close must not be called from
		// a callback (it waits for the reclaim goroutine), so it starts a
		// goroutine and carries on once Close has begun.
		closed := make(chan error, 1)
		born := clk.Now()
		first, err := mustAccount(t, nil, trk, "first").Register(Funcs{
			OldestFunc: func() (time.Time, bool) { return born, true },
			ReclaimedFunc: func(error) {
				go func() { closed <- trk.Close() }()
				<-trk.done
				if err := survivor.push(5000); err != nil {
					t.Errorf("survivor push: %v", err)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := first.Claim(100); err != nil {
			t.Fatal(err)
		}
		var qs []*queue
		for range 9 {
			clk.Advance(time.Second)
			q := newQueue(t, mustAccount(t, nil, trk, "q"))
			mustPush(t, q, 100)
			qs = append(qs, q)
		}
		if err := first.Claim(1); err != nil { // 1001: over the limit
			t.Fatal(err)
		}
		synctest.Wait()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		// One round took first and q0..q3 (1001 -> 500); every victim was
		// told even though Close came meanwhile; then the pass stopped.
		for _, q := range qs[:4] {
			wantReclaimed(t, "q", q, "q")
		}
		for _, q := range qs[4:] {
			wantAlive(t, "q", q)
		}
		wantAlive(t, "survivor", survivor)
		if s := trk.Stats(); s.Collapsed != 5 || s.Used != 5500 {
			t.Errorf("after Close mid-reclaim: %+v", s)
		}
	})
}

// gate is a participant whose Oldest blocks until opened, holding the
// reclaim goroutine still so a test can look at a waiting claim.
type gate struct {
	open chan struct{}
	at   time.Time
}

func (g *gate) Oldest() (time.Time, bool) { <-g.open; return g.at, true }
func (g *gate) Reclaimed(error)           {}

func TestHardLimitWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 500, HardLimit: 1200, Now: clk.Now})
		defer trk.Close()

		g := &gate{open: make(chan struct{}), at: clk.Now()}
		old, err := mustAccount(t, nil, trk, "old").Register(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Claim(900); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		young := newQueue(t, mustAccount(t, nil, trk, "young"))
		mustPush(t, young, 200) // 1100: over the limit, not the hard limit: no wait
		synctest.Wait()         // the reclaimer is now stuck in g.Oldest

		done := make(chan error, 1)
		go func() { done <- young.push(200) }() // 1300: over the hard limit
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("claim over the hard limit returned (%v) before anything was reclaimed", err)
		default:
		}
		if got := trk.Stats(); got.Waits != 1 || got.Used != 1300 {
			t.Fatalf("while waiting: %+v", got)
		}

		close(g.open)
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatalf("waiting claim: %v", err)
		}
		if !errors.Is(old.Err(), ErrReclaimed) {
			t.Errorf("old: %v", old.Err())
		}
		wantAlive(t, "young", young)
		if got := trk.Used(); got != 400 {
			t.Errorf("used %d, want 400", got)
		}
	})
}

func TestHardLimitWaiterCollapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 700, HardLimit: 1000, Now: clk.Now})
		defer trk.Close()
		a := newQueue(t, mustAccount(t, nil, trk, "a"))
		mustPush(t, a, 100) // oldest
		clk.Advance(time.Second)
		b := newQueue(t, mustAccount(t, nil, trk, "b"))
		mustPush(t, b, 600)
		// a's own claim goes over the hard limit; a holds the oldest data,
		// so it is collapsed while its claim waits, and the claim fails.
		err := a.push(400)
		if !errors.Is(err, ErrReclaimed) {
			t.Fatalf("claim by the collapsed waiter: %v, want ErrReclaimed", err)
		}
		synctest.Wait()
		wantReclaimed(t, "a", a, "a")
		wantAlive(t, "b", b)
		if got := trk.Used(); got != 600 {
			t.Errorf("used %d, want 600", got)
		}
	})
}

func TestHardLimitCloseReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trk := newTracker(t, Config{Limit: 100, HardLimit: 100})
		g := &gate{open: make(chan struct{})}
		p, err := mustAccount(t, nil, trk, "g").Register(g)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Claim(200) }()
		synctest.Wait() // claim waiting, reclaimer stuck in g.Oldest
		closed := make(chan error, 1)
		go func() { closed <- trk.Close() }()
		synctest.Wait()
		if err := <-done; err != nil {
			t.Errorf("waiting claim after Close: %v, want nil", err)
		}
		close(g.open)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
	})
}

func TestHardLimitWaiterReleasedByReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trk := newTracker(t, Config{Limit: 1000, LowWater: 500, HardLimit: 1000})
		defer trk.Close()
		g := &gate{open: make(chan struct{})}
		gp, err := mustAccount(t, nil, trk, "gate").Register(g)
		if err != nil {
			t.Fatal(err)
		}
		reader, _ := mustAccount(t, nil, trk, "reader").Register(Funcs{})
		writer, _ := mustAccount(t, nil, trk, "writer").Register(Funcs{})
		if err := gp.Claim(100); err != nil {
			t.Fatal(err)
		}
		if err := reader.Claim(800); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- writer.Claim(200) }() // 1100: waits
		synctest.Wait()                           // reclaimer stuck in g.Oldest
		select {
		case err := <-done:
			t.Fatalf("claim returned early: %v", err)
		default:
		}
		// The app drains a queue: usage falls below low water with
		// nothing collapsed, and the waiting claim must still wake.
		reader.Release(800)
		close(g.open)
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatalf("waiting claim: %v", err)
		}
		if s := trk.Stats(); s.Collapsed != 0 || s.Used != 300 || s.Waits != 1 {
			t.Errorf("stats: %+v", s)
		}
	})
}

func TestHardLimitWaiterClosedByOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trk := newTracker(t, Config{Limit: 1000, HardLimit: 1000})
		defer trk.Close()
		g := &gate{open: make(chan struct{})}
		defer close(g.open)
		gp, _ := mustAccount(t, nil, trk, "gate").Register(g)
		if err := gp.Claim(900); err != nil {
			t.Fatal(err)
		}
		acct := mustAccount(t, nil, trk, "stream")
		writer, _ := acct.Register(Funcs{})
		done := make(chan error, 1)
		go func() { done <- writer.Claim(200) }()
		synctest.Wait() // waiting; reclaimer stuck in g.Oldest
		acct.Close()    // the stream is torn down under its blocked writer
		synctest.Wait()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("claim of a closed account: %v, want ErrClosed", err)
		}
	})
}
