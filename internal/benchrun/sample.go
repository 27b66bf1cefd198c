package benchrun

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/procmem"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// maxTrafficSamples is how many traffic samples a run keeps in
// results.json (evenly thinned), enough for the plots.
const maxTrafficSamples = 150

// sampleEvery is the sampler's period: bytes at the proxy and the
// client's CPU and memory are read this often during a run.
const sampleEvery = 50 * time.Millisecond

// procSample is a client's CPU time and memory at one moment: its peak
// RSS so far (VmHWM) and the anonymous and file-backed parts of its RSS
// at that moment (RssAnon, RssFile), in bytes.
type procSample struct {
	T    float64
	CPU  float64
	HWM  int64
	Anon int64
	File int64
}

// sampler records the proxy's counters and the client process's CPU and
// memory every sampleEvery, from a start time t0 (the spawn).
type sampler struct {
	t0    time.Time
	proxy *slowlink.Proxy
	pid   atomic.Int64

	mu      sync.Mutex
	traffic []Sample
	procs   []procSample

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func startSampler(t0 time.Time, proxy *slowlink.Proxy) *sampler {
	s := &sampler{t0: t0, proxy: proxy, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// setPID names the process whose CPU and RSS are sampled.
func (s *sampler) setPID(pid int) { s.pid.Store(int64(pid)) }

// since returns the seconds from t0 to now.
func (s *sampler) since(now time.Time) float64 { return now.Sub(s.t0).Seconds() }

// snapshot reads the proxy now and records the reading.
func (s *sampler) snapshot() Sample {
	st := s.proxy.Stats()
	x := Sample{T: s.since(time.Now()), Up: st.Up, Down: st.Down}
	s.mu.Lock()
	s.traffic = append(s.traffic, x)
	s.mu.Unlock()
	return x
}

func (s *sampler) sample() {
	s.snapshot()
	pid := int(s.pid.Load())
	if pid == 0 {
		return
	}
	x, err := readProc(pid)
	if err != nil {
		return
	}
	x.T = s.since(time.Now())
	s.mu.Lock()
	s.procs = append(s.procs, x)
	s.mu.Unlock()
}

// readProc reads pid's CPU time and memory from /proc (T is left 0). It
// fails for a zombie, whose status has no memory lines.
func readProc(pid int) (procSample, error) {
	cpu, err := procCPU(pid)
	if err != nil {
		return procSample{}, err
	}
	st, err := procmem.Read(pid)
	if err != nil {
		return procSample{}, err
	}
	return procSample{CPU: cpu, HWM: st.VmHWM, Anon: st.RssAnon, File: st.RssFile}, nil
}

// peakParts returns the highest RssAnon and the highest RssFile among the
// samples (each its own maximum, possibly from different samples), or
// zeros when there are none. The kernel keeps no peak of either, so a
// spike between two samples is missed.
func peakParts(xs []procSample) (anon, file int64) {
	for _, x := range xs {
		anon, file = max(anon, x.Anon), max(file, x.File)
	}
	return anon, file
}

// finish stops sampling and returns what was recorded.
func (s *sampler) finish() ([]Sample, []procSample) {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	tr := append([]Sample(nil), s.traffic...)
	sort.SliceStable(tr, func(i, j int) bool { return tr[i].T < tr[j].T })
	return tr, append([]procSample(nil), s.procs...)
}

// trafficAt returns the first traffic sample at or after t (the counters
// include everything up to t), or the last one if none is that late.
func trafficAt(xs []Sample, t float64) Sample {
	for _, x := range xs {
		if x.T >= t {
			return x
		}
	}
	if len(xs) == 0 {
		return Sample{}
	}
	return xs[len(xs)-1]
}

// procAt returns the first process sample at or after t, or the last one.
func procAt(xs []procSample, t float64) procSample {
	for _, x := range xs {
		if x.T >= t {
			return x
		}
	}
	if len(xs) == 0 {
		return procSample{}
	}
	return xs[len(xs)-1]
}

// thin keeps at most n samples, evenly spread, always keeping the last
// one, so results.json stays small for long runs.
func thin[T any](xs []T, n int) []T {
	if len(xs) <= n || n < 2 {
		return xs
	}
	out := make([]T, 0, n)
	step := float64(len(xs)-1) / float64(n-1)
	for i := 0; i < n; i++ {
		out = append(out, xs[int(float64(i)*step+0.5)])
	}
	return out
}
