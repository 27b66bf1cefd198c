//go:build linux

package faulttest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

// TestKilledWhileWritingCache SIGKILLs a client process at varying points
// of its bootstrap, again and again, on fresh data directories and on
// directories that earlier kills left behind. Half the runs let the sdk
// own the cache and are killed at progress events plus a pause; the other
// half announce every cache write and are killed inside a chosen one (the
// consensus file, certificates, microdescriptors, listing times, pruning,
// guard state). After every kill the cache must hold only verified data,
// and nothing verified before the kill may be lost: the consensus never
// goes back, and no microdescriptor disappears. A last restart bootstraps
// from what the kills left, without fetching again what was kept, and
// fetches from the network.
func TestKilledWhileWritingCache(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	auths := trustedAuthorities(t, n)
	// Kill points: lines to wait for (a stage of the bootstrap, or the
	// start of a write), then a pause that moves the kill inside what the
	// child does next (nothing is timed). A fresh directory starts cold;
	// the others continue from earlier kills.
	type point struct {
		fresh    bool
		announce bool
		after    []string
		pause    time.Duration
	}
	stage := func(fresh bool, s string, pause time.Duration) point { return point{fresh, false, []string{s}, pause} }
	write := func(fresh bool, w string, pause time.Duration) point {
		return point{fresh, true, []string{"put " + w}, pause}
	}
	anyWrite := func(pause time.Duration) point { return point{false, true, []string{"put ", "ready"}, pause} }
	points := []point{
		stage(true, "phase consensus", 0),
		write(false, "PutCert", 0),
		write(false, "PutConsensus", 0),
		stage(false, "phase microdescriptors", 0),
		write(true, "PutConsensus", 300*time.Microsecond),
		write(false, "PutMicrodescs", 0),
		stage(false, "phase loading_cache", 0),
		write(true, "PutConsensus", time.Millisecond),
		write(false, "PutMicrodescs", 100*time.Microsecond),
		write(true, "MarkListed", 0),
		write(true, "PutMicrodescs", 50*time.Microsecond),
		write(true, "PruneMicrodescs", 0),
		stage(false, "ready", 0),
		write(true, "MarkListed", 200*time.Microsecond),
		anyWrite(0),
		write(true, "PutState", 0),
		stage(false, "fetched", 0),
		anyWrite(500 * time.Microsecond),
		stage(true, "phase microdescriptors", 30*time.Millisecond),
		stage(false, "ready", 300*time.Microsecond),
		stage(false, "phase loading_cache", 3*time.Millisecond),
	}
	dir := ""
	var before storeView
	for i, p := range points {
		if p.fresh || dir == "" {
			dir = t.TempDir()
			before = storeView{}
		}
		spec := childSpecFor(n, dir)
		spec.Announce = p.announce
		c := startChild(t, spec, -1)
		at := c.waitFor(p.after...)
		time.Sleep(p.pause) // moves the kill point; nothing is timed
		c.kill()
		after := inspectStore(t, dir, auths)
		t.Logf("kill %d at %q+%v: consensus %v, %d microdescriptors, %d certificates",
			i, at, p.pause, after.validAfter.Format(time.TimeOnly), len(after.mds), after.certs)
		if after.validAfter.Before(before.validAfter) {
			t.Fatalf("kill %d: the stored consensus went back from %v to %v", i, before.validAfter, after.validAfter)
		}
		for d := range before.mds {
			if !after.mds[d] {
				t.Fatalf("kill %d: microdescriptor %x was lost", i, d[:8])
			}
		}
		before = after
	}

	// A restart uses what is left and works.
	final := dir
	c := startChild(t, childSpecFor(n, final), -1)
	lines, err := c.wait()
	if err != nil {
		t.Fatalf("restart after the kills: %v, said %q\nstderr:\n%s", err, lines, c.stderrText())
	}
	var source string
	fetched := -1
	for _, l := range lines {
		fmt.Sscanf(l, "ready %s %d", &source, &fetched)
	}
	if fetched < 0 || !slices.Contains(lines, "fetched") {
		t.Fatalf("restart said %q", lines)
	}
	if !before.validAfter.IsZero() && source == "full" || fetched > before.relays-len(before.mds) {
		t.Fatalf("restart fetched again what the cache held: source %q, %d microdescriptors fetched (cache had %d of %d)", source, fetched, len(before.mds), before.relays)
	}

	// Kills while a stored consensus is being replaced by a newer one.
	// Once the network has voted again, children whose clock is past the
	// stored consensus's valid-until fetch the new one (as a diff) and
	// are killed inside its store, each on a copy of the same directory.
	// The old consensus must survive every kill whole, or the new one be
	// there whole.
	base := inspectStore(t, final, auths)
	if base.validAfter.IsZero() || len(base.mds) != base.relays {
		t.Fatalf("the restarted directory is not complete: %+v", base)
	}
	waitNewerConsensus(t, n, base.validAfter)
	for i, pause := range []time.Duration{0, 100 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		d := copyDir(t, final)
		spec := childSpecFor(n, d)
		spec.Announce, spec.Now = true, base.validUntil.Add(time.Second)
		c := startChild(t, spec, -1)
		c.waitFor("put PutConsensus")
		time.Sleep(pause) // moves the kill point; nothing is timed
		c.kill()
		after := inspectStore(t, d, auths)
		t.Logf("replacement kill %d (+%v): consensus %v (was %v)", i, pause, after.validAfter.Format(time.TimeOnly), base.validAfter.Format(time.TimeOnly))
		if after.validAfter.Before(base.validAfter) {
			t.Fatalf("replacement kill %d: the stored consensus went from %v to %v", i, base.validAfter, after.validAfter)
		}
		for d := range base.mds {
			if !after.mds[d] {
				t.Fatalf("replacement kill %d: microdescriptor %x was lost", i, d[:8])
			}
		}
	}
}
