package sdk

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// TestGCGuardDecide: the limit rises in steps while the collector is busy
// near it, never past twice the plan's, and comes back down in steps once
// the heap is small and the collector idle; a busy collector far from the
// limit (a heap the limit does not constrain) changes nothing.
func TestGCGuardDecide(t *testing.T) {
	const base = 14 << 20
	step := int64(base / 4)
	cases := []struct {
		name      string
		cur, live int64
		share     float64
		want      int64
	}{
		{"idle", base, 4 << 20, 0.001, base},
		{"thrashing near the limit", base, 8 << 20, 0.2, base + step},
		{"still thrashing", base + step, 12 << 20, 0.2, base + 2*step},
		{"at the top", 2 * base, 20 << 20, 0.5, 2 * base},
		{"busy far from the limit", base, 2 << 20, 0.3, base},
		{"calm, small heap: back down", base + 2*step, 3 << 20, 0.001, base + step},
		{"calm, heap still large: stay", base + 2*step, 9 << 20, 0.001, base + 2*step},
		{"never below the plan", base, 1 << 20, 0, base},
	}
	for _, c := range cases {
		if got := gcGuardDecide(base, c.cur, c.live, c.share); got != c.want {
			t.Errorf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
}

// runGuard sets the Go memory limit to base and runs gcGuard from it
// until the test ends; it returns the guard's check count (through the
// gcGuardChecked hook) and the limit the guard keeps.
func runGuard(t *testing.T, base int64) (checks, cur *atomic.Int64) {
	old := debug.SetMemoryLimit(base)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	checks, cur = new(atomic.Int64), new(atomic.Int64)
	gcGuardChecked = func() { checks.Add(1) }
	t.Cleanup(func() { gcGuardChecked = nil })
	cur.Store(base)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		gcGuard(ctx, base, cur, t.Logf)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return checks, cur
}

// TestGCGuardSleepsWhileIdle: with the collector idle and the limit at
// the plan's, the guard checks no more often than collections happen
// (a ticker would check every second), and a collection wakes it for a
// check.
func TestGCGuardSleepsWhileIdle(t *testing.T) {
	const base = 1 << 40 // far above the heap: the guard never raises it
	checks, cur := runGuard(t, base)

	waitChecks := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for checks.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("no check %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitChecks("at start", 1) // the first period is always checked

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcBefore, before := ms.NumGC, checks.Load()
	time.Sleep(4 * gcGuardEvery)
	runtime.ReadMemStats(&ms)
	gcs, got := int64(ms.NumGC-gcBefore), checks.Load()-before
	if got > gcs {
		t.Fatalf("%d checks in %v with %d collections: the guard polls while idle", got, 4*gcGuardEvery, gcs)
	}

	n := checks.Load()
	runtime.GC()
	waitChecks("after a collection", n+1)
	if cur.Load() != base || debug.SetMemoryLimit(-1) != base {
		t.Fatalf("limit changed: %d", cur.Load())
	}
}

// TestGCGuardWakesForPressure: a guard asleep for lack of collections
// wakes when the collector starts working hard near the limit and raises
// the limit.
func TestGCGuardWakesForPressure(t *testing.T) {
	const base = 16 << 20
	checks, cur := runGuard(t, base)
	for checks.Load() < 1 { // the start's check; then it sleeps
		time.Sleep(10 * time.Millisecond)
	}

	// A live heap of 12 MiB under a 16 MiB limit, and garbage: the
	// collector runs after every few MB allocated.
	live := make([][]byte, 12)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		for j := range live[i] {
			live[i][j] = byte(j)
		}
	}
	var sink []byte
	deadline := time.Now().Add(20 * time.Second)
	for cur.Load() == base && time.Now().Before(deadline) {
		for range 64 {
			sink = make([]byte, 64<<10)
		}
	}
	runtime.KeepAlive(live)
	runtime.KeepAlive(sink)
	if cur.Load() == base || debug.SetMemoryLimit(-1) != cur.Load() {
		t.Fatalf("limit still %d (in force %d) after 20 s of collecting near it", cur.Load(), debug.SetMemoryLimit(-1))
	}
}
