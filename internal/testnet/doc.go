// Package testnet runs a private Tor network from the system's C tor on
// 127.0.0.1, for integration tests, benchmarks and the "onionlite testnet"
// command: directory authorities, middle relays and exits with fast voting,
// an in-process HTTP target with deterministic bodies, and a helper that
// starts C tor clients against the network and reads their bootstrap
// progress, traffic counters and memory from the control port.
//
// Start returns only when the network is usable: a live consensus lists
// every node Running and Valid (exits with Exit), and every node serves the
// microdesc consensus and every microdescriptor. Stop kills exactly the
// processes the Network started. A test package shares one network through
// Main and Shared. CheckGoroutines is a goroutine-leak helper for
// integration tests.
//
// It is test support only: it is never imported by the SDK, and it is not a
// fake Tor. Every node is a real tor process; nothing here speaks the Tor
// protocol itself. Nothing it starts listens on or connects to anything but
// 127.0.0.1 (exits bind outgoing connections to 127.0.0.1 and resolve
// through 127.0.0.1 only).
package testnet
