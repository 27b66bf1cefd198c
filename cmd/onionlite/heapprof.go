//go:build !nodev

package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// ONIONLITE_HEAPPROFILE=FILE (a developer aid, not in the lean "nodev"
// build) makes any command write a heap profile to FILE.PID each time the
// live heap reaches a new high (10 % above the last profile written), so
// that file ends up holding the allocation sites live near the peak. Heap
// figures in a profile are as of the collection before it was written.
// The sampling rate is 16 KiB instead of 512 KiB. On Linux, FILE.PID.smaps
// gets a copy of /proc/self/smaps each time the resident set reaches a
// new high (by 256 KiB), to see which mappings make the peak.
func init() {
	path := os.Getenv("ONIONLITE_HEAPPROFILE")
	if path == "" {
		return
	}
	runtime.MemProfileRate = 16 << 10
	go heapPeakProfiler(path + "." + strconv.Itoa(os.Getpid()))
}

func heapPeakProfiler(path string) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var written, rssMax uint64
	for range time.Tick(10 * time.Millisecond) {
		if rss := selfRSS(); rss > rssMax+256<<10 {
			rssMax = rss
			if b, err := os.ReadFile("/proc/self/smaps"); err == nil {
				os.WriteFile(path+".smaps", append(b, memClasses()...), 0o644)
			}
		}
		metrics.Read(s)
		live := s[0].Value.Uint64()
		if live < written+written/10 || live < 1<<20 {
			continue
		}
		written = live
		f, err := os.Create(path + ".tmp")
		if err != nil {
			return
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if f.Close() != nil || err != nil {
			return
		}
		os.Rename(path+".tmp", path)
	}
}

// selfRSS reads the resident set size from /proc/self/statm (0 where
// there is none).
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n * uint64(os.Getpagesize())
}

// memClasses lists the runtime's /memory/classes metrics, one per line,
// for the smaps copy: where the Go runtime's own share of the anonymous
// memory goes.
func memClasses() []byte {
	var b []byte
	var s []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") {
			s = append(s, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(s)
	b = append(b, "# runtime/metrics\n"...)
	for _, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			b = append(b, x.Name...)
			b = append(b, ' ')
			b = strconv.AppendUint(b, x.Value.Uint64(), 10)
			b = append(b, '\n')
		}
	}
	return b
}
