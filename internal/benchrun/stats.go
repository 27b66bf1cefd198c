package benchrun

import (
	"math"
	"sort"
)

// Summary describes a sample: its size, median and range.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Summarize returns the median (the mean of the two middle values for an
// even count), minimum and maximum of xs. NaNs are ignored; an empty
// sample gives N = 0.
func Summarize(xs []float64) Summary {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{}
	}
	sort.Float64s(v)
	s := Summary{N: len(v), Min: v[0], Max: v[len(v)-1]}
	if m := len(v) / 2; len(v)%2 == 1 {
		s.Median = v[m]
	} else {
		s.Median = (v[m-1] + v[m]) / 2
	}
	return s
}

// Median is Summarize(xs).Median.
func Median(xs []float64) float64 { return Summarize(xs).Median }

// Ratios divides a[i] by b[i] for each pair where both exist and b[i] is
// not zero. Pairs are matched by index: repetition i of one client with
// repetition i of the other.
func Ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if math.IsNaN(a[i]) || math.IsNaN(b[i]) || b[i] == 0 {
			continue
		}
		out = append(out, a[i]/b[i])
	}
	return out
}
