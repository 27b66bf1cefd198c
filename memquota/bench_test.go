package memquota

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

const cellLen = 514 // a link-protocol-4 fixed cell, the usual claim size

func BenchmarkClaimRelease(b *testing.B) {
	trk := newTracker(b, Config{Limit: 1 << 30})
	defer trk.Close()
	p, err := mustAccount(b, nil, trk, "a").Register(Funcs{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Claim(cellLen); err != nil {
			b.Fatal(err)
		}
		p.Release(cellLen)
	}
	if trk.Used() != 0 {
		b.Fatalf("used %d", trk.Used())
	}
}

// Each goroutine has its own participation, as each queue would: only the
// tracker's total is shared.
func BenchmarkClaimReleaseParallel(b *testing.B) {
	trk := newTracker(b, Config{Limit: 1 << 30})
	defer trk.Close()
	a := mustAccount(b, nil, trk, "a")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		p, err := a.Register(Funcs{})
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := p.Claim(cellLen); err != nil {
				b.Error(err)
				return
			}
			p.Release(cellLen)
		}
	})
}

// One participation shared by every goroutine (a queue with many writers).
func BenchmarkClaimReleaseSharedParallel(b *testing.B) {
	trk := newTracker(b, Config{Limit: 1 << 30})
	defer trk.Close()
	p, err := mustAccount(b, nil, trk, "a").Register(Funcs{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Claim(cellLen); err != nil {
				b.Error(err)
				return
			}
			p.Release(cellLen)
		}
	})
}

// BenchmarkReclaimOne measures one reclamation pass among n participants
// that all hold data: asking each for its age, sorting, collapsing the
// oldest and telling it; plus making a replacement account.
func BenchmarkReclaimOne(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			clk := newFakeClock()
			trk := newTracker(b, Config{Limit: 1 << 40, Now: clk.Now})
			defer trk.Close()
			for range n {
				mustPush(b, newQueue(b, mustAccount(b, nil, trk, "q")), cellLen)
				clk.Advance(1)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := trk.ReclaimTo(ctx, trk.Used()-1); err != nil {
					b.Fatal(err)
				}
				mustPush(b, newQueue(b, mustAccount(b, nil, trk, "q")), cellLen)
				clk.Advance(1)
			}
			if got := trk.Stats().Participants; got != n {
				b.Fatalf("%d participants, want %d", got, n)
			}
		})
	}
}

// BenchmarkFlood has producers pushing cells into streams nobody reads,
// with a 1 MiB limit; collapsed streams are replaced. It reports how far
// usage went over the limit before reclamation caught up ("over-limit",
// bytes: the slack to budget beyond the quota), without and with a hard
// limit 1/8 above the limit.
func BenchmarkFlood(b *testing.B) {
	const limit = 1 << 20
	for _, hard := range []int64{0, limit + limit/8} {
		for _, producers := range []int{1, 4, 16} {
			name := fmt.Sprintf("soft/%d", producers)
			if hard != 0 {
				name = fmt.Sprintf("hard/%d", producers)
			}
			b.Run(name, func(b *testing.B) { benchFlood(b, limit, hard, producers) })
		}
	}
}

func benchFlood(b *testing.B, limit, hard int64, producers int) {
	clk := newFakeClock()
	trk := newTracker(b, Config{Limit: limit, HardLimit: hard, Now: clk.Now})
	defer trk.Close()
	b.ReportAllocs()
	var wg sync.WaitGroup
	per := b.N/producers + 1
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := must(trk.NewAccount(fmt.Sprint("ch", w)))
			var q *queue
			for i := 0; i < per; i++ {
				if q == nil || q.push(cellLen) != nil {
					if ch.Err() != nil {
						ch = must(trk.NewAccount(fmt.Sprint("ch", w)))
					}
					q = nil
					if st, err := ch.NewChild("stream"); err == nil {
						q, _ = tryQueue(st)
					}
				}
				if i%256 == 0 {
					clk.Advance(1)
				}
			}
		}()
	}
	wg.Wait()
	s := trk.Stats()
	b.ReportMetric(float64(max(s.Peak-limit, 0)), "over-limit")
	b.ReportMetric(float64(s.Collapsed)/float64(b.N), "collapses/op")
}

func must(a *Account, err error) *Account {
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return a
}
