// Package benchrun is the benchmark harness behind "onionlite bench": it
// runs onionlite and C tor side by side on the same test network, through
// the same shaping proxy, and writes the raw results (JSON), the report
// (Markdown) and its plots (SVG).
//
// A run is a set of scenarios (cold, warm and stale starts, optionally
// followed by a fetch) on link profiles (unthrottled, 3G, EDGE, GPRS, a
// lossy link, the 64 kbit/s issue-4 link) and networks (the 10-relay and a
// larger test network from internal/testnet, and a full-scale replay of the
// real 2019 directory inside a loopback-only network namespace). Both
// clients alternate A/B/A/B; every client run gets its own slowlink proxy,
// so bytes are counted by one meter for both. Each client is a child
// process, so its peak RSS (VmHWM) and CPU time (utime+stime) are its own.
//
// The pure parts (statistics, ratios, tables, SVG) take plain values and
// are tested without a network; RunSuite and the runners start processes and
// are exercised by a smoke test against a real test network.
//
// It is developer tooling, not product code: nothing in sdk or below
// imports it, and it is not a load generator or a Tor implementation.
package benchrun
