package procmem

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	st, err := Parse([]byte("Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t 2048 kB\nVmRSS:\t 1024 kB\nRssAnon:\t  600 kB\nRssFile:\t  400 kB\nRssShmem:\t 24 kB\nThreads:\t3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{VmHWM: 2048 << 10, VmRSS: 1024 << 10, RssAnon: 600 << 10, RssFile: 400 << 10, RssShmem: 24 << 10}
	if st != want {
		t.Fatalf("%+v, want %+v", st, want)
	}
	if _, err := Parse([]byte("VmHWM:\t1 kB\n")); err == nil {
		t.Fatal("a status without RSS lines parsed")
	}
	if _, err := Parse([]byte("VmHWM:\tx kB\nVmRSS:\t1 kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\nRssShmem:\t1 kB\n")); err == nil {
		t.Fatal("a bad number parsed")
	}
}

// TestSamplerSeesAllocation: touching 32 MiB of fresh memory raises the
// sampled anonymous peak and the kernel's VmHWM by about that much.
func TestSamplerSeesAllocation(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := Read(0); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Read on %s: %v", runtime.GOOS, err)
		}
		t.Skip("Linux only")
	}
	before, err := Read(0)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(0, time.Millisecond)
	b := make([]byte, 32<<20)
	for i := range b {
		if i%4096 == 0 {
			b[i] = 1
		}
	}
	p := s.Stop()
	runtime.KeepAlive(b)
	if p.Err != nil || p.Samples < 2 {
		t.Fatalf("peaks %+v", p)
	}
	if grew := p.RssAnon - before.RssAnon; grew < 30<<20 {
		t.Fatalf("anonymous peak grew %d bytes for 32 MiB touched", grew)
	}
	if p.VmHWM < before.VmRSS+30<<20 || p.VmRSS > p.VmHWM {
		t.Fatalf("VmHWM %d, VmRSS peak %d, before %d", p.VmHWM, p.VmRSS, before.VmRSS)
	}
}
