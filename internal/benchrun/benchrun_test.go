package benchrun

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/realnet"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{math.NaN()}, Summary{}},
		{[]float64{3}, Summary{N: 1, Median: 3, Min: 3, Max: 3}},
		{[]float64{5, 1, 3}, Summary{N: 3, Median: 3, Min: 1, Max: 5}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, Median: 2.5, Min: 1, Max: 4}},
		{[]float64{2, math.NaN(), 8}, Summary{N: 2, Median: 5, Min: 2, Max: 8}},
	} {
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if m := Median([]float64{1, 2, 100}); m != 2 {
		t.Errorf("Median = %v, want 2", m)
	}
}

func TestRatios(t *testing.T) {
	got := Ratios([]float64{1, 2, math.NaN(), 3, 9}, []float64{2, 0, 1, 6})
	want := []float64{0.5, 0.5} // pair 2 divides by 0, pair 3 has a NaN, pair 5 has no partner
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("Ratios = %v, want %v", got, want)
	}
}

// run makes a successful run with the metrics the tests look at.
func run(client string, rep int, dirReady, ready float64, up, down int64, rss int64) Run {
	return Run{Network: "n", Profile: "slow64", Scenario: Cold, Start: Cold, Client: client, Rep: rep, OK: true,
		DirReadyS: dirReady, ReadyS: ready, TotalS: ready, Up: up, Down: down, UpReady: up, DownReady: down,
		UpDirReady: up, DownDirReady: down, PeakRSS: rss, CPUS: 0.1,
		Progress: []Point{{T: dirReady / 2, Percent: 40, Phase: "consensus"}, {T: dirReady, Percent: 75}, {T: ready, Percent: 100}}}
}

func testSet() *Set {
	s := &Set{Network: "n", Title: "test network", Reps: 3, Profiles: []Profile{Profiles[0], mustProfile("slow64")},
		Scenarios: []Scenario{{Start: Cold}, {Start: Warm}}, Env: Env{Date: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC), Cores: 2, CPU: "test cpu"}}
	s.Runs = []Run{
		run(Onionlite, 1, 2, 2, 1000, 9000, 10e6), run(CTor, 1, 4, 5, 2000, 18000, 20e6),
		run(Onionlite, 2, 3, 3, 1000, 9000, 12e6), run(CTor, 2, 4, 5, 2000, 14000, 15e6),
		run(Onionlite, 3, 6, 6, 1000, 9000, 11e6), run(CTor, 3, 3, 4, 2000, 18000, 10e6),
	}
	failed := run(CTor, 4, 1, 1, 1, 1, 1)
	failed.OK, failed.Error = false, "tor exited"
	s.Runs = append(s.Runs, failed)
	return s
}

func mustProfile(name string) Profile {
	p, ok := ProfileByName(name)
	if !ok {
		panic("no profile " + name)
	}
	return p
}

func TestCompare(t *testing.T) {
	s := testSet()
	m, _ := MetricByKey("time_dir")
	c := Compare(s.Runs, "n", "slow64", Cold, m)
	// onionlite 2, 3, 6; C tor 4, 4, 3 (the failed 4th run is NaN);
	// pair ratios 0.5, 0.75, 2.
	if c.OL != (Summary{N: 3, Median: 3, Min: 2, Max: 6}) || c.Tor != (Summary{N: 3, Median: 4, Min: 3, Max: 4}) {
		t.Fatalf("Compare: OL %+v Tor %+v", c.OL, c.Tor)
	}
	if c.Ratio != (Summary{N: 3, Median: 0.75, Min: 0.5, Max: 2}) {
		t.Fatalf("Compare: ratio %+v", c.Ratio)
	}
	if r := medianRun(s.Runs, "n", "slow64", Cold, Onionlite, m); r == nil || r.Rep != 2 {
		t.Fatalf("medianRun = %+v, want rep 2", r)
	}
	ttfb, _ := MetricByKey("ttfb")
	if c := Compare(s.Runs, "n", "slow64", Cold, ttfb); c.OL.N != 0 || c.Ratio.N != 0 {
		t.Fatalf("a fetch metric of bootstrap-only runs: %+v", c)
	}
}

