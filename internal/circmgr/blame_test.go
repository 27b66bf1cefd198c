package circmgr

import "testing"

// TestBuildBlamed: only a middle or exit hop at which the build failed
// is avoided; a guard's failure, no failure, and a failure after the
// whole path was built (a conflux link that did not come up reports
// the path's length, 3) blame no relay and never index past the path.
func TestBuildBlamed(t *testing.T) {
	b := &build{}
	for i := range b.ids {
		b.ids[i][0] = byte(i + 1)
	}
	for _, c := range []struct {
		hop  int
		want byte // 0: none
	}{{-1, 0}, {0, 0}, {1, 2}, {2, 3}, {3, 0}, {4, 0}} {
		b.failedHop = c.hop
		id, ok := b.blamed()
		if ok != (c.want != 0) || (ok && id[0] != c.want) {
			t.Errorf("failed at hop %d: blamed %x %v, want %d", c.hop, id[0], ok, c.want)
		}
	}
}
