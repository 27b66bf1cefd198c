// Package procmem reads a process's memory figures from Linux's
// /proc/PID/status (VmHWM, VmRSS and its anonymous, file-backed and shared
// parts) and samples them while a workload runs, keeping the peaks. It is
// for tests and measuring programs (the flood test, docs/memory.md's
// measurements, the benchmark harness); the SDK never uses it.
//
// VmHWM is the kernel's exact peak of the resident set, file-backed pages
// of the binary and its libraries included. The anonymous part (RssAnon),
// closest to the dirty memory that iOS counts against an app, has no peak
// counter: a Sampler polls it, so a spike shorter than its interval can be
// missed.
//
// It is not portable: elsewhere than Linux Read returns ErrUnsupported.
package procmem
