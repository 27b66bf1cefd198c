package memquota

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		in             Limits
		want           Limits
		wantErrContain string
	}{
		{Limits{}, Limits{}, ""},
		{Limits{1000, 0, 0}, Limits{1000, 750, 0}, ""},
		{Limits{1000, 10, 0}, Limits{1000, 10, 0}, ""},
		{Limits{1000, 999, 0}, Limits{1000, 999, 0}, ""},
		{Limits{1000, 0, 1000}, Limits{1000, 750, 1000}, ""},
		{Limits{1000, 0, 1200}, Limits{1000, 750, 1200}, ""},
		{Limits{1000, 1000, 0}, Limits{}, "not below limit"},
		{Limits{1000, 2000, 0}, Limits{}, "not below limit"},
		{Limits{1000, 0, 999}, Limits{}, "hard limit 999 below limit"},
		{Limits{-1, 0, 0}, Limits{}, "negative limit"},
		{Limits{1000, -1, 0}, Limits{}, "negative low-water"},
		{Limits{1000, 0, -1}, Limits{}, "negative hard"},
		{Limits{0, 10, 0}, Limits{}, "without a limit"},
		{Limits{0, 0, 10}, Limits{}, "without a limit"},
	} {
		name := fmt.Sprint(tc.in)
		trk, err := New(Config{Limit: tc.in.Limit, LowWater: tc.in.LowWater, HardLimit: tc.in.HardLimit})
		if tc.wantErrContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContain) {
				t.Errorf("%s: err %v, want %q", name, err, tc.wantErrContain)
			}
			if trk != nil {
				t.Errorf("%s: tracker returned with error", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := trk.Limits(); got != tc.want {
			t.Errorf("%s: limits %v, want %v", name, got, tc.want)
		}
		if err := trk.SetLimits(Limits{Limit: -5}); err == nil {
			t.Errorf("%s: SetLimits(-5) accepted", name)
		}
		if got := trk.Limits(); got != tc.want {
			t.Errorf("%s: failed SetLimits changed limits to %v", name, got)
		}
		trk.Close()
	}
}