func TestGoals(t *testing.T) {
	s := testSet()
	g := goalByKey(t, "time_dir")
	m, _ := MetricByKey(g.Metric)
	v := g.Check(Compare(s.Runs, "n", "slow64", Cold, m))
	if !v.Met || v.Value != 0.75 || v.N != 3 {
		t.Fatalf("time goal: %+v", v)
	}
	if got := v.format(g); got != "0.75× (0.50–2.00×) met" {
		t.Fatalf("format = %q", got)
	}
	rss := goalByKey(t, "rss")
	m, _ = MetricByKey(rss.Metric)
	v = rss.Check(Compare(s.Runs, "n", "slow64", Cold, m))
	if v.Met || !strings.Contains(v.format(rss), "MISS") {
		t.Fatalf("RSS goal (ratios 0.5, 0.8, 1.1): %+v %q", v, v.format(rss))
	}
	if (Verdict{}).format(rss) != "–" {
		t.Fatal("an unmeasured verdict should print a dash")
	}
	if g.applies(Profiles[0], Scenario{Start: Cold}) {
		t.Fatal("the slow-link time goal applies to the unthrottled profile")
	}
	full := goalByKey(t, "rss_full")
	if !full.appliesTo(Replay2019) || full.appliesTo(Testnet10) || !g.appliesTo(Replay2019) || goalByKey(t, "time_ready").appliesTo(Replay2019) {
		t.Fatal("goal networks are wrong")
	}
	v = full.Check(Comparison{OL: Summary{N: 1, Median: 14e6, Min: 14e6, Max: 14e6}})
	if !v.Met || v.format(full) != "14.00 MB met" {
		t.Fatalf("absolute goal: %+v %q", v, v.format(full))
	}
}

