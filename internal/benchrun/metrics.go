package benchrun

import "math"

// Units of a metric.
const (
	unitSeconds = "s"
	unitBytes   = "B"
	unitCount   = "n"
)

// Metric is one compared quantity. Value returns NaN when the run does not
// have it (a failed run, or a fetch metric of a bootstrap-only run).
type Metric struct {
	Key   string
	Title string
	Unit  string
	// FetchOnly metrics appear only for scenarios with a fetch; LossyOnly
	// ones only on profiles that reset connections.
	FetchOnly bool
	LossyOnly bool
	Value     func(r *Run) float64
}

var nan = math.NaN()

func ok(r *Run, v float64) float64 {
	if !r.OK {
		return nan
	}
	return v
}

// recorded is ok for a figure that older results lack: 0 means it was
// not recorded, so the run has no value (and a table with no value in
// any run omits the row).
func recorded(r *Run, v int64) float64 {
	if v == 0 {
		return nan
	}
	return ok(r, float64(v))
}

// Metrics are the rows of every table, in order.
var Metrics = []Metric{
	{Key: "time_dir", Title: "start → directory ready (C tor: 75 %, enough directory info)", Unit: unitSeconds,
		Value: func(r *Run) float64 { return ok(r, r.DirReadyS) }},
	{Key: "time_ready", Title: "start → ready (C tor: 100 %, first circuits built)", Unit: unitSeconds,
		Value: func(r *Run) float64 { return ok(r, r.ReadyS) }},
	{Key: "ttfb", Title: "start → first byte of the response", Unit: unitSeconds, FetchOnly: true,
		Value: func(r *Run) float64 { return ok(r, r.FirstByteS) }},
	{Key: "total_time", Title: "start → last byte of the body", Unit: unitSeconds, FetchOnly: true,
		Value: func(r *Run) float64 { return ok(r, r.TotalS) }},
	{Key: "transfer", Title: "first → last byte of the body", Unit: unitSeconds, FetchOnly: true,
		Value: func(r *Run) float64 { return ok(r, r.TotalS-r.FirstByteS) }},
	{Key: "bytes_dir_ready", Title: "bytes up+down at directory ready", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.UpDirReady+r.DownDirReady)) }},
	{Key: "bytes_ready", Title: "bytes up+down at ready", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.UpReady+r.DownReady)) }},
	{Key: "bytes_total", Title: "bytes up+down, bootstrap + fetch", Unit: unitBytes, FetchOnly: true,
		Value: func(r *Run) float64 { return ok(r, float64(r.Up+r.Down)) }},
	{Key: "down", Title: "bytes down (relays → client), whole run", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.Down)) }},
	{Key: "up", Title: "bytes up (client → relays), whole run", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.Up)) }},
	{Key: "dir_bytes", Title: "directory responses on the wire (client's own count)", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.DirBytes)) }},
	{Key: "rss", Title: "peak RSS (VmHWM), whole run", Unit: unitBytes,
		Value: func(r *Run) float64 { return ok(r, float64(r.PeakRSS)) }},
	{Key: "rss_anon", Title: "peak anonymous memory (RssAnon), sampled", Unit: unitBytes,
		Value: func(r *Run) float64 { return recorded(r, r.PeakRSSAnon) }},
	{Key: "rss_file", Title: "peak file-backed memory (RssFile), sampled", Unit: unitBytes,
		Value: func(r *Run) float64 { return recorded(r, r.PeakRSSFile) }},
	{Key: "cpu", Title: "CPU (user+system), whole run", Unit: unitSeconds,
		Value: func(r *Run) float64 { return ok(r, r.CPUS) }},
	{Key: "resets", Title: "connections reset by the proxy (lossy link)", Unit: unitCount, LossyOnly: true,
		Value: func(r *Run) float64 { return ok(r, float64(r.Resets)) }},
}

// MetricByKey finds a metric of Metrics.
func MetricByKey(key string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}
