package benchrun

import (
	"fmt"
	"math"
	"strings"
)

// fmtBytes renders a byte count in decimal units (1 KB = 1000 B), as the
// notes and C tor's own counters are quoted.
func fmtBytes(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) < 1000:
		return fmt.Sprintf("%.0f B", v)
	case math.Abs(v) < 1e6:
		return fmt.Sprintf("%.1f KB", v/1e3)
	default:
		return fmt.Sprintf("%.2f MB", v/1e6)
	}
}

// fmtSeconds renders seconds with three significant digits or so.
func fmtSeconds(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) < 10:
		return fmt.Sprintf("%.2f s", v)
	case math.Abs(v) < 100:
		return fmt.Sprintf("%.1f s", v)
	default:
		return fmt.Sprintf("%.0f s", v)
	}
}

// fmtRatio renders a ratio as "0.62×".
func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// fmtValue renders a value in a metric's unit.
func fmtValue(unit string, v float64) string {
	switch unit {
	case unitBytes:
		return fmtBytes(v)
	case unitCount:
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.0f", v)
	}
	return fmtSeconds(v)
}

// fmtSummary renders "median (min–max)", or just the value for one run.
func fmtSummary(unit string, s Summary) string {
	if s.N == 0 {
		return "–"
	}
	lo, hi := fmtValue(unit, s.Min), fmtValue(unit, s.Max)
	if s.N == 1 || lo == hi {
		return fmtValue(unit, s.Median)
	}
	return fmt.Sprintf("%s (%s)", fmtValue(unit, s.Median), fmtRange(lo, hi))
}

// fmtRange renders "1.00–3.00 s" from "1.00 s" and "3.00 s": the unit is
// written once when both ends share it.
func fmtRange(lo, hi string) string {
	if i, j := strings.LastIndexAny(lo, " ×"), strings.LastIndexAny(hi, " ×"); i > 0 && j > 0 && lo[i:] == hi[j:] {
		lo = lo[:i]
	}
	return lo + "–" + hi
}

// fmtRatioSummary renders "0.62× (0.60–0.65)".
func fmtRatioSummary(s Summary) string {
	if s.N == 0 {
		return "–"
	}
	lo, hi := fmtRatio(s.Min), fmtRatio(s.Max)
	if s.N == 1 || lo == hi {
		return fmtRatio(s.Median)
	}
	return fmt.Sprintf("%s (%s)", fmtRatio(s.Median), fmtRange(lo, hi))
}
