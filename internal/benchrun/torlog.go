package benchrun

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// torLogTime is the timestamp tor puts at the start of each log line with
// LogTimeGranularity 1 (local time, no year).
const torLogTime = "Jan 02 15:04:05.000"

// torBootstrapLine matches "Bootstrapped 75% (enough_dirinfo): ...".
var torBootstrapLine = regexp.MustCompile(`\[notice\] Bootstrapped (\d+)% \(([a-z_]+)\)`)

// parseTorTime reads the timestamp of a tor log line, in loc, in the year
// that puts it closest to near.
func parseTorTime(line string, near time.Time, loc *time.Location) (time.Time, bool) {
	if len(line) < len(torLogTime) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(torLogTime, line[:len(torLogTime)], loc)
	if err != nil {
		return time.Time{}, false
	}
	best := time.Time{}
	for _, y := range []int{near.Year() - 1, near.Year(), near.Year() + 1} {
		c := time.Date(y, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		if best.IsZero() || absDur(c.Sub(near)) < absDur(best.Sub(near)) {
			best = c
		}
	}
	return best, true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// parseTorBootstrap returns the "Bootstrapped N%" lines of a notice log
// as progress points in seconds since t0 (the spawn, in the clock tor's
// log uses).
func parseTorBootstrap(log []byte, t0 time.Time, loc *time.Location) []Point {
	var out []Point
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		m := torBootstrapLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		t, ok := parseTorTime(l, t0, loc)
		if !ok {
			continue
		}
		p, _ := strconv.Atoi(m[1])
		out = append(out, Point{T: t.Sub(t0).Seconds(), Percent: p, Phase: m[2]})
	}
	return out
}

// firstAt returns the time of the first point at or above pct, or -1.
func firstAt(ps []Point, pct int) float64 {
	for _, p := range ps {
		if p.Percent >= pct {
			return p.T
		}
	}
	return -1
}

// torDirResponse matches tor's debug line for each directory response:
// "Received response on ...: 200 "OK" (purpose: 14, response size: 2686,
// compression: 3)". The size includes the HTTP headers.
var torDirResponse = regexp.MustCompile(`Received response on .*: (\d+) .*\(purpose: (\d+), response size: (\d+)`)

// torPurposes names tor's directory purposes (feature/dirclient).
var torPurposes = map[string]string{
	"6":  "server_descriptors",
	"14": "consensus",
	"15": "certificates",
	"19": "microdescriptors",
}

// parseTorDirBytes sums the response sizes of a "[dir]debug" log, by
// document kind.
func parseTorDirBytes(log []byte) (total int64, byKind map[string]int64) {
	byKind = map[string]int64{}
	for _, l := range strings.Split(string(log), "\n") {
		m := torDirResponse.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			continue
		}
		kind, ok := torPurposes[m[2]]
		if !ok {
			kind = "purpose_" + m[2]
		}
		total += n
		byKind[kind] += n
	}
	return total, byKind
}

// consensusTimes reads valid-after, fresh-until and valid-until.
func consensusTimes(doc []byte) (va, fu, vu time.Time, ok bool) {
	got := 0
	for _, l := range strings.SplitN(string(doc), "\n", 20) {
		k, v, found := strings.Cut(l, " ")
		if !found {
			continue
		}
		var dst *time.Time
		switch k {
		case "valid-after":
			dst = &va
		case "fresh-until":
			dst = &fu
		case "valid-until":
			dst = &vu
		default:
			continue
		}
		t, err := time.Parse(time.DateTime, strings.TrimSpace(v))
		if err != nil {
			return va, fu, vu, false
		}
		*dst = t.UTC()
		got++
	}
	return va, fu, vu, got == 3
}
