package procmem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// ErrUnsupported is returned where /proc/PID/status does not exist.
var ErrUnsupported = errors.New("procmem: /proc/PID/status is Linux only")

// Status is one reading, in bytes.
type Status struct {
	VmHWM    int64 // peak resident set, exact (kernel counter)
	VmRSS    int64 // resident set now
	RssAnon  int64 // anonymous pages now (heap, stacks: dirty memory)
	RssFile  int64 // file-backed pages now (the binary's text and data, mapped files)
	RssShmem int64 // shared memory now
}

// Read reads /proc/PID/status; pid 0 means this process.
func Read(pid int) (Status, error) {
	if runtime.GOOS != "linux" {
		return Status{}, ErrUnsupported
	}
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return Status{}, err
	}
	return Parse(b)
}

// Parse reads a /proc/PID/status file's memory lines.
func Parse(b []byte) (Status, error) {
	var s Status
	fields := map[string]*int64{"VmHWM:": &s.VmHWM, "VmRSS:": &s.VmRSS, "RssAnon:": &s.RssAnon,
		"RssFile:": &s.RssFile, "RssShmem:": &s.RssShmem}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 3 || string(f[2]) != "kB" {
			continue
		}
		dst, ok := fields[string(f[0])]
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return Status{}, fmt.Errorf("procmem: bad %s %q", f[0], f[1])
		}
		*dst = kb << 10
		seen++
	}
	if seen != len(fields) {
		return Status{}, fmt.Errorf("procmem: %d of %d memory lines in the status file", seen, len(fields))
	}
	return s, nil
}

// Peaks are the highest values a Sampler saw. VmHWM is the kernel's own
// peak, read last; the others are maxima of the samples.
type Peaks struct {
	VmHWM, VmRSS, RssAnon, RssFile int64
	// AnonAtRSSPeak and FileAtRSSPeak split the sample with the highest
	// VmRSS.
	AnonAtRSSPeak, FileAtRSSPeak int64
	Samples                      int
	// Err is the first read error (the process may have exited).
	Err error
}

// Sampler polls a process's status until Stop.
type Sampler struct {
	pid   int
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	peaks Peaks
}

// Start samples process pid (0: this process) every interval.
func Start(pid int, every time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(every)
	return s
}

func (s *Sampler) run(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}

func (s *Sampler) sample() {
	st, err := Read(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.peaks.Err == nil {
			s.peaks.Err = err
		}
		return
	}
	p := &s.peaks
	p.Samples++
	p.VmHWM = max(p.VmHWM, st.VmHWM)
	if st.VmRSS > p.VmRSS {
		p.VmRSS, p.AnonAtRSSPeak, p.FileAtRSSPeak = st.VmRSS, st.RssAnon, st.RssFile
	}
	p.RssAnon = max(p.RssAnon, st.RssAnon)
	p.RssFile = max(p.RssFile, st.RssFile)
}

// Peek returns the peaks so far.
func (s *Sampler) Peek() Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peaks
}

// Stop takes a last sample, stops sampling and returns the peaks.
func (s *Sampler) Stop() Peaks {
	close(s.stop)
	<-s.done
	s.sample()
	return s.Peek()
}

// MB formats bytes as decimal megabytes with one decimal.
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
