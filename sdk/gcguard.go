package sdk

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// The Go memory limit the client sets (MemoryPlan.GoLimit) bounds the heap
// by collecting more often. When the live heap comes close to it (a
// full-scale bootstrap holds the parsed consensus, the view being built and
// badger's memtable at once: about 8 MB at the 16 MiB budget's 14 MiB
// limit), the collector runs after every few kilobytes allocated: on a slow
// link it ran 70 times a second for minutes, and a cold bootstrap over GPRS
// cost 39 s of CPU where C tor used 1 s. gcGuard trades a little memory for
// that CPU: when the collector's share of the process's CPU is high while
// the live heap is close to the limit, it raises the limit in steps (up to
// twice the plan's), and brings it back once the heap has shrunk. Raising
// is reported in the log and in Stats().Memory.GoMemoryLimit.
const (
	// gcGuardEvery is the period over which the collector's share is
	// measured, and how often it is checked while the collector is busy.
	gcGuardEvery = time.Second
	// gcGuardMaxShare is the collector's share of one core, over the last
	// period, above which the limit is raised (the runtime itself only
	// steps in at 50 % of all cores).
	gcGuardMaxShare = 0.05
	// gcGuardLiveNear is how close the live heap must be to the limit,
	// as a fraction of it, for the collector's work to be the limit's
	// doing.
	gcGuardLiveNear = 0.5
	// gcGuardStep is how much a raise adds, as a fraction of the plan's
	// limit; gcGuardMaxFactor bounds the raised limit.
	gcGuardStep      = 0.25
	gcGuardMaxFactor = 2.0
)

// gcGuardDecide returns the limit for the next period, given the plan's
// limit base, the limit now cur, the live heap after the last collection,
// and the collector's CPU share of one core over the last period.
func gcGuardDecide(base, cur, live int64, gcShare float64) int64 {
	step := int64(float64(base) * gcGuardStep)
	top := int64(float64(base) * gcGuardMaxFactor)
	switch {
	case gcShare > gcGuardMaxShare && float64(live) > gcGuardLiveNear*float64(cur) && cur < top:
		return min(cur+step, top)
	case cur > base && gcShare < gcGuardMaxShare/4 && float64(live) < gcGuardLiveNear*float64(cur-step):
		return max(cur-step, base)
	}
	return cur
}

var gcGuardMetrics = []string{"/cpu/classes/gc/total:cpu-seconds", "/gc/heap/live:bytes"}

// gcGuardChecked, when set (by tests), is called after each of gcGuard's
// checks.
var gcGuardChecked func()

// gcGuard adjusts the Go memory limit until ctx ends, as long as the limit
// is still the one it set (an app that sets its own takes over). cur holds
// the limit in force. It checks every gcGuardEvery while the collector is
// busy or the limit is raised; otherwise it sleeps until the next
// collection ends (gcCycles), then checks the period after it. An idle
// client collects rarely (the runtime forces a cycle every two minutes),
// so the guard does not wake it every second, which a ticker did: on a
// phone, every wake-up of an idle app costs battery.
func gcGuard(ctx context.Context, base int64, cur *atomic.Int64, logf func(string, ...any)) {
	s := make([]metrics.Sample, len(gcGuardMetrics))
	for i, n := range gcGuardMetrics {
		s[i].Name = n
	}
	read := func() (gcCPU float64, live int64) {
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindFloat64 {
			gcCPU = s[0].Value.Float64()
		}
		if s[1].Value.Kind() == metrics.KindUint64 {
			live = int64(s[1].Value.Uint64())
		}
		return gcCPU, live
	}
	cycles, stop := gcCycles()
	defer stop()
	t := time.NewTimer(gcGuardEvery)
	defer t.Stop()
	lastCPU, _ := read()
	last := time.Now()
	watching := true // the client is starting: a bootstrap may follow
	for {
		if !watching {
			select {
			case <-cycles: // a cycle ended while watching: already counted
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-cycles:
			}
			lastCPU, _ = read()
			last = time.Now()
			t.Reset(gcGuardEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		gcCPU, live := read()
		share := (gcCPU - lastCPU) / now.Sub(last).Seconds()
		lastCPU, last = gcCPU, now
		limit := cur.Load()
		if debug.SetMemoryLimit(-1) != limit {
			return // someone else set it
		}
		next := gcGuardDecide(base, limit, live, share)
		if next != limit {
			debug.SetMemoryLimit(next)
			cur.Store(next)
			logf("onionlite: Go memory limit %d → %d bytes (collector at %.0f%% of a core, live heap %d bytes)", limit, next, 100*share, live)
		}
		if f := gcGuardChecked; f != nil {
			f()
		}
		watching = next > base || share >= gcGuardMaxShare/4
		if watching {
			t.Reset(gcGuardEvery)
		}
	}
}

// gcSentinel is what gcCycles watches being collected. It holds a
// pointer so that the allocator does not batch it with other tiny
// objects (a batched object's cleanup may never run).
type gcSentinel struct {
	p *gcSentinel
	_ [16]byte
}

// gcCycles returns a channel that receives after garbage collections
// (without blocking: one pending value stands for any number of cycles)
// until stop is called. Each cycle collects the unreachable sentinel, its
// cleanup signals and arms a new one for the next cycle; an idle process
// wakes no more often than it collects.
func gcCycles() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	var stopped atomic.Bool
	var arm func()
	arm = func() {
		runtime.AddCleanup(&gcSentinel{}, func(struct{}) {
			if stopped.Load() {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
			arm()
		}, struct{}{})
	}
	arm()
	return ch, func() { stopped.Store(true) }
}
