package netdir

import (
	"runtime"
	"testing"

	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// retained returns the live heap that mk leaves behind, measured as the
// HeapAlloc difference around it with full collections on both sides.
// mk must drop everything but its result.
func retained(mk func() *NetDir) (*NetDir, int64) {
	runtime.GC()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	nd := mk()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	return nd, int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
}

// synthetic2026 builds the 9,609-relay 2026 consensus with its 51 real
// microdescriptors and SYNTHETIC ones for every other relay (random keys;
// real family lines from the 2025 and 2026 samples; real exit policies).
func synthetic2026(t testing.TB) (*netdoc.Consensus, []netdoc.Microdesc) {
	c := checkedConsensus(t, cons2026)
	real := append(parseMDs(t, mds2026), parseMDs(t, "2025-05-17-modern-md-sample/cached-microdescs.new")...)
	return c, netdirtest.Microdescs(c, real, 1)
}

func logStats(t testing.TB, name string, nd *NetDir, heap int64) {
	s := nd.Stats()
	n := float64(s.Relays)
	t.Logf("%s: %d relays, %d microdescs; accounted %d bytes (%.1f/relay: relays %.1f incl. %d policies %.1f, families %.1f: %d declarations, %d members); heap delta %d (%.1f/relay)",
		name, s.Relays, s.Microdescs, s.Bytes, float64(s.Bytes)/n, float64(s.RelayBytes)/n, s.Policies, float64(s.PolicyBytes)/n,
		float64(s.FamilyBytes)/n, s.Families, s.FamilyMembers, heap, float64(heap)/n)
}

func TestBytesPerRelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func() *NetDir
	}{
		{"2019 real, complete", func() *NetDir { _, _, nd := full2019(t); return nd }},
		{"2026 real consensus, synthetic microdescs", func() *NetDir {
			c, mds := synthetic2026(t)
			return build(t, c, nil, mds)
		}},
		{"2026 real consensus, no microdescs", func() *NetDir { return build(t, checkedConsensus(t, cons2026), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nd, heap := retained(tc.mk)
			logStats(t, tc.name, nd, heap)
			s := nd.Stats()
			if per := float64(s.RelayBytes) / float64(s.Relays); per > 150 {
				t.Errorf("%.1f bytes per relay (without families), budget 150", per)
			}
			// The accounting must explain the heap: allocation size
			// classes round up a little, nothing else should remain.
			if ratio := float64(heap) / float64(s.Bytes); ratio < 0.97 || ratio > 1.10 {
				t.Errorf("heap delta %d vs accounted %d bytes (ratio %.3f)", heap, s.Bytes, ratio)
			}
			runtime.KeepAlive(nd)
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, tc := range []struct {
		name string
		load func() (*netdoc.Consensus, []netdoc.Microdesc)
	}{
		{"2019-full", func() (*netdoc.Consensus, []netdoc.Microdesc) {
			c, mds, _ := full2019(b)
			return c, mds
		}},
		{"2026-synthetic-mds", func() (*netdoc.Consensus, []netdoc.Microdesc) { return synthetic2026(b) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, mds := tc.load()
			b.ReportAllocs()
			var nd *NetDir
			for b.Loop() {
				nd = build(b, c, nil, mds)
			}
			s := nd.Stats()
			b.ReportMetric(float64(s.RelayBytes)/float64(s.Relays), "relay-B/relay")
			b.ReportMetric(float64(s.Bytes)/float64(s.Relays), "total-B/relay")
		})
	}
}

// BenchmarkRefresh builds the 19:00 consensus from the 17:00 NetDir
// (the hourly refresh path), adding no microdescriptors.
func BenchmarkRefresh(b *testing.B) {
	c17 := checkedConsensus(b, cons2021at17)
	c19 := checkedConsensus(b, cons2021at19)
	nd17 := build(b, c17, nil, parseMDs(b, mds2021))
	b.ReportAllocs()
	for b.Loop() {
		build(b, c19, nd17)
	}
}

func BenchmarkDirInfo(b *testing.B) {
	c, mds := synthetic2026(b)
	bl, err := NewBuilder(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	bl.AddMicrodescs(mds[:len(mds)/2])
	b.ReportAllocs()
	for b.Loop() {
		bl.DirInfo()
	}
}
