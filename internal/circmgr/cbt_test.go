package circmgr

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// paretoMs draws a Pareto(xm, alpha) build time by inverting its CDF.
func paretoMs(r *rand.Rand, xm, alpha float64) time.Duration {
	u := 1 - r.Float64() // (0, 1]
	return time.Duration(xm / math.Pow(u, 1/alpha) * float64(time.Millisecond))
}

// TestBuildTimesLearn: before cbtmincircs builds the timeout is
// cbtinitialtimeout; with Pareto build times it converges to the 80th
// percentile of the distribution, capped by the largest time seen.
func TestBuildTimesLearn(t *testing.T) {
	p := cbtParamsFrom(netdir.Params{})
	b := newBuildTimes(p, 0)
	if u, c := b.timeouts(); u != time.Minute || c != time.Minute || b.learned {
		t.Fatalf("initial timeouts %v %v", u, c)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const xm, alpha = 400.0, 3.0
	for k := 0; k < p.minCircs-1; k++ {
		b.addTime(paretoMs(r, xm, alpha))
	}
	if u, _ := b.timeouts(); u != time.Minute || b.learned {
		t.Fatalf("learned from %d times: %v", p.minCircs-1, u)
	}
	for range cbtMaxTimes {
		b.addTime(paretoMs(r, xm, alpha))
	}
	if len(b.times) != cbtMaxTimes {
		t.Fatalf("kept %d build times", len(b.times))
	}
	want := xm / math.Pow(0.2, 1/alpha) // the true 80th percentile, 684 ms
	u, c := b.timeouts()
	if !b.learned || math.Abs(float64(u.Milliseconds())-want) > 0.15*want {
		t.Fatalf("learned timeout %v, want about %.0f ms", u, want)
	}
	if c != time.Minute {
		t.Fatalf("close timeout %v, want cbtinitialtimeout (2x the largest time is less)", c)
	}
	med, p90 := b.quantiles()
	if med <= 0 || p90 < med || p90 > 2*u {
		t.Fatalf("median %v, p90 %v", med, p90)
	}

	// Every build as long: the timeout is capped by the largest time.
	b2 := newBuildTimes(p, 0)
	for range 200 {
		b2.addTime(250 * time.Millisecond)
	}
	if u, _ := b2.timeouts(); u != 255*time.Millisecond && u != 250*time.Millisecond {
		t.Fatalf("constant build times: timeout %v", u)
	}
}

// TestBuildTimesNetworkChange: cbtmaxtimeouts of the last cbtrecentcount
// builds timing out discards the history and starts from
// cbtinitialtimeout; when that happens again the timeout doubles.
func TestBuildTimesNetworkChange(t *testing.T) {
	p := cbtParamsFrom(netdir.Params{})
	b := newBuildTimes(p, 0)
	for range 200 {
		b.addTime(300 * time.Millisecond)
	}
	if !b.learned {
		t.Fatal("not learned")
	}
	for k := 1; k < p.maxTimeouts; k++ {
		if b.addTimeout(0, false) {
			t.Fatalf("reset after %d timeouts", k)
		}
	}
	if !b.addTimeout(0, false) || b.learned || len(b.times) != 0 {
		t.Fatal("no reset after cbtmaxtimeouts timeouts")
	}
	if u, _ := b.timeouts(); u != time.Minute {
		t.Fatalf("after reset: %v", u)
	}
	for range p.maxTimeouts {
		b.addTimeout(0, false)
	}
	if u, c := b.timeouts(); u != 2*time.Minute || c != 2*time.Minute {
		t.Fatalf("second reset: %v %v, want doubled", u, c)
	}
}

// TestBuildTimesFixedAndDisabled: a configured timeout and cbtdisabled
// turn learning off.
func TestBuildTimesFixedAndDisabled(t *testing.T) {
	b := newBuildTimes(cbtParamsFrom(netdir.Params{}), 7*time.Second)
	for range 300 {
		b.addTime(time.Second)
		b.addTimeout(0, false)
	}
	if u, c := b.timeouts(); u != 7*time.Second || c != 7*time.Second || b.learned {
		t.Fatalf("fixed: %v %v", u, c)
	}
	p := cbtParamsFrom(netdir.Params{})
	p.disabled = true
	b = newBuildTimes(p, 0)
	for range 300 {
		b.addTime(time.Second)
	}
	if u, _ := b.timeouts(); u != time.Minute || len(b.times) != 0 {
		t.Fatalf("disabled: %v, %d times", u, len(b.times))
	}
}
