package circmgr

import (
	"math"
	"slices"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// Circuit build timeout learning (path-spec 2.4).
const (
	cbtMaxTimes = 1000 // build times kept (path-spec 2.4.2)
	cbtBinMs    = 10   // histogram bin width for the modes
)

// cbtParams are the consensus parameters of path-spec 2.4.6.
type cbtParams struct {
	disabled                bool
	numModes                int
	recentCount             int
	maxTimeouts             int
	minCircs                int
	quantile, closeQuantile float64
	minTimeout, initial     time.Duration
}

func cbtParamsFrom(p netdir.Params) cbtParams {
	q := p.Get(netdir.ParamCbtQuantile)
	cq := max(p.Get(netdir.ParamCbtCloseQuantile), q)
	minT := time.Duration(p.Get(netdir.ParamCbtMinTimeout)) * time.Millisecond
	return cbtParams{
		disabled:      p.Get(netdir.ParamCbtDisabled) == 1,
		numModes:      int(p.Get(netdir.ParamCbtNumModes)),
		recentCount:   int(p.Get(netdir.ParamCbtRecentCount)),
		maxTimeouts:   int(p.Get(netdir.ParamCbtMaxTimeouts)),
		minCircs:      int(p.Get(netdir.ParamCbtMinCircs)),
		quantile:      float64(q) / 100,
		closeQuantile: float64(cq) / 100,
		minTimeout:    minT,
		initial:       max(time.Duration(p.Get(netdir.ParamCbtInitialTimeout))*time.Millisecond, minT),
	}
}

// buildTimes learns the circuit build timeout: the build times of recent
// three-hop circuits are fitted with a Pareto distribution whose Xm is the
// weighted mean of the most frequent 10 ms bins; the usage timeout is its
// cbtquantile point and the close timeout its cbtclosequantile point.
// Before cbtmincircs build times are known both are cbtinitialtimeout. Too
// many timeouts among the recent builds (the network changed) discard the
// history. It is not safe for concurrent use.
type buildTimes struct {
	p     cbtParams
	fixed time.Duration // Config.BuildTimeout

	times []uint32 // ms, a ring of at most cbtMaxTimes
	next  int

	recent     []bool // ring of recent outcomes: true = timed out
	recentNext int
	recentN    int

	base           time.Duration // timeout while not learned
	timeout, close time.Duration
	learned        bool
}

func newBuildTimes(p cbtParams, fixed time.Duration) *buildTimes {
	b := &buildTimes{fixed: fixed}
	b.setParams(p)
	return b
}

// setParams adopts new consensus parameters.
func (b *buildTimes) setParams(p cbtParams) {
	if p == b.p && b.recent != nil {
		return
	}
	old := b.p
	b.p = p
	if p.recentCount != len(b.recent) {
		b.recent = make([]bool, p.recentCount)
		b.recentNext, b.recentN = 0, 0
	}
	if p.disabled {
		b.times, b.next = nil, 0
	}
	if b.base == 0 || b.base == old.initial {
		b.base = p.initial
	}
	b.recompute()
}

// timeouts returns the usage and close timeouts for a three-hop build.
func (b *buildTimes) timeouts() (usage, closeAt time.Duration) { return b.timeout, b.close }

// addTime records a build that completed within the usage timeout.
func (b *buildTimes) addTime(d time.Duration) {
	if b.p.disabled || b.fixed > 0 {
		return
	}
	b.store(d)
	b.outcome(false)
	b.recompute()
}

// addTimeout records a build that passed the usage timeout after it
// completed at least one hop (path-spec 2.4.5); completed says it went on
// to finish within the close timeout, in d (a measurement circuit, whose
// time is recorded too). It reports whether too many recent builds timed
// out, so the history was discarded.
func (b *buildTimes) addTimeout(d time.Duration, completed bool) bool {
	if b.p.disabled || b.fixed > 0 {
		return false
	}
	if completed {
		b.store(d)
	}
	b.outcome(true)
	n := 0
	for k := 0; k < b.recentN; k++ {
		if b.recent[k] {
			n++
		}
	}
	if n < b.p.maxTimeouts {
		b.recompute()
		return false
	}
	// The network changed: forget what we learned and start over from
	// cbtinitialtimeout, or double a timeout already that long.
	if b.timeout >= b.p.initial {
		b.base = 2 * b.timeout
	} else {
		b.base = b.p.initial
	}
	b.times, b.next = nil, 0
	clear(b.recent)
	b.recentNext, b.recentN = 0, 0
	b.recompute()
	return true
}

func (b *buildTimes) store(d time.Duration) {
	ms := uint32(min(max(d.Milliseconds(), 1), math.MaxUint32))
	if len(b.times) < cbtMaxTimes {
		b.times = append(b.times, ms)
		return
	}
	b.times[b.next] = ms
	b.next = (b.next + 1) % cbtMaxTimes
}

func (b *buildTimes) outcome(timedOut bool) {
	if len(b.recent) == 0 {
		return
	}
	b.recent[b.recentNext] = timedOut
	b.recentNext = (b.recentNext + 1) % len(b.recent)
	b.recentN = min(b.recentN+1, len(b.recent))
}

func (b *buildTimes) recompute() {
	switch {
	case b.fixed > 0:
		b.timeout, b.close, b.learned = b.fixed, b.fixed, false
		return
	case b.p.disabled:
		b.timeout, b.close, b.learned = b.p.initial, b.p.initial, false
		return
	case len(b.times) < b.p.minCircs || len(b.times) == 0:
		b.timeout, b.close, b.learned = b.base, max(b.base, b.p.initial), false
		return
	}
	xm := b.xm()
	var maxObs float64
	var sum float64
	for _, t := range b.times {
		x := float64(t)
		maxObs = max(maxObs, x)
		sum += math.Log(max(xm, x))
	}
	n := float64(len(b.times))
	quantile := func(q float64) float64 { return xm }
	if den := sum - n*math.Log(xm); den > 0 {
		alpha := n / den
		quantile = func(q float64) float64 { return xm / math.Pow(1-q, 1/alpha) }
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	timeout := max(ms(min(quantile(b.p.quantile), maxObs)), b.p.minTimeout)
	closeAt := max(ms(min(quantile(b.p.closeQuantile), 2*maxObs)), b.p.initial, timeout)
	b.timeout, b.close, b.learned = timeout, closeAt, true
}

// xm is path-spec 2.4.3's Xm: the mean of the midpoints of the cbtnummodes
// most frequent 10 ms bins, weighted by their counts (ties go to the
// shorter bin).
func (b *buildTimes) xm() float64 {
	bins := make([]uint32, len(b.times))
	for k, t := range b.times {
		bins[k] = t / cbtBinMs
	}
	slices.Sort(bins)
	type mode struct{ bin, count uint32 }
	var modes []mode
	for k := 0; k < len(bins); {
		j := k
		for j < len(bins) && bins[j] == bins[k] {
			j++
		}
		modes = append(modes, mode{bins[k], uint32(j - k)})
		k = j
	}
	slices.SortStableFunc(modes, func(a, b mode) int { return int(b.count) - int(a.count) })
	modes = modes[:min(len(modes), b.p.numModes)]
	var num, den float64
	for _, m := range modes {
		num += float64(m.count) * (float64(m.bin)*cbtBinMs + cbtBinMs/2)
		den += float64(m.count)
	}
	return num / den
}

// quantiles returns the median and 90th percentile of the recorded build
// times (zero when none are recorded).
func (b *buildTimes) quantiles() (median, p90 time.Duration) {
	if len(b.times) == 0 {
		return 0, 0
	}
	s := slices.Clone(b.times)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return time.Duration(s[int(q*float64(len(s)-1))]) * time.Millisecond
	}
	return at(0.5), at(0.9)
}
