// Command memprobe measures onionlite's process memory for docs/memory.md
// (issue 6):
//
//		go run ./internal/memprobe/cmd/memprobe [-testnet DIR] [-reps 3] [-realnet DIR]
//
//	 1. Cold bootstrap + 10 MiB fetch on the test network, onionlite (the
//	    lean memprobe-client binary, in several configurations) and C tor
//	    (testnet.StartClient, fetching through its SOCKS port) alternating,
//	    each repetition in a fresh process with a fresh data directory.
//	 2. The full-scale directory: the real 2019 set (6,345 relays, every
//	    microdescriptor) loaded by the client from its cache at the set's
//	    time, inside a network namespace with only lo up; and the bare view
//	    (memprobe-dir) of 2019 and of the real 2026 consensus (9,609 relays,
//	    synthetic microdescriptors where no real one exists).
//
// Each child's /proc/PID/status is sampled every 5 ms (VmHWM, RssAnon,
// RssFile); the child also reads its own at the end. It needs Linux, the
// go command (it builds the children), tor for the test network, and
// unshare(1) with the right to make a network namespace (root).
package main