func goalByKey(t *testing.T, key string) Goal {
	t.Helper()
	for _, g := range Goals {
		if g.Key == key {
			return g
		}
	}
	t.Fatalf("no goal %q", key)
	return Goal{}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtBytes(999), "999 B"},
		{fmtBytes(28960), "29.0 KB"},
		{fmtBytes(2592431), "2.59 MB"},
		{fmtSeconds(2.049), "2.05 s"},
		{fmtSeconds(13.17), "13.2 s"},
		{fmtSeconds(421), "421 s"},
		{fmtRatio(0.6234), "0.62×"},
		{fmtRatio(math.Inf(1)), "–"},
		{fmtSummary(unitSeconds, Summary{N: 3, Median: 2, Min: 1, Max: 3}), "2.00 s (1.00–3.00 s)"},
		{fmtSummary(unitBytes, Summary{N: 1, Median: 1500, Min: 1500, Max: 1500}), "1.5 KB"},
		{fmtRatioSummary(Summary{}), "–"},
		{fmtDuration(4380), "1 h 13 min"},
		{fmtDuration(2222), "37 min 2 s"},
		{fmtDuration(23.4), "23 s"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestProfiles(t *testing.T) {
	ps, err := ParseProfiles("slow64, unthrottled")
	if err != nil || len(ps) != 2 || ps[0].Name != "unthrottled" || ps[1].Name != "slow64" {
		t.Fatalf("ParseProfiles = %v, %v", ps, err)
	}
	if _, err := ParseProfiles("wifi"); err == nil {
		t.Fatal("an unknown profile was accepted")
	}
	all, _ := ParseProfiles("all")
	if len(all) != len(Profiles) {
		t.Fatal("all is not every profile")
	}
	lossy := mustProfile("lossy").Slowlink()
	if lossy.Rate != 64000 || lossy.Delay != 150*time.Millisecond || lossy.ResetEvery != 200000 {
		t.Fatalf("lossy proxy config: %+v", lossy)
	}
	if mustProfile("unthrottled").Throttled() || !mustProfile("gprs").Throttled() {
		t.Fatal("Throttled is wrong")
	}
}

func TestScenarios(t *testing.T) {
	starts := []string{Cold, Warm, Stale}
	if got := scenarios(starts, Profiles[0], Caps{}); len(got) != 3 || got[0].Fetch != "" || got[2].Name() != "stale" {
		t.Fatalf("bootstrap-only scenarios: %v", got)
	}
	un := scenarios(starts, Profiles[0], Caps{Get: true})
	if un[0].Name() != "cold+10MiB" || un[1].Name() != "warm+1MiB" {
		t.Fatalf("unthrottled fetch scenarios: %v", un)
	}
	if sl := scenarios(starts, mustProfile("edge"), Caps{Get: true}); sl[2].Name() != "stale+64KiB" {
		t.Fatalf("throttled fetch scenarios: %v", sl)
	}
}

func TestParseStatCPU(t *testing.T) {
	line := "4242 (tor (x) y) S 1 4242 4242 0 -1 4194560 1021 0 0 0 123 45 0 0 20 0 2 0 100 2000 300 184467 1 1 0 0 0 0 0 0\n"
	cpu, err := parseStatCPU([]byte(line))
	if err != nil || math.Abs(cpu-1.68) > 1e-9 {
		t.Fatalf("parseStatCPU = %v, %v; want 1.68", cpu, err)
	}
	if _, err := parseStatCPU([]byte("4242 (tor) S 1 2")); err == nil {
		t.Fatal("a short line parsed")
	}
	hwm, err := parseStatusKB([]byte("Name:\ttor\nVmPeak:\t  50000 kB\nVmHWM:\t   13260 kB\n"), "VmHWM:")
	if err != nil || hwm != 13260*1024 {
		t.Fatalf("parseStatusKB = %v, %v", hwm, err)
	}
}

func TestTorLogs(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, loc).Add(-500 * time.Millisecond) // spawned late on New Year's Eve
	log := `Dec 31 23:59:59.500 [notice] Bootstrapped 0% (starting): Starting
Dec 31 23:59:59.700 [notice] Opening Socks listener on 127.0.0.1:0
Jan 01 00:00:01.250 [notice] Bootstrapped 75% (enough_dirinfo): Loaded enough directory info to build circuits
Jan 01 00:00:01.300 [notice] Bootstrapped 100% (done): Done
`
	ps := parseTorBootstrap([]byte(log), t0, loc)
	if len(ps) != 3 || ps[0].T != 0 || ps[1].T != 1.75 || ps[1].Phase != "enough_dirinfo" || ps[2].Percent != 100 {
		t.Fatalf("parseTorBootstrap = %+v", ps)
	}
	if firstAt(ps, 75) != 1.75 || firstAt(ps, 101) != -1 {
		t.Fatal("firstAt")
	}
	dbg := `Nov 22 18:15:23.100 [debug] {DIR} connection_dir_client_reached_eof(): Received response on [scrubbed]: 200 "OK" (purpose: 14, response size: 2877, compression: 3)
Nov 22 18:15:23.300 [debug] {DIR} connection_dir_client_reached_eof(): Received response on [scrubbed]: 200 "OK" (purpose: 15, response size: 4700, compression: 4)
Nov 22 18:15:23.500 [debug] {DIR} connection_dir_client_reached_eof(): Received response on [scrubbed]: 404 "Not found" (purpose: 19, response size: 120, compression: 0)
Nov 22 18:15:23.900 [debug] {DIR} connection_dir_client_reached_eof(): Received response on [scrubbed]: 200 "OK" (purpose: 19, response size: 2700, compression: 4)
Nov 22 18:15:24.000 [debug] {DIR} something else (purpose: 19)
`
	total, by := parseTorDirBytes([]byte(dbg))
	if total != 2877+4700+120+2700 || by["consensus"] != 2877 || by["certificates"] != 4700 || by["microdescriptors"] != 2820 {
		t.Fatalf("parseTorDirBytes = %d %v", total, by)
	}
	va, fu, vu, ok := consensusTimes([]byte("network-status-version 3 microdesc\nvote-status consensus\nconsensus-method 35\nvalid-after 2026-11-22 18:16:40\nfresh-until 2026-11-22 18:17:00\nvalid-until 2026-11-22 18:17:40\n"))
	if !ok || vu.Sub(va) != time.Minute || fu.Sub(va) != 20*time.Second || va.Location() != time.UTC {
		t.Fatalf("consensusTimes = %v %v %v %v", va, fu, vu, ok)
	}
	if _, _, _, ok := consensusTimes([]byte("valid-after 2026-11-22 18:16:40\n")); ok {
		t.Fatal("consensusTimes accepted a header without fresh-until and valid-until")
	}
}

