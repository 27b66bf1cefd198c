package circmgr

import (
	"bufio"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Benchmarks against the real tor test network (all relays on one
// loopback host, so the numbers are the client's and C tor's processing,
// not network latency). Run them with a small count:
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/circmgr

// BenchmarkRealBuildAndDial: a new isolation key each time, so each
// iteration builds a 3-hop circuit and opens a stream on it.
func BenchmarkRealBuildAndDial(b *testing.B) {
	r := newRig(b)
	m := r.manager(b, nil)
	b.ResetTimer()
	for b.Loop() {
		s, err := m.Dial(ctxFor(b, time.Minute), NewKey(), r.host, r.port)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.StopTimer()
	st := m.Stats()
	b.ReportMetric(float64(st.MedianBuild.Microseconds())/1000, "build-median-ms")
	b.ReportMetric(float64(st.P90Build.Microseconds())/1000, "build-p90-ms")
}

// BenchmarkRealDialReuse: a stream on an open circuit (BEGIN to
// CONNECTED).
func BenchmarkRealDialReuse(b *testing.B) {
	r := newRig(b)
	m := r.manager(b, nil)
	s, err := m.Dial(ctxFor(b, time.Minute), Key(""), r.host, r.port)
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := m.Dial(ctxFor(b, time.Minute), Key(""), r.host, r.port)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.StopTimer()
	if st := m.Stats(); st.Built != 1 {
		b.Fatalf("%d circuits built", st.Built)
	}
}

// firstByte dials and GETs the 64 KiB body until its first byte.
func firstByte(b *testing.B, r *rig, m *Manager, key IsolationKey) {
	s, err := m.Dial(ctxFor(b, time.Minute), key, r.host, r.port)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fmt.Fprintf(s, "GET /64KiB.bin HTTP/1.0\r\nHost: %s\r\n\r\n", r.host)
	if _, err := bufio.NewReader(s).ReadByte(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRealFirstByte: time to the first byte of a response for a
// manager's first request, with no circuit ready (cold) and with a
// preemptive circuit built beforehand (warm).
func BenchmarkRealFirstByte(b *testing.B) {
	r := newRig(b)
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			m := r.manager(b, nil)
			b.StartTimer()
			firstByte(b, r, m, NewKey())
			b.StopTimer()
			m.Close()
			b.StartTimer()
		}
	})
	b.Run("preemptive", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			m := r.manager(b, func(c *Config) { c.Preemptive = 1 })
			for m.Stats().Clean == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			b.StartTimer()
			firstByte(b, r, m, NewKey())
			b.StopTimer()
			m.Close()
			b.StartTimer()
		}
	})
}

// BenchmarkRealFetch1MiB: the 1 MiB body over one reused circuit.
func BenchmarkRealFetch1MiB(b *testing.B) {
	r := newRig(b)
	m := r.manager(b, nil)
	want := r.body(b, "1MiB.bin")
	b.SetBytes(want.Size)
	for b.Loop() {
		s, err := m.Dial(ctxFor(b, time.Minute), Key(""), r.host, r.port)
		if err != nil {
			b.Fatal(err)
		}
		sum, _, err := fetch(s, r.host, want.Name)
		s.Close()
		if err != nil || sum != want.SHA256 {
			b.Fatalf("fetch: %v", err)
		}
	}
}

// BenchmarkRealCircuitMemory reports the heap an idle open circuit costs
// the client (channel shared), measured over 20 circuits.
func BenchmarkRealCircuitMemory(b *testing.B) {
	r := newRig(b)
	const n = 20
	for b.Loop() {
		b.StopTimer()
		m := r.manager(b, func(c *Config) { c.Logf = nil }) // the test log would hold memory
		// One circuit first, so the channel to the guard exists.
		s, err := m.Dial(ctxFor(b, time.Minute), NewKey(), r.host, r.port)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for range n {
			s, err := m.Dial(ctxFor(b, time.Minute), NewKey(), r.host, r.port)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Stats().Open != n+1 {
			b.Fatalf("%d circuits open", m.Stats().Open)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/circuit")
		m.Close()
		b.StartTimer()
	}
}
