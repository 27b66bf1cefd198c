package pathsel

import (
	"testing"

	"github.com/onionlite/onionlite/dircache/netdir"
)

// Benchmarks on the 9,609-relay 2026 consensus (synthetic microdescs for
// the relays whose real ones are missing).

func BenchmarkNew(b *testing.B) {
	d := load2026(b)
	b.ReportAllocs()
	for b.Loop() {
		New(d.nd, Config{})
	}
}

func BenchmarkSelect(b *testing.B) {
	d := load2026(b)
	s := New(d.nd, Config{})
	for _, bc := range []struct {
		name string
		pos  Position
		opt  Options
	}{
		{"guard", PosGuard, Options{}},
		{"middle-excluding-2", PosMiddle, Options{NeedFast: true, Exclude: []netdir.RelayIndex{100, 5000}}},
		{"exit-443", PosExit, Options{Port: 443, NeedFast: true}},
		{"exit-6667-stable", PosExit, Options{Port: 6667, NeedFast: true, NeedStable: true}},
		{"guard-filter-2pct", PosGuard, Options{Filter: func(i netdir.RelayIndex) bool { return i%50 == 7 }}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := seeded(1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Select(bc.pos, bc.opt, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuildPath(b *testing.B) {
	d := load2026(b)
	s := New(d.nd, Config{})
	r := seeded(2)
	guard, err := s.Select(PosGuard, Options{}, r)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		guard netdir.RelayIndex
		t     Target
	}{
		{"guard-given-443", guard, Target{Port: 443}},
		{"no-guard-443", netdir.NoRelay, Target{Port: 443}},
		{"preemptive", guard, Target{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.BuildPath(bc.guard, bc.t, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