func TestOnionliteLines(t *testing.T) {
	for _, c := range []struct {
		line         string
		pct          int
		phase        string
		ready, found bool
	}{
		{"bootstrap  42% certificates: downloading authority certificates (2760 B)", 42, "certificates", false, true},
		{"bootstrap 100% ready: directory ready (9.9 KB)", 100, "ready", true, true},
		{"ready in 7.733s: 10 relays, consensus from full, 9944 B of directory data", 100, "ready", true, true},
		{"warning: cache is read-only", 0, "", false, false},
	} {
		pct, phase, ready, found := parseOLLine(c.line)
		if pct != c.pct || phase != c.phase || ready != c.ready || found != c.found {
			t.Errorf("parseOLLine(%q) = %d %q %v %v", c.line, pct, phase, ready, found)
		}
	}
}

func TestSamples(t *testing.T) {
	xs := []Sample{{T: 0, Down: 0}, {T: 0.05, Down: 10}, {T: 0.1, Down: 20}, {T: 0.15, Down: 30}}
	if s := trafficAt(xs, 0.06); s.Down != 20 {
		t.Fatalf("trafficAt(0.06) = %+v, want the sample at 0.1", s)
	}
	if s := trafficAt(xs, 9); s.Down != 30 {
		t.Fatalf("trafficAt past the end = %+v", s)
	}
	if p := procAt([]procSample{{T: 1, CPU: 0.1}, {T: 2, CPU: 0.2}}, 1.5); p.CPU != 0.2 {
		t.Fatalf("procAt = %+v", p)
	}
	long := make([]int, 1000)
	for i := range long {
		long[i] = i
	}
	th := thin(long, 11)
	if len(th) != 11 || th[0] != 0 || th[10] != 999 || th[5] != 500 {
		t.Fatalf("thin = %v", th)
	}
	if len(thin(long[:5], 11)) != 5 {
		t.Fatal("thin shortened a short slice")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		max  float64
		last float64
		n    int
	}{{3.7, 4, 5}, {8.2, 10, 6}, {1.2, 1.25, 6}, {0, 1, 2}} {
		ts := niceTicks(c.max, 5)
		if ts[0] != 0 || ts[len(ts)-1] != c.last || len(ts) != c.n {
			t.Errorf("niceTicks(%v) = %v", c.max, ts)
		}
	}
}

// wellFormed checks that s is one well-formed XML document with an svg root.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, s)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
}

func TestSVG(t *testing.T) {
	s := testSet()
	p := ProgressSVG(s)
	wellFormed(t, p)
	if strings.Count(p, "<path") != 2 || !strings.Contains(p, "issue 4: 64 kbit/s") {
		t.Fatalf("progress plot: want one path per client and the profile title:\n%s", p)
	}
	tr := TrafficSVG(s)
	if tr != "" {
		t.Fatal("traffic plot without traffic samples")
	}
	for i := range s.Runs {
		s.Runs[i].Traffic = []Sample{{T: 0, Down: 0}, {T: 1, Down: 5000}, {T: 2, Down: 9000}}
	}
	tr = TrafficSVG(s)
	wellFormed(t, tr)
	if !strings.Contains(tr, "9.0 KB") && !strings.Contains(tr, "10.0 KB") {
		t.Errorf("traffic plot axis: %s", tr)
	}
	r := RatiosSVG(s)
	wellFormed(t, r)
	for _, want := range []string{"bytes at directory ready", "peak RSS", "0.75×", "stroke-dasharray"} {
		if !strings.Contains(r, want) {
			t.Errorf("ratio plot lacks %q", want)
		}
	}
	if strings.Contains(r, "first byte") {
		t.Error("ratio plot shows a fetch metric without fetch runs")
	}
	empty := &Set{Network: "e", Profiles: Profiles}
	if ProgressSVG(empty) != "" || RatiosSVG(empty) != "" {
		t.Fatal("plots of an empty set")
	}
	if !strings.Contains(ProgressSVG(&Set{Network: "x<y", Profiles: s.Profiles, Scenarios: s.Scenarios, Runs: relabel(s.Runs, "x<y")}), "x&lt;y") {
		t.Fatal("SVG text is not escaped")
	}
}

