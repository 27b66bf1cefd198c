package sdk

import "testing"

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
