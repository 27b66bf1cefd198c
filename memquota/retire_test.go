package memquota

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A retired account keeps its descendants' data accounted and
// reclaimable, refuses newcomers, and closes itself with its last child.
func TestRetire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 950, Now: clk.Now})
		defer trk.Close()

		ch := mustAccount(t, nil, trk, "chan")
		circ := mustAccount(t, ch, trk, "circ")
		s1 := mustAccount(t, circ, trk, "s1")
		s2 := mustAccount(t, circ, trk, "s2")
		own := newQueue(t, ch) // the channel's own queue
		q1, q2 := newQueue(t, s1), newQueue(t, s2)
		mustPush(t, q1, 100)
		mustPush(t, q2, 200)

		// The channel dies: its own queue goes, the account retires.
		own.partn.Close()
		ch.Retire()
		circ.Retire()
		if ch.Err() != nil || circ.Err() != nil {
			t.Fatalf("retired accounts with live children closed: %v, %v", ch.Err(), circ.Err())
		}
		if got := trk.Used(); got != 300 {
			t.Fatalf("used %d after retiring, want the streams' 300", got)
		}
		if _, err := ch.NewChild("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("NewChild on a retired account: %v, want ErrClosed", err)
		}
		if _, err := circ.Register(Funcs{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Register on a retired account: %v, want ErrClosed", err)
		}
		// Existing participants still claim, and over the limit the oldest
		// data below the retired accounts is reclaimed.
		clk.Advance(time.Second)
		mustPush(t, q2, 701) // 1001
		synctest.Wait()
		wantReclaimed(t, "s1", q1, "s1")
		if ch.Err() != nil || circ.Err() != nil {
			t.Fatalf("retired parents closed while s2 lives: %v, %v", ch.Err(), circ.Err())
		}
		if got := trk.Used(); got != 901 {
			t.Fatalf("used %d, want 901 (s1's 100 freed reaches low water)", got)
		}

		// The last stream closes: the circuit and then the channel account
		// close themselves.
		if got := trk.Stats(); got.Accounts == 0 {
			t.Fatalf("accounts gone too early: %+v", got)
		}
		s2.Close()
		if !errors.Is(circ.Err(), ErrClosed) || !errors.Is(ch.Err(), ErrClosed) {
			t.Fatalf("after the last child closed: circ %v, chan %v; want ErrClosed", circ.Err(), ch.Err())
		}
		if got := trk.Stats(); got.Accounts != 0 || got.Used != 0 || len(got.TopLevel) != 0 {
			t.Fatalf("stats after everything closed: %+v", got)
		}
	})
}

// An empty account closes at once when retired, and a retired account's
// collapse by reclamation prunes its retired parent.
func TestRetireEmptyAndPruneAfterCollapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 100, LowWater: 50, Now: clk.Now})
		defer trk.Close()

		empty := mustAccount(t, nil, trk, "empty")
		empty.Retire()
		if !errors.Is(empty.Err(), ErrClosed) {
			t.Fatalf("retired empty account: %v, want ErrClosed", empty.Err())
		}
		empty.Retire() // no-op

		ch := mustAccount(t, nil, trk, "chan")
		s := mustAccount(t, ch, trk, "s")
		q := newQueue(t, s)
		ch.Retire()
		mustPush(t, q, 101) // over: s is collapsed, and ch, retired and now empty, closes
		synctest.Wait()
		wantReclaimed(t, "s", q, "s")
		if !errors.Is(ch.Err(), ErrClosed) {
			t.Fatalf("retired parent of a collapsed child: %v, want ErrClosed", ch.Err())
		}
		if got := trk.Stats(); got.Accounts != 0 || got.Used != 0 {
			t.Fatalf("stats: %+v", got)
		}
	})
}

// ClaimNoWait goes over the hard limit without waiting, and wakes
// reclamation.
func TestClaimNoWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 100, LowWater: 60, HardLimit: 100, Now: clk.Now})
		defer trk.Close()
		old := newQueue(t, mustAccount(t, nil, trk, "old"))
		mustPush(t, old, 90)
		clk.Advance(time.Second)
		p, err := mustAccount(t, nil, trk, "young").Register(Funcs{})
		if err != nil {
			t.Fatal(err)
		}
		// 90 + 60 is over the hard limit; ClaimNoWait returns at once
		// (a waiting Claim would block this goroutine: synctest would
		// report the deadlock).
		if err := p.ClaimNoWait(60); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantReclaimed(t, "old", old, "old")
		if got := trk.Stats(); got.Used != 60 || got.Waits != 0 || got.Peak != 150 {
			t.Fatalf("stats: %+v", got)
		}
		if err := p.ClaimNoWait(-1); err == nil {
			t.Error("negative ClaimNoWait accepted")
		}
	})
}

// ReclaimedError numbers collapses in order and carries the victim's data
// time.
func TestReclaimedErrorSeqAndOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		trk := newTracker(t, Config{Limit: 1000, LowWater: 101, Now: clk.Now})
		defer trk.Close()
		var qs []*queue
		var times []time.Time
		for _, name := range []string{"a", "b", "c"} {
			q := newQueue(t, mustAccount(t, nil, trk, name))
			times = append(times, clk.Now())
			mustPush(t, q, 300)
			qs = append(qs, q)
			clk.Advance(time.Second)
		}
		young := newQueue(t, mustAccount(t, nil, trk, "young"))
		mustPush(t, young, 101) // 1001: a, b, c go (to 101)
		synctest.Wait()
		for i, q := range qs {
			_, _, err := q.state()
			var re *ReclaimedError
			if !errors.As(err, &re) {
				t.Fatalf("queue %d: %v", i, err)
			}
			if re.Seq != uint64(i+1) || !re.Oldest.Equal(times[i]) || re.Age != time.Duration(3-i)*time.Second {
				t.Errorf("queue %d: Seq %d Oldest %v Age %v; want %d, %v, %v", i, re.Seq, re.Oldest, re.Age, i+1, times[i], time.Duration(3-i)*time.Second)
			}
		}
		// The next collapse continues the numbering.
		mustPush(t, young, 900)
		synctest.Wait()
		_, _, err := young.state()
		var re *ReclaimedError
		if !errors.As(err, &re) || re.Seq != 4 {
			t.Fatalf("fourth collapse: %v", err)
		}
	})
}