func relabel(runs []Run, network string) []Run {
	out := append([]Run(nil), runs...)
	for i := range out {
		out[i].Network = network
	}
	return out
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	res := &Results{}
	s := *testSet()
	s.Network = Testnet10
	s.Runs = relabel(s.Runs, Testnet10)
	s.Unsupported = []Scenario{{Start: Cold, Fetch: "10MiB.bin"}}
	res.Put(s)
	out := filepath.Join(dir, "docs", "bench")
	report := filepath.Join(dir, "docs", "BENCHMARKS.md")
	if err := res.Save(filepath.Join(out, "results.json")); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(res, out, report); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	for _, want := range []string{
		"# Benchmarks: onionlite beside C tor",
		"](bench/progress-testnet10.svg)", "](bench/ratios-testnet10.svg)",
		"| slow-link time ≤ 0.8× C tor | start → directory ready (C tor 75 %) (slow64) | testnet10 | 0.75× (0.50–2.00×) met |",
		"**MISS**", "not measured: the onionlite CLI had no `get` command",
		"| cold | start → directory ready (C tor: 75 %, enough directory info) | 3.00 s (2.00–6.00 s) | 4.00 s (3.00–4.00 s) | 0.75× (0.50–2.00×) |",
		"### Failed runs", "tor exited", "Not measured yet: testnet50",
		"2 cores (test cpu)",
		"The onionlite binary's build was not recorded", "* **The onionlite binary** is the lean client build",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, f := range []string{"progress-testnet10.svg", "ratios-testnet10.svg", "testnet10.md"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".svg") {
			wellFormed(t, string(b))
		} else if !strings.Contains(string(b), "](progress-testnet10.svg)") {
			t.Errorf("%s links its plots wrongly", f)
		}
	}
	// Traffic samples survive the compact form, and the older object form
	// still loads.
	var smp []Sample
	if err := json.Unmarshal([]byte(`[[1500,10,20],{"t":2.25,"up":30,"down":40}]`), &smp); err != nil ||
		smp[0] != (Sample{T: 1.5, Up: 10, Down: 20}) || smp[1] != (Sample{T: 2.25, Up: 30, Down: 40}) {
		t.Fatalf("samples: %+v %v", smp, err)
	}
	if b, _ := json.Marshal(Sample{T: 1.2345, Up: 1, Down: 2}); string(b) != "[1235,1,2]" {
		t.Fatalf("sample JSON %s", b)
	}
	// A second set for another network is merged, not replacing the first.
	res2, err := LoadResults(filepath.Join(out, "results.json"))
	if err != nil || len(res2.Sets) != 1 || len(res2.Sets[0].Runs) != len(s.Runs) {
		t.Fatalf("LoadResults: %v %+v", err, res2)
	}
	res2.Put(Set{Network: Replay2019})
	res2.Put(Set{Network: Testnet50})
	if res2.Sets[0].Network != Testnet10 || res2.Sets[1].Network != Testnet50 || res2.Sets[2].Network != Replay2019 {
		t.Fatalf("sets out of order: %v %v %v", res2.Sets[0].Network, res2.Sets[1].Network, res2.Sets[2].Network)
	}
}

