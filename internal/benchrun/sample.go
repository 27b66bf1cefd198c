package benchrun

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// maxTrafficSamples is how many traffic samples a run keeps in
// results.json (evenly thinned), enough for the plots.
const maxTrafficSamples = 150

// sampleEvery is the sampler's period: bytes at the proxy and the
// client's CPU and peak RSS are read this often during a run.
const sampleEvery = 50 * time.Millisecond

// procSample is a client's CPU time and peak RSS at one moment.
type procSample struct {
	T   float64
	CPU float64
	HWM int64
}

// sampler records the proxy's counters and the client process's CPU and
// peak RSS every sampleEvery, from a start time t0 (the spawn).
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
	cpu, err1 := procCPU(pid)
	hwm, err2 := procHWM(pid)
	if err1 != nil || err2 != nil {
		return
	}
	s.mu.Lock()
	s.procs = append(s.procs, procSample{T: s.since(time.Now()), CPU: cpu, HWM: hwm})
	s.mu.Unlock()
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