func TestAccountingNeverNegative(t *testing.T) {
	var logs []string
	var mu sync.Mutex
	trk := newTracker(t, Config{Limit: 1 << 20, Logf: func(f string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	defer trk.Close()
	a := mustAccount(t, nil, trk, "acct")
	p, err := a.Register(Funcs{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := a.Register(Funcs{})
	if err := other.Claim(1000); err != nil {
		t.Fatal(err)
	}

	if err := p.Claim(100); err != nil {
		t.Fatal(err)
	}
	p.Release(300) // bug: 200 more than held
	if p.Used() != 0 || trk.Used() != 1000 {
		t.Fatalf("after over-release: participation %d, tracker %d; want 0, 1000 (other's bytes untouched)", p.Used(), trk.Used())
	}
	p.Release(-5) // bug: negative
	p.Release(1)  // bug: nothing held
	if p.Used() != 0 || trk.Used() != 1000 {
		t.Fatalf("after bad releases: participation %d, tracker %d", p.Used(), trk.Used())
	}
	if got := trk.Stats().BadReleases; got != 3 {
		t.Errorf("BadReleases = %d, want 3", got)
	}
	mu.Lock()
	if len(logs) != 3 || !strings.Contains(logs[0], "BUG") || !strings.Contains(logs[0], `"acct"`) {
		t.Errorf("bug reports: %q", logs)
	}
	mu.Unlock()

	if err := p.Claim(-1); err == nil {
		t.Error("negative Claim accepted")
	}
	if err := p.Claim(MaxClaim + 1); err == nil {
		t.Error("huge Claim accepted")
	}
	if err := p.Claim(0); err != nil {
		t.Errorf("Claim(0): %v", err)
	}
	if p.Used() != 0 || trk.Used() != 1000 {
		t.Fatalf("after rejected claims: participation %d, tracker %d", p.Used(), trk.Used())
	}

	// Release after close is not a bug and changes nothing.
	if err := p.Claim(50); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if trk.Used() != 1000 {
		t.Fatalf("Close did not forget the participation's bytes: %d", trk.Used())
	}
	p.Release(50)
	if trk.Used() != 1000 || trk.Stats().BadReleases != 3 {
		t.Fatalf("release after close: used %d, %+v", trk.Used(), trk.Stats())
	}
	if err := p.Claim(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim after Participation.Close: %v", err)
	}
	if err := p.Claim(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim(0) after Participation.Close: %v", err)
	}
	p.Close() // twice: nothing
	if err := other.Err(); err != nil {
		t.Errorf("closing one participation broke another: %v", err)
	}
}

func TestAccountClose(t *testing.T) {
	trk := newTracker(t, Config{Limit: 1 << 20})
	defer trk.Close()
	ch := mustAccount(t, nil, trk, "chan")
	circ := mustAccount(t, ch, trk, "circ")
	st := mustAccount(t, circ, trk, "stream")
	sibling := mustAccount(t, ch, trk, "sibling")
	qc, qs, qsib := newQueue(t, circ), newQueue(t, st), newQueue(t, sibling)
	mustPush(t, qc, 10)
	mustPush(t, qs, 20)
	mustPush(t, qsib, 40)
	if got := ch.Used(); got != 70 {
		t.Fatalf("channel subtree uses %d, want 70", got)
	}

	circ.Close()
	if trk.Used() != 40 || ch.Used() != 40 {
		t.Fatalf("after closing the circuit: tracker %d, channel %d; want 40", trk.Used(), ch.Used())
	}
	for _, q := range []*queue{qc, qs} {
		if err := q.push(1); !errors.Is(err, ErrClosed) {
			t.Errorf("push after Close: %v", err)
		}
		if _, called, _ := q.state(); called != 0 {
			t.Error("Close called Reclaimed")
		}
	}
	if !errors.Is(st.Err(), ErrClosed) {
		t.Errorf("child of closed account: %v", st.Err())
	}
	if _, err := st.NewChild("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("NewChild under closed account: %v", err)
	}
	circ.Close() // twice: nothing
	wantAlive(t, "sibling", qsib)
	if s := trk.Stats(); s.Accounts != 2 || s.Participants != 1 || s.Collapsed != 0 {
		t.Errorf("stats: %+v", s)
	}
	ch.Close()
	if s := trk.Stats(); s.Used != 0 || s.Accounts != 0 || s.Participants != 0 || len(s.TopLevel) != 0 {
		t.Errorf("stats after closing everything: %+v", s)
	}
}

func TestRegisterNil(t *testing.T) {
	trk := newTracker(t, Config{})
	defer trk.Close()
	a := mustAccount(t, nil, trk, "a")
	if _, err := a.Register(nil); err == nil {
		t.Error("Register(nil) accepted")
	}
}

func TestStatsAndAccounts(t *testing.T) {
	clk := newFakeClock()
	trk := newTracker(t, Config{Limit: 1 << 20, LowWater: 1 << 19, Now: clk.Now})
	defer trk.Close()
	ch1 := mustAccount(t, nil, trk, "ch1")
	dir := mustAccount(t, nil, trk, "dir")
	circ := mustAccount(t, ch1, trk, "circ")
	st1 := mustAccount(t, circ, trk, "st1")
	st2 := mustAccount(t, circ, trk, "st2")
	mustPush(t, newQueue(t, ch1), 1)
	mustPush(t, newQueue(t, circ), 10)
	mustPush(t, newQueue(t, st1), 100)
	q2 := newQueue(t, st2)
	mustPush(t, q2, 1000)
	mustPush(t, newQueue(t, st2), 1000)
	mustPush(t, newQueue(t, dir), 5)
	if _, err := q2.pop(); err != nil {
		t.Fatal(err)
	}

	s := trk.Stats()
	want := Stats{Used: 1116, Peak: 2116, Limit: 1 << 20, LowWater: 1 << 19, Accounts: 5, Participants: 6,
		TopLevel: []AccountUsage{{ID: ch1.ID(), Name: "ch1", Used: 1111}, {ID: dir.ID(), Name: "dir", Used: 5}}}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Errorf("Stats:\n got %+v\nwant %+v", s, want)
	}

	got := trk.Accounts()
	wantAccts := []AccountInfo{
		{ID: ch1.ID(), Depth: 0, Name: "ch1", Participants: 1, Used: 1, SubtreeUsed: 1111},
		{ID: circ.ID(), Parent: ch1.ID(), Depth: 1, Name: "circ", Participants: 1, Used: 10, SubtreeUsed: 1110},
		{ID: st1.ID(), Parent: circ.ID(), Depth: 2, Name: "st1", Participants: 1, Used: 100, SubtreeUsed: 100},
		{ID: st2.ID(), Parent: circ.ID(), Depth: 2, Name: "st2", Participants: 2, Used: 1000, SubtreeUsed: 1000},
		{ID: dir.ID(), Depth: 0, Name: "dir", Participants: 1, Used: 5, SubtreeUsed: 5},
	}
	if fmt.Sprint(got) != fmt.Sprint(wantAccts) {
		t.Errorf("Accounts:\n got %+v\nwant %+v", got, wantAccts)
	}
}

// TestConcurrent hammers one tracker from many goroutines, each building
// channel → circuit → stream accounts and pushing and popping, with a
// limit low enough that reclamation keeps collapsing them. Run with -race.
// At the end the tracker's books must match the queues' own exactly.
func TestConcurrent(t *testing.T) {
	t.Run("soft", func(t *testing.T) { testConcurrent(t, 0) })
	// With a hard limit, usage can pass it only by the claims in flight:
	// at most one per worker.
	t.Run("hard", func(t *testing.T) { testConcurrent(t, 72<<10) })
}

func testConcurrent(t *testing.T, hard int64) {
	const (
		workers  = 16
		ops      = 1500
		maxClaim = 1024
	)
	clk := newFakeClock()
	trk := newTracker(t, Config{Limit: 64 << 10, LowWater: 32 << 10, HardLimit: hard, Now: clk.Now})
	defer trk.Close()

	var negative atomic.Bool
	stop := make(chan struct{})
	var observers sync.WaitGroup
	observers.Add(1)
	go func() { // readers of stats race with everything else
		defer observers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if trk.Used() < 0 {
				negative.Store(true)
			}
			s := trk.Stats()
			for _, a := range trk.Accounts() {
				if a.Used < 0 || a.SubtreeUsed < a.Used {
					negative.Store(true)
				}
			}
			if s.Used < 0 {
				negative.Store(true)
			}
		}
	}()

	var mu sync.Mutex
	var live []*queue
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var ch, circ *Account
			var qs []*queue
			for i := 0; i < ops; i++ {
				if ch == nil || ch.Err() != nil {
					var err error
					if ch, err = trk.NewAccount(fmt.Sprint("ch", w)); err != nil {
						t.Error(err)
						return
					}
					circ, qs = nil, nil
				}
				if circ == nil || circ.Err() != nil {
					var err error
					if circ, err = ch.NewChild("circ"); err != nil {
						continue // the channel collapsed meanwhile
					}
					qs = qs[:0]
					if q, ok := tryQueue(circ); ok {
						qs = append(qs, q)
					}
				}
				switch op := r.IntN(10); {
				case op == 0:
					if st, err := circ.NewChild("stream"); err == nil {
						if q, ok := tryQueue(st); ok {
							qs = append(qs, q)
						}
					}
				case op < 6 && len(qs) > 0:
					if err := qs[r.IntN(len(qs))].push(int64(1 + r.IntN(maxClaim))); err != nil && !errors.Is(err, ErrReclaimed) {
						t.Errorf("push: %v", err)
					}
				case len(qs) > 0:
					if _, err := qs[r.IntN(len(qs))].pop(); err != nil && !errors.Is(err, ErrReclaimed) {
						t.Errorf("pop: %v", err)
					}
				}
				if i%64 == 0 {
					clk.Advance(time.Millisecond)
				}
			}
			mu.Lock()
			live = append(live, qs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	observers.Wait()
	if negative.Load() {
		t.Fatal("some usage was seen negative")
	}
	// Drain the reclaim goroutine, so nothing is in flight.
	synctestFree(t, trk)

	s := trk.Stats()
	if s.Reclaims == 0 || s.Collapsed == 0 {
		t.Fatalf("the limit was never crossed, the test proves little: %+v", s)
	}
	var held int64
	for _, q := range live {
		h, _, err := q.state()
		if err == nil && q.partn.Err() == nil {
			held += h
			if h != q.partn.Used() {
				t.Errorf("queue holds %d, participation says %d", h, q.partn.Used())
			}
		}
	}
	// Queues not in live (dropped by their worker) still hold claims too;
	// sum every participation the tracker knows.
	var known int64
	trk.mu.Lock()
	for p := range trk.parts {
		known += p.Used()
	}
	trk.mu.Unlock()
	if known != s.Used {
		t.Errorf("tracker total %d != sum of participations %d", s.Used, known)
	}
	if held > known {
		t.Errorf("live queues hold %d > tracked %d", held, known)
	}
	for _, a := range trk.Accounts() {
		if a.Depth == 0 {
			trk.accountByID(a.ID).Close()
		}
	}
	if s := trk.Stats(); s.Used != 0 || s.Accounts != 0 || s.Participants != 0 {
		t.Errorf("after closing every account: %+v", s)
	}
	if hard != 0 && s.Peak > hard+workers*maxClaim {
		t.Errorf("peak %d above hard limit %d + %d workers * %d", s.Peak, hard, workers, maxClaim)
	}
	t.Logf("%d reclaim passes collapsed %d accounts, %d claims waited; peak %d of limit %d, hard limit %d",
		s.Reclaims, s.Collapsed, s.Waits, s.Peak, s.Limit, s.HardLimit)
}

func tryQueue(a *Account) (*queue, bool) {
	q := &queue{trk: a.t}
	p, err := a.Register(q)
	if err != nil {
		return nil, false
	}
	q.mu.Lock()
	q.partn = p
	q.mu.Unlock()
	return q, true
}

// synctestFree waits for the reclaim goroutine to finish any pass: a
// ReclaimTo request is only taken once it is back in its loop.
func synctestFree(t *testing.T, trk *Tracker) {
	t.Helper()
	req := reclaimRequest{target: 1 << 62, done: make(chan struct{})}
	trk.reqs <- req
	<-req.done
}

func (t *Tracker) accountByID(id uint64) *Account {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a := range t.top {
		if a.id == id {
			return a
		}
	}
	return nil
}

// A package given no tracker calls the same methods; they all succeed.
func TestNilAccountsNothing(t *testing.T) {
	var trk *Tracker
	a, err := trk.NewAccount("chan")
	if a != nil || err != nil {
		t.Fatalf("nil tracker NewAccount: %v, %v", a, err)
	}
	c, err := a.NewChild("circ")
	if c != nil || err != nil {
		t.Fatalf("nil account NewChild: %v, %v", c, err)
	}
	p, err := c.Register(Funcs{})
	if p != nil || err != nil {
		t.Fatalf("nil account Register: %v, %v", p, err)
	}
	if _, err := c.Register(nil); err == nil {
		t.Error("Register(nil) on nil account accepted")
	}
	if err := p.Claim(100); err != nil {
		t.Errorf("nil Claim: %v", err)
	}
	if err := p.Claim(-1); err == nil {
		t.Error("nil participation accepted a negative claim")
	}
	p.Release(100)
	if p.Used() != 0 || p.Err() != nil || p.Account() != nil || a.Err() != nil || a.Used() != 0 ||
		a.Name() != "" || a.ID() != 0 || a.Tracker() != nil || trk.Used() != 0 || trk.Pressure() ||
		trk.Limits() != (Limits{}) || trk.Accounts() != nil || trk.Now().IsZero() {
		t.Error("nil values report something")
	}
	if s := trk.Stats(); fmt.Sprint(s) != fmt.Sprint(Stats{}) {
		t.Errorf("nil Stats: %+v", s)
	}
	if err := trk.ReclaimTo(t.Context(), 0); err != nil {
		t.Errorf("nil ReclaimTo: %v", err)
	}
	if err := trk.SetLimits(Limits{Limit: 1}); err == nil {
		t.Error("nil SetLimits succeeded")
	}
	p.Close()
	a.Close()
	if err := trk.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}
