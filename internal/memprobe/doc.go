// Package memprobe measures the memory of onionlite workloads run as
// child processes: a cold bootstrap and a fetch through the sdk, a client
// starting from a cache that holds the full real directory, and the bare
// directory (parse, build, select paths) without the rest of the client.
// Each workload is a small program of its own (cmd/memprobe-client,
// cmd/memprobe-dir) so that the binary measured holds only what the
// workload needs; cmd/memprobe builds them, runs them beside C tor on the
// test network, and prints the tables docs/memory.md quotes. The
// benchmark harness can call Run on any child.
//
// A child prints one Report line (ReportPrefix, then JSON) when done. Run
// samples the child's /proc/PID/status while it runs (procmem), and takes
// the child's own final VmHWM reading, exact to the end of the work.
//
// It is a developer tool, Linux only, never used by the SDK or its tests.
package memprobe
