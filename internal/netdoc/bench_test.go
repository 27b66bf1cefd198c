package netdoc

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// Benchmarks on the real 2026 consensus (9,609 relays, 3,432,457 bytes)
// and the 2019 microdescriptor set. Besides ns/op and B/op they report:
//
//	peak-B      heap growth of one operation with the GC off: everything
//	            it allocated, an upper bound on its peak heap use
//	peak/doc    peak-B divided by the document size (target: <= 1.5)
//	retained-B  live heap held by the result after a full GC
//
// Results are written down in docs/netdoc.md; nothing here is asserted.

// memStats measures one run of f.
func memStats(b *testing.B, docLen int, f func() any) {
	b.Helper()
	runtime.GC()
	old := debug.SetGCPercent(-1)
	var m0, m1, withResult, without runtime.MemStats
	runtime.ReadMemStats(&m0)
	v := f()
	runtime.ReadMemStats(&m1)
	debug.SetGCPercent(old)
	runtime.GC()
	runtime.ReadMemStats(&withResult)
	runtime.KeepAlive(v)
	v = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	peak := float64(m1.TotalAlloc - m0.TotalAlloc)
	b.ReportMetric(peak, "peak-B")
	b.ReportMetric(peak/float64(docLen), "peak/doc")
	b.ReportMetric(float64(int64(withResult.HeapAlloc)-int64(without.HeapAlloc)), "retained-B")
}

func BenchmarkParseConsensus(b *testing.B) {
	doc := realDoc(b, path2026)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConsensus(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	memStats(b, len(doc), func() any {
		u, _ := ParseConsensus(doc)
		return u
	})
}

func BenchmarkParseCheckConsensus(b *testing.B) {
	doc := realDoc(b, path2026)
	now := mustTime("2026-06-27 04:30:00")
	certs := checkedCerts(b, certs2026, now)
	trusted := DefaultAuthorities()
	run := func() any {
		u, err := ParseConsensus(doc)
		if err != nil {
			b.Fatal(err)
		}
		c, err := u.Check(now, trusted, certs)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	b.StopTimer()
	memStats(b, len(doc), run)
}

func BenchmarkCheckConsensusOnly(b *testing.B) {
	doc := realDoc(b, path2026)
	now := mustTime("2026-06-27 04:30:00")
	certs := checkedCerts(b, certs2026, now)
	trusted := DefaultAuthorities()
	u, err := ParseConsensus(doc)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := u.Check(now, trusted, certs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAuthCerts(b *testing.B) {
	doc := realDoc(b, certs2026)
	now := mustTime("2026-06-27 04:30:00")
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		us, err := ParseAuthCerts(doc)
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range us {
			if _, err := u.Check(now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseMicrodescs2019(b *testing.B) {
	doc := realDoc(b, mds2019)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMicrodescs(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	memStats(b, len(doc), func() any {
		mds, _ := ParseMicrodescs(doc)
		return mds
	})
}

func BenchmarkParseMicrodescs2025(b *testing.B) {
	doc := realDoc(b, mds2025)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMicrodescs(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	memStats(b, len(doc), func() any {
		mds, _ := ParseMicrodescs(doc)
		return mds
	})
}
