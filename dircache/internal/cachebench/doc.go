// Command cachebench measures dircache's badger options and consensus
// storage choices, one fresh process per configuration, and prints the
// tables that docs/dircache.md quotes:
//
//	go run ./dircache/internal/cachebench            # all option variants
//	go run ./dircache/internal/cachebench -consensus # consensus storage strategies
//
// Each variant writes the real 2019 directory (consensus, certificates,
// 6,883 microdescriptors) into a new cache in one process and loads it in
// others (best of -runs), reporting time, peak RSS (VmHWM), peak and
// open-time virtual size (VmPeak, VmSize), Go heap, goroutines and disk
// use. Memory figures come from /proc/self/status, so they are Linux only.
//
// It is a developer tool, not part of the SDK, and never used by tests.
package main
