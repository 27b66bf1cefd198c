//go:build !linux

package main

import "runtime"

// peakRSS approximates the peak resident set size where /proc is missing:
// the Go runtime's view of memory obtained from the OS.
func peakRSS() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.Sys)
}