func TestReplayData(t *testing.T) {
	dir := realnet.Path(t, ReplaySetDir)
	d, err := loadReplayData(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Figures from testdata/realnet/README.md.
	if len(d.Digests) != 6345 || len(d.Certs) != 9 || len(d.Auths) != 9 ||
		d.SignedSHA != "8020C7A1C93616A0ED0B5F8D3908D8BEC62BAA490CA0BF23832956E0CDF8AA3C" {
		t.Fatalf("%d digests, %d certs, %d authorities, signed part %s", len(d.Digests), len(d.Certs), len(d.Auths), d.SignedSHA)
	}
	for _, a := range d.Auths {
		if len(a.V3Ident) != 40 || len(a.Identity) != 40 {
			t.Errorf("authority %+v", a)
		}
	}
	if d.Auths[5].Nick != "moria1" || d.Auths[5].Identity != "9695DFC35FFEB861329B9F1AB04C46397020CE31" {
		t.Errorf("moria1: %+v", d.Auths[5])
	}
	for _, c := range d.Certs {
		if !strings.Contains(string(d.Consensus), "directory-signature sha256 "+c.Identity+" "+c.Signing) {
			t.Errorf("certificate %s/%s signs nothing in the consensus", c.Identity, c.Signing)
		}
	}
	md := d.MDs[d.Digests[0]]
	if !strings.HasPrefix(string(md), "onion-key\n") || strings.Contains(string(md), "@last-listed") {
		t.Errorf("first microdescriptor: %q", md)
	}
}

func TestWithNetworks(t *testing.T) {
	got := withNetworks([]string{"bench", "--networks", "testnet10,replay2019", "--reps", "2", "--networks=x", "-v"}, Replay2019)
	want := "bench --reps 2 -v --networks replay2019"
	if strings.Join(got, " ") != want {
		t.Fatalf("withNetworks = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestReplayServer(t *testing.T) {
	d, err := loadReplayData(realnet.Path(t, ReplaySetDir))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newReplayServer(d)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w
	}
	w := get("/tor/status-vote/current/consensus-microdesc/D586D1+14C131")
	if w.Code != 200 || w.Body.String() != string(d.Consensus) || w.Header().Get("Date") != "" {
		t.Fatalf("consensus: %d, %d bytes, Date %q", w.Code, w.Body.Len(), w.Header().Get("Date"))
	}
	if w := get("/tor/status-vote/current/consensus-microdesc", "X-Or-Diff-From-Consensus", strings.ToLower(d.SignedSHA)); w.Code != 304 {
		t.Fatalf("diff from the current consensus: %d", w.Code)
	}
	if w := get("/tor/status-vote/current/consensus-microdesc", "If-Modified-Since", "Sun, 15 Dec 2019 13:00:00 GMT"); w.Code != 304 {
		t.Fatalf("If-Modified-Since valid-after: %d", w.Code)
	}
	w = get("/tor/status-vote/current/consensus-microdesc.z")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "deflate" || w.Body.Len() >= len(d.Consensus)/2 {
		t.Fatalf(".z consensus: %d %q %d bytes", w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
	}
	w = get("/tor/micro/d/" + d.Digests[5] + "-" + d.Digests[9] + "-nosuchdigest")
	if w.Code != 200 || w.Body.String() != string(d.MDs[d.Digests[5]])+string(d.MDs[d.Digests[9]]) {
		t.Fatalf("microdescs: %d", w.Code)
	}
	if w := get("/tor/micro/d/nosuchdigest"); w.Code != 404 {
		t.Fatalf("unknown microdesc: %d", w.Code)
	}
	c := d.Certs[3]
	for _, p := range []string{"/tor/keys/fp/" + c.Identity, "/tor/keys/fp-sk/" + c.Identity + "-" + c.Signing, "/tor/keys/sk/" + strings.ToLower(c.Signing)} {
		if w := get(p); w.Code != 200 || w.Body.String() != string(c.Text) {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	if w := get("/tor/keys/all"); strings.Count(w.Body.String(), "dir-key-certificate-version 3") != 9 {
		t.Error("keys/all does not hold 9 certificates")
	}
	if w := get("/tor/status-vote/current/consensus"); w.Code != 404 {
		t.Errorf("ns consensus: %d, want 404", w.Code)
	}
	lines := authorityLines(d.Auths, true)
	if len(lines) != 9 || lines[0] != "DirAuthority dannenberg orport=7001 no-v2 v3ident=0232AF901C31A04EE9848595AF9BB7620D4C5B2E 127.0.0.1:7001 "+fakeIdentity("dannenberg") {
		t.Errorf("relay authority lines: %q", lines[0])
	}
	if l := authorityLines(d.Auths, false)[0]; !strings.HasSuffix(l, " 7BE683E65D48141321C5ED92F075C55364AC7123") {
		t.Errorf("client authority line: %q", l)
	}
}

// TestDisplayPaths: reports show no machine paths: a run's error keeps
// the last two elements of the log it names, a recorded command keeps
// paths inside the working directory relative.
func TestDisplayPaths(t *testing.T) {
	got := displayPaths("onionlite bootstrap: reset (log /tmp/bench4/work/replay2019/lossy/rep1/onionlite/001-cold.log)")
	if want := "onionlite bootstrap: reset (log .../onionlite/001-cold.log)"; got != want {
		t.Errorf("displayPaths: %q, want %q", got, want)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	got = displayCommand("onionlite bench --out " + filepath.Join(wd, "docs", "bench") + " --work /tmp/x/work --client-bin=/tmp/x/onionlite-client")
	if want := "onionlite bench --out docs/bench --work .../work --client-bin=.../onionlite-client"; got != want {
		t.Errorf("displayCommand: %q, want %q", got, want)
	}
}

// TestMemoryParts: the sampled peaks of RssAnon and RssFile are each the
// highest sample, are kept in results.json (and absent from older
// files), and make two more rows of the details tables, left out when no
// run has them.
func TestMemoryParts(t *testing.T) {
	anon, file := peakParts([]procSample{{Anon: 5, File: 9}, {Anon: 7, File: 2}, {Anon: 1, File: 3}})
	if anon != 7 || file != 9 {
		t.Fatalf("peakParts = %d, %d; want 7, 9", anon, file)
	}
	if a, f := peakParts(nil); a != 0 || f != 0 {
		t.Fatalf("peakParts of no samples = %d, %d", a, f)
	}
	if runtime.GOOS == "linux" {
		x, err := readProc(os.Getpid())
		if err != nil || x.Anon <= 0 || x.File <= 0 || x.Anon > x.HWM || x.File > x.HWM {
			t.Fatalf("readProc(self) = %+v, %v", x, err)
		}
	}

	anonRow := "| cold | peak anonymous memory (RssAnon), sampled |"
	fileRow := "| cold | peak file-backed memory (RssFile), sampled |"
	s := testSet()
	var b strings.Builder
	writeSet(&b, s, "bench")
	if strings.Contains(b.String(), anonRow) || strings.Contains(b.String(), fileRow) {
		t.Fatalf("rows without data:\n%s", b.String())
	}
	for i := range s.Runs {
		if s.Runs[i].Client == Onionlite {
			s.Runs[i].PeakRSSAnon, s.Runs[i].PeakRSSFile = int64(3+s.Runs[i].Rep)*1e6, 2e6
		} else {
			s.Runs[i].PeakRSSAnon, s.Runs[i].PeakRSSFile = 8e6, 10e6
		}
	}
	b.Reset()
	writeSet(&b, s, "bench")
	for _, want := range []string{
		// onionlite 4, 5, 6 MB; C tor 8 MB each: ratios 0.5, 0.625, 0.75.
		anonRow + " 5.00 MB (4.00–6.00 MB) | 8.00 MB | 0.62× (0.50–0.75×) |",
		fileRow + " 2.00 MB | 10.00 MB | 0.20× |",
		"| cold | peak RSS (VmHWM), whole run |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "results.json")
	res := &Results{}
	res.Put(*s)
	if err := res.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Sets[0].Runs[0]; r.PeakRSSAnon != 4e6 || r.PeakRSSFile != 2e6 {
		t.Fatalf("loaded run: anon %d, file %d", r.PeakRSSAnon, r.PeakRSSFile)
	}
	var old Run
	if err := json.Unmarshal([]byte(`{"client":"tor","ok":true,"peak_rss":13000000}`), &old); err != nil || old.PeakRSSAnon != 0 || old.PeakRSSFile != 0 {
		t.Fatalf("a run from before the split: %+v, %v", old, err)
	}
	if line, _ := json.Marshal(old); strings.Contains(string(line), "peak_rss_anon") || strings.Contains(string(line), "peak_rss_file") {
		t.Fatalf("unrecorded parts are written: %s", line)
	}
}

// TestReplayDropsLinksThatCannotCarryTheConsensus: on the 2019 replay the
// consensus alone, zstd-compressed, is larger than the lossy link's reset
// interval, so that link is left out (and said so); the others stay.
func TestReplayDropsLinksThatCannotCarryTheConsensus(t *testing.T) {
	d, err := loadReplayData(realnet.Path(t, ReplaySetDir))
	if err != nil {
		t.Fatal(err)
	}
	size, err := zstdSize(d.Consensus)
	if err != nil {
		t.Fatal(err)
	}
	if size <= 0 || size >= int64(len(d.Consensus)) {
		t.Fatalf("zstd size %d of a %d-byte consensus", size, len(d.Consensus))
	}
	keep, dropped := carriable(Profiles, size)
	var names []string
	for _, p := range dropped {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "lossy" || len(keep) != len(Profiles)-1 {
		t.Fatalf("consensus of %d bytes (zstd): dropped %v, kept %d of %d", size, names, len(keep), len(Profiles))
	}
	// A response smaller than every reset interval keeps every link.
	if keep, dropped := carriable(Profiles, 1000); len(dropped) != 0 || len(keep) != len(Profiles) {
		t.Fatalf("1000 bytes: dropped %v", dropped)
	}
}
