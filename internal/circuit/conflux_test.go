package circuit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestOOOAges: the out-of-order queue reports the arrival of the oldest
// cell it still holds, whatever order cells leave in, so the memory quota
// sees a set's true age (compared with a plain scan of what is held).
func TestOOOAges(t *testing.T) {
	var a oooAges
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	if _, ok := a.oldest(); ok {
		t.Fatal("empty queue has an oldest cell")
	}
	n0, n1, n2 := a.add(at(0)), a.add(at(1)), a.add(at(2))
	a.remove(n1)
	if o, ok := a.oldest(); !ok || !o.Equal(at(0)) {
		t.Fatalf("oldest %v %v, want %v", o, ok, at(0))
	}
	a.remove(n0)
	if o, ok := a.oldest(); !ok || !o.Equal(at(2)) {
		t.Fatalf("oldest %v %v after the first left, want %v", o, ok, at(2))
	}
	a.remove(n2)
	if _, ok := a.oldest(); ok {
		t.Fatal("emptied queue has an oldest cell")
	}

	rng := rand.New(rand.NewPCG(1, 2))
	held := map[uint64]time.Time{}
	for i := range 20000 {
		if len(held) == 0 || rng.IntN(3) > 0 {
			held[a.add(at(i))] = at(i)
		} else {
			// Leave in an order unrelated to arrival, as sequence
			// numbers from two legs do.
			var pick uint64
			k := rng.IntN(len(held))
			for n := range held {
				if k == 0 {
					pick = n
					break
				}
				k--
			}
			a.remove(pick)
			delete(held, pick)
		}
		var want time.Time
		for _, t := range held {
			if want.IsZero() || t.Before(want) {
				want = t
			}
		}
		got, ok := a.oldest()
		if ok != (len(held) > 0) || ok && !got.Equal(want) {
			t.Fatalf("step %d: oldest %v %v, want %v (%d held)", i, got, ok, want, len(held))
		}
	}
}

// TestOOOHeap: cells held out of order leave lowest sequence number
// first, whatever order they came in (compared with a sorted list), and
// a set under steady load allocates nothing to hold them: not per cell
// (container/heap boxed each), not for their ages.
func TestOOOHeap(t *testing.T) {
	var h oooHeap
	rng := rand.New(rand.NewPCG(3, 4))
	var want []uint64
	for range 5000 {
		if len(want) == 0 || rng.IntN(2) == 0 {
			s := rng.Uint64N(1000)
			h.push(oooCell{seq: s})
			want = append(want, s)
			slices.Sort(want)
			continue
		}
		if got := h.pop().seq; got != want[0] {
			t.Fatalf("popped %d, want %d", got, want[0])
		}
		want = want[1:]
		if h.Len() != len(want) {
			t.Fatalf("len %d, want %d", h.Len(), len(want))
		}
	}

	h = h[:0]
	var a oooAges
	now := time.Unix(1000, 0)
	var seq uint64
	step := func() {
		// Two legs: one cell ahead is held while the next arrives.
		for range 8 {
			seq++
			h.push(oooCell{seq: seq, arrival: a.add(now)})
		}
		for range 8 {
			a.remove(h.pop().arrival)
		}
	}
	for range 100 {
		step()
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("holding cells out of order allocates %v times per 8 cells", n)
	}
	// (AllocsPerRun rounds down: an ages list that grew without end would
	// pass above, so its size is checked too.)
	if c := cap(a.at); c > 64 {
		t.Errorf("ages hold %d slots for at most 8 cells", c)
	}
}
