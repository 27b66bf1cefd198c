package benchrun

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
)

// Colours of the two clients and of the goal lines.
const (
	colorOL   = "#1b6ac9"
	colorTor  = "#d9730d"
	colorGoal = "#222"
	colorMet  = "#2e7d32"
	colorMiss = "#c62828"
	colorNone = "#888"
	colorAxis = "#555"
	colorGrid = "#e3e3e3"
	fontAttrs = `font-family="Helvetica, Arial, sans-serif"`
)

// svgDoc accumulates one SVG document.
type svgDoc struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, title string) *svgDoc {
	d := &svgDoc{w: w, h: h}
	fmt.Fprintf(&d.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" %s font-size="12">`+"\n", w, h, w, h, fontAttrs)
	fmt.Fprintf(&d.b, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(&d.b, `<rect x="0" y="0" width="%g" height="%g" fill="#fff"/>`+"\n", w, h)
	return d
}

func esc(s string) string { return html.EscapeString(s) }

func (d *svgDoc) text(x, y float64, anchor, attrs, s string) {
	fmt.Fprintf(&d.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, attrs, esc(s))
}

func (d *svgDoc) line(x1, y1, x2, y2 float64, stroke string, attrs string) {
	fmt.Fprintf(&d.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" %s/>`+"\n", x1, y1, x2, y2, stroke, attrs)
}

func (d *svgDoc) rect(x, y, w, h float64, fill string, attrs string) {
	fmt.Fprintf(&d.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" %s/>`+"\n", x, y, math.Max(w, 0), math.Max(h, 0), fill, attrs)
}

func (d *svgDoc) String() string { return d.b.String() + "</svg>\n" }

// niceTicks returns about n round tick values from 0 to at least max.
func niceTicks(max float64, n int) []float64 {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return []float64{0, 1}
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := 0.0; v < max+step*0.999; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

func tickLabel(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// coldScenario returns the set's cold scenario on profile p (bootstrap
// only or with its fetch), or false.
func coldScenario(s *Set, p Profile) (Scenario, bool) {
	for _, sc := range s.Scenarios {
		if sc.Start != Cold {
			continue
		}
		if len(runsOf(s.Runs, s.Network, p.Name, sc.Name(), Onionlite))+len(runsOf(s.Runs, s.Network, p.Name, sc.Name(), CTor)) > 0 {
			return sc, true
		}
	}
	return Scenario{}, false
}

// ProgressSVG plots bootstrap progress against time for one cold start
// per client and link (the median run by time to directory ready), one
// panel per link. It returns "" when there is nothing to plot.
func ProgressSVG(s *Set) string {
	type panel struct {
		p       Profile
		ol, tor *Run
	}
	m, _ := MetricByKey("time_dir")
	var panels []panel
	for _, p := range s.Profiles {
		sc, ok := coldScenario(s, p)
		if !ok {
			continue
		}
		pn := panel{p: p, ol: medianRun(s.Runs, s.Network, p.Name, sc.Name(), Onionlite, m), tor: medianRun(s.Runs, s.Network, p.Name, sc.Name(), CTor, m)}
		if pn.ol != nil || pn.tor != nil {
			panels = append(panels, pn)
		}
	}
	if len(panels) == 0 {
		return ""
	}
	const pw, ph, cols = 430.0, 230.0, 2
	rows := (len(panels) + cols - 1) / cols
	d := newSVG(pw*cols, 40+ph*float64(rows), "Bootstrap progress over time, cold start: "+setTitle(s))
	d.text(12, 20, "start", `font-size="14" font-weight="bold"`, "Bootstrap progress, cold start ("+s.Network+")")
	d.line(pw*cols-300, 16, pw*cols-280, 16, colorOL, `stroke-width="2.5"`)
	d.text(pw*cols-276, 20, "start", "", "onionlite")
	d.line(pw*cols-200, 16, pw*cols-180, 16, colorTor, `stroke-width="2.5"`)
	d.text(pw*cols-176, 20, "start", "", "C tor")
	for i, pn := range panels {
		ox, oy := pw*float64(i%cols), 40+ph*float64(i/cols)
		progressPanel(d, ox, oy, pw, ph, pn.p, pn.ol, pn.tor)
	}
	return d.String()
}

func progressPanel(d *svgDoc, ox, oy, pw, ph float64, p Profile, ol, tor *Run) {
	const ml, mr, mt, mb = 48.0, 16.0, 26.0, 36.0
	x0, y0 := ox+ml, oy+ph-mb
	w, h := pw-ml-mr, ph-mt-mb
	tmax := 0.0
	for _, r := range []*Run{ol, tor} {
		if r == nil {
			continue
		}
		tmax = math.Max(tmax, r.ReadyS)
		for _, pt := range r.Progress {
			tmax = math.Max(tmax, pt.T)
		}
	}
	ticks := niceTicks(tmax*1.02, 5)
	xmax := ticks[len(ticks)-1]
	X := func(t float64) float64 { return x0 + w*t/xmax }
	Y := func(pct float64) float64 { return y0 - h*pct/100 }
	d.text(ox+ml, oy+16, "start", `font-weight="bold"`, p.Title)
	for _, v := range []float64{0, 25, 50, 75, 100} {
		d.line(x0, Y(v), x0+w, Y(v), colorGrid, "")
		d.text(x0-6, Y(v)+4, "end", `fill="#333"`, fmt.Sprintf("%.0f%%", v))
	}
	for _, t := range ticks {
		d.line(X(t), y0, X(t), y0+4, colorAxis, "")
		d.text(X(t), y0+16, "middle", `fill="#333"`, tickLabel(t))
	}
	d.line(x0, y0, x0+w, y0, colorAxis, "")
	d.line(x0, y0, x0, y0-h, colorAxis, "")
	d.text(x0+w/2, y0+31, "middle", `fill="#333"`, "seconds since start")
	for _, c := range []struct {
		r     *Run
		color string
	}{{tor, colorTor}, {ol, colorOL}} {
		if c.r == nil {
			continue
		}
		pts := append([]Point(nil), c.r.Progress...)
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].T < pts[j].T })
		var path strings.Builder
		fmt.Fprintf(&path, "M%.1f,%.1f", X(0), Y(0))
		last := 0.0
		for _, pt := range pts {
			fmt.Fprintf(&path, " L%.1f,%.1f L%.1f,%.1f", X(pt.T), Y(last), X(pt.T), Y(float64(pt.Percent)))
			last = float64(pt.Percent)
		}
		if end := c.r.ReadyS; end > 0 {
			fmt.Fprintf(&path, " L%.1f,%.1f", X(end), Y(last))
		}
		fmt.Fprintf(&d.b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), c.color)
		if c.r.DirReadyS > 0 {
			pct := 100.0
			if c.r.Client == CTor {
				pct = 75
			}
			fmt.Fprintf(&d.b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", X(c.r.DirReadyS), Y(pct), c.color)
		}
	}
}

// ratioGroup is one block of bars in RatiosSVG.
type ratioGroup struct {
	metric string
	title  string
	goal   float64 // 0: none
}

var ratioGroups = []ratioGroup{
	{"bytes_total", "bytes, bootstrap + fetch", 0.75},
	{"bytes_dir_ready", "bytes at directory ready", 0.75},
	{"bytes_ready", "bytes at ready (C tor 100 %)", 0.75},
	{"ttfb", "start → first byte (slow links)", 0.8},
	{"time_dir", "start → directory ready (slow links)", 0.8},
	{"time_ready", "start → ready, C tor 100 % (slow links)", 0.8},
	{"rss", "peak RSS", 0.6},
	{"cpu", "CPU seconds", 0},
}

// RatiosSVG draws, per metric, one horizontal bar per link: the median
// ratio onionlite / C tor of the cold start with a min–max whisker, a
// line at 1 and the goal as a dashed line. It returns "" when no pair was
// measured.
func RatiosSVG(s *Set) string {
	type bar struct {
		label string
		r     Summary
	}
	type block struct {
		g    ratioGroup
		bars []bar
	}
	var blocks []block
	xmaxData := 1.0
	for _, g := range ratioGroups {
		m, _ := MetricByKey(g.metric)
		var bl block
		bl.g = g
		for _, p := range s.Profiles {
			if g.goal == 0.8 && !p.Throttled() {
				continue
			}
			sc, ok := coldScenario(s, p)
			if !ok || (m.FetchOnly && sc.Fetch == "") {
				continue
			}
			c := Compare(s.Runs, s.Network, p.Name, sc.Name(), m)
			if c.Ratio.N == 0 {
				continue
			}
			bl.bars = append(bl.bars, bar{p.Name, c.Ratio})
			xmaxData = math.Max(xmaxData, c.Ratio.Max)
		}
		if len(bl.bars) > 0 {
			blocks = append(blocks, bl)
		}
	}
	if len(blocks) == 0 {
		return ""
	}
	const maxShown = 4.0 // longer bars are cut, with their value written
	ticks := niceTicks(math.Min(xmaxData, maxShown)*1.05, 6)
	xmax := ticks[len(ticks)-1]
	const left, plotW, barH, gap, headH = 250.0, 420.0, 14.0, 4.0, 22.0
	height := 40.0
	for _, bl := range blocks {
		height += headH + float64(len(bl.bars))*(barH+gap) + 10
	}
	height += 40
	d := newSVG(left+plotW+80, height, "Ratios onionlite / C tor, cold start: "+setTitle(s))
	d.text(12, 20, "start", `font-size="14" font-weight="bold"`, "onionlite / C tor, cold start ("+s.Network+"): below 1 is better")
	X := func(v float64) float64 { return left + plotW*math.Min(v, xmax)/xmax }
	top, bottom := 40.0, height-40
	for _, t := range ticks {
		d.line(X(t), top, X(t), bottom, colorGrid, "")
		d.text(X(t), bottom+14, "middle", `fill="#333"`, tickLabel(t)+"×")
	}
	d.line(X(1), top, X(1), bottom, colorAxis, `stroke-width="1.2"`)
	d.text(left+plotW/2, bottom+28, "middle", `fill="#333"`, fmt.Sprintf("ratio (bars beyond %s× are cut); green: goal met, red: missed, grey: no goal", tickLabel(xmax)))
	y := top
	for _, bl := range blocks {
		d.text(12, y+15, "start", `font-weight="bold"`, bl.g.title)
		y += headH
		blockTop := y
		for _, br := range bl.bars {
			d.text(left-8, y+barH-3, "end", `fill="#333"`, br.label)
			color := colorNone
			switch {
			case bl.g.goal > 0 && br.r.Median > bl.g.goal:
				color = colorMiss
			case bl.g.goal > 0:
				color = colorMet
			}
			d.rect(left, y, X(br.r.Median)-left, barH, color, `fill-opacity="0.85"`)
			if br.r.N > 1 {
				ym := y + barH/2
				d.line(X(br.r.Min), ym, X(br.r.Max), ym, "#222", `stroke-width="1.2"`)
				d.line(X(br.r.Min), ym-4, X(br.r.Min), ym+4, "#222", "")
				d.line(X(br.r.Max), ym-4, X(br.r.Max), ym+4, "#222", "")
			}
			labelAt := X(br.r.Median)
			if br.r.N > 1 {
				labelAt = X(math.Max(br.r.Median, br.r.Max))
			}
			d.text(math.Min(labelAt, left+plotW)+6, y+barH-3, "start", `fill="#111"`, fmtRatio(br.r.Median))
			y += barH + gap
		}
		if bl.g.goal > 0 {
			d.line(X(bl.g.goal), blockTop-3, X(bl.g.goal), y, colorGoal, `stroke-width="1.5" stroke-dasharray="4,3"`)
		}
		y += 10
	}
	return d.String()
}

// TrafficSVG plots the bytes received through the proxy against time for
// the same cold starts as ProgressSVG, one panel per link. It returns ""
// when there is nothing to plot.
func TrafficSVG(s *Set) string {
	m, _ := MetricByKey("time_dir")
	type panel struct {
		p       Profile
		ol, tor *Run
	}
	var panels []panel
	for _, p := range s.Profiles {
		sc, ok := coldScenario(s, p)
		if !ok {
			continue
		}
		pn := panel{p: p, ol: medianRun(s.Runs, s.Network, p.Name, sc.Name(), Onionlite, m), tor: medianRun(s.Runs, s.Network, p.Name, sc.Name(), CTor, m)}
		if (pn.ol != nil && len(pn.ol.Traffic) > 1) || (pn.tor != nil && len(pn.tor.Traffic) > 1) {
			panels = append(panels, pn)
		}
	}
	if len(panels) == 0 {
		return ""
	}
	const pw, ph, cols = 430.0, 230.0, 2
	rows := (len(panels) + cols - 1) / cols
	d := newSVG(pw*cols, 40+ph*float64(rows), "Bytes received over time, cold start: "+setTitle(s))
	d.text(12, 20, "start", `font-size="14" font-weight="bold"`, "Bytes received (relays → client), cold start ("+s.Network+")")
	d.line(pw*cols-300, 16, pw*cols-280, 16, colorOL, `stroke-width="2.5"`)
	d.text(pw*cols-276, 20, "start", "", "onionlite")
	d.line(pw*cols-200, 16, pw*cols-180, 16, colorTor, `stroke-width="2.5"`)
	d.text(pw*cols-176, 20, "start", "", "C tor")
	for i, pn := range panels {
		trafficPanel(d, pw*float64(i%cols), 40+ph*float64(i/cols), pw, ph, pn.p, pn.ol, pn.tor)
	}
	return d.String()
}

func trafficPanel(d *svgDoc, ox, oy, pw, ph float64, p Profile, ol, tor *Run) {
	const ml, mr, mt, mb = 64.0, 16.0, 26.0, 36.0
	x0, y0 := ox+ml, oy+ph-mb
	w, h := pw-ml-mr, ph-mt-mb
	tmax, bmax := 0.0, 0.0
	for _, r := range []*Run{ol, tor} {
		if r == nil {
			continue
		}
		for _, x := range r.Traffic {
			tmax, bmax = math.Max(tmax, x.T), math.Max(bmax, float64(x.Down))
		}
	}
	xt, yt := niceTicks(tmax*1.02, 5), niceTicks(bmax*1.02, 4)
	xmax, ymax := xt[len(xt)-1], yt[len(yt)-1]
	X := func(t float64) float64 { return x0 + w*t/xmax }
	Y := func(v float64) float64 { return y0 - h*v/ymax }
	d.text(ox+ml, oy+16, "start", `font-weight="bold"`, p.Title)
	for _, v := range yt {
		d.line(x0, Y(v), x0+w, Y(v), colorGrid, "")
		d.text(x0-6, Y(v)+4, "end", `fill="#333"`, fmtBytes(v))
	}
	for _, t := range xt {
		d.line(X(t), y0, X(t), y0+4, colorAxis, "")
		d.text(X(t), y0+16, "middle", `fill="#333"`, tickLabel(t))
	}
	d.line(x0, y0, x0+w, y0, colorAxis, "")
	d.line(x0, y0, x0, y0-h, colorAxis, "")
	d.text(x0+w/2, y0+31, "middle", `fill="#333"`, "seconds since start")
	for _, c := range []struct {
		r     *Run
		color string
	}{{tor, colorTor}, {ol, colorOL}} {
		if c.r == nil || len(c.r.Traffic) == 0 {
			continue
		}
		var path strings.Builder
		for i, x := range c.r.Traffic {
			op := " L"
			if i == 0 {
				op = "M"
			}
			fmt.Fprintf(&path, "%s%.1f,%.1f", op, X(x.T), Y(float64(x.Down)))
		}
		fmt.Fprintf(&d.b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", path.String(), c.color)
		if c.r.DirReadyS > 0 {
			fmt.Fprintf(&d.b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", X(c.r.DirReadyS), Y(float64(c.r.DownDirReady)), c.color)
		}
	}
}
