package benchrun

import (
	"math"
	"sort"
)

// Comparison is one metric for one network, profile and scenario: each
// client's summary over its repetitions, and the summary of the per-pair
// ratios onionlite / C tor (repetition i with repetition i).
type Comparison struct {
	OL, Tor, Ratio Summary
}

// runsOf returns the runs of one client for a network, profile and
// scenario, indexed by repetition (1-based; missing ones are nil).
func runsOf(runs []Run, network, profile, scenario, client string) map[int]*Run {
	out := map[int]*Run{}
	for i := range runs {
		r := &runs[i]
		if r.Network == network && r.Profile == profile && r.Scenario == scenario && r.Client == client {
			out[r.Rep] = r
		}
	}
	return out
}

// Compare summarises metric m over the runs of both clients.
func Compare(runs []Run, network, profile, scenario string, m Metric) Comparison {
	ol := runsOf(runs, network, profile, scenario, Onionlite)
	tor := runsOf(runs, network, profile, scenario, CTor)
	reps := map[int]bool{}
	for k := range ol {
		reps[k] = true
	}
	for k := range tor {
		reps[k] = true
	}
	keys := make([]int, 0, len(reps))
	for k := range reps {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var a, b []float64
	for _, k := range keys {
		a = append(a, value(ol[k], m))
		b = append(b, value(tor[k], m))
	}
	return Comparison{OL: Summarize(a), Tor: Summarize(b), Ratio: Summarize(Ratios(a, b))}
}

func value(r *Run, m Metric) float64 {
	if r == nil || (m.FetchOnly && r.Fetch == "") {
		return math.NaN()
	}
	return m.Value(r)
}

// medianRun returns the run of a client whose metric m is the median one
// (the lower middle for an even count), for plots that show one typical
// run. It returns nil when there is none.
func medianRun(runs []Run, network, profile, scenario, client string, m Metric) *Run {
	var rs []*Run
	for _, r := range runsOf(runs, network, profile, scenario, client) {
		if !math.IsNaN(value(r, m)) {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool {
		vi, vj := value(rs[i], m), value(rs[j], m)
		if vi != vj {
			return vi < vj
		}
		return rs[i].Rep < rs[j].Rep
	})
	return rs[(len(rs)-1)/2]
}
