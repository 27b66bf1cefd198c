//go:build !nodev

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// ONIONLITE_CPUPROFILE=FILE (a developer aid, not in the lean "nodev"
// build) makes any command profile its CPU in 20-second pieces, written to
// FILE.PID.1, FILE.PID.2, ... as each piece ends, so a process that is
// killed or exits on its own loses at most the last piece. `go tool pprof`
// merges the pieces given together.
func init() {
	path := os.Getenv("ONIONLITE_CPUPROFILE")
	if path == "" {
		return
	}
	go cpuProfiler(path + "." + strconv.Itoa(os.Getpid()))
}

func cpuProfiler(path string) {
	for n := 1; ; n++ {
		tmp := path + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return
		}
		time.Sleep(20 * time.Second)
		pprof.StopCPUProfile()
		if f.Close() != nil {
			return
		}
		os.Rename(tmp, fmt.Sprintf("%s.%d", path, n))
	}
}
