package benchrun

import (
	"math"
)

// Goal is a target from the issues, checked against one metric. A ratio
// goal holds when the median of the per-pair ratios onionlite / C tor is
// at most Limit; an absolute goal when onionlite's median is at most
// Limit.
type Goal struct {
	Key      string
	Title    string // "bytes ≤ 0.75× C tor"
	What     string // what is compared
	Metric   string
	Limit    float64
	Absolute bool
	// Throttled restricts the goal to rate-limited profiles; FetchOnly to
	// scenarios with a fetch; Body to fetches of that body.
	Throttled bool
	FetchOnly bool
	Body      string
	// Networks restricts the goal to these networks (nil: every network).
	Networks []string
}

// Goals are the issue targets, in report order.
var Goals = []Goal{
	{Key: "bytes_fetch", Title: "bytes ≤ 0.75× C tor", What: "bootstrap + fetch, up+down at the proxy (headline)", Metric: "bytes_total", Limit: 0.75, FetchOnly: true, Networks: testnets},
	{Key: "bytes_dir", Title: "bytes ≤ 0.75× C tor", What: "bootstrap, up+down at directory ready (C tor 75 %)", Metric: "bytes_dir_ready", Limit: 0.75},
	{Key: "bytes_ready", Title: "bytes ≤ 0.75× C tor", What: "bootstrap, up+down at ready (C tor 100 %)", Metric: "bytes_ready", Limit: 0.75, Networks: testnets},
	{Key: "time_fetch", Title: "slow-link time ≤ 0.8× C tor", What: "start → first byte of the fetch (headline)", Metric: "ttfb", Limit: 0.8, Throttled: true, FetchOnly: true, Networks: testnets},
	{Key: "time_dir", Title: "slow-link time ≤ 0.8× C tor", What: "start → directory ready (C tor 75 %)", Metric: "time_dir", Limit: 0.8, Throttled: true},
	{Key: "time_ready", Title: "slow-link time ≤ 0.8× C tor", What: "start → ready (C tor 100 %)", Metric: "time_ready", Limit: 0.8, Throttled: true, Networks: testnets},
	{Key: "rss_10m", Title: "peak RSS ≤ 0.6× C tor", What: "cold start + 10 MiB fetch (issue 6)", Metric: "rss", Limit: 0.6, FetchOnly: true, Body: "10MiB.bin", Networks: testnets},
	{Key: "rss", Title: "peak RSS ≤ 0.6× C tor", What: "whole run", Metric: "rss", Limit: 0.6},
	{Key: "time_10m", Title: "10 MiB time ≤ 1.0× C tor", What: "first → last byte of 10 MiB, unthrottled", Metric: "transfer", Limit: 1.0, FetchOnly: true, Body: "10MiB.bin", Networks: testnets},
	{Key: "rss_full", Title: "full-scale directory in ≤ 15 MB peak RSS", What: "onionlite alone, real 2019 directory", Metric: "rss", Limit: 15e6, Absolute: true, Networks: []string{Replay2019}},
}

// testnets are the networks where C tor reaches 100 % (on the replay it
// cannot build circuits, so its ready is its 75 %).
var testnets = []string{Testnet10, Testnet50}

// appliesTo reports whether the goal is checked on a network.
func (g Goal) appliesTo(network string) bool {
	if g.Networks == nil {
		return true
	}
	for _, n := range g.Networks {
		if n == network {
			return true
		}
	}
	return false
}

// applies reports whether the goal is checked for a profile and scenario.
func (g Goal) applies(p Profile, sc Scenario) bool {
	if g.Throttled && !p.Throttled() {
		return false
	}
	if g.FetchOnly && sc.Fetch == "" {
		return false
	}
	if g.Body != "" && sc.Fetch != g.Body {
		return false
	}
	return true
}

// Verdict is a goal checked on one comparison.
type Verdict struct {
	Value float64 // median ratio, or onionlite's median for absolute goals
	Range Summary
	N     int
	Met   bool
}

// Check evaluates g on c. N = 0 means nothing was measured.
func (g Goal) Check(c Comparison) Verdict {
	s := c.Ratio
	if g.Absolute {
		s = c.OL
	}
	if s.N == 0 || math.IsNaN(s.Median) {
		return Verdict{}
	}
	return Verdict{Value: s.Median, Range: s, N: s.N, Met: s.Median <= g.Limit}
}

// String renders a verdict for a table cell.
func (v Verdict) format(g Goal) string {
	if v.N == 0 {
		return "–"
	}
	var val string
	if g.Absolute {
		val = fmtBytes(v.Value)
	} else {
		val = fmtRatio(v.Value)
		if lo, hi := fmtRatio(v.Range.Min), fmtRatio(v.Range.Max); v.N > 1 && lo != hi {
			val += " (" + fmtRange(lo, hi) + ")"
		}
	}
	if v.Met {
		return val + " met"
	}
	return val + " **MISS**"
}
