// Package netdir is the compact, immutable in-memory view of the Tor
// network that path selection reads: per relay only what a client needs
// (identities, addresses, flags, consensus weight, ntor key, microdescriptor
// digest, exit-policy summary and interned family), stored as parallel
// arrays indexed by RelayIndex. docs/netdir.md describes the layout and its
// measured size.
//
// A NetDir is made by a Builder from a checked consensus plus the
// microdescriptors that match it, added in batches as they arrive; the
// Builder reports how much of the network's path bandwidth is usable
// (DirInfo) so a bootstrap can show progress and decide when to start.
// A Builder started from a previous NetDir reuses its relay data for
// every unchanged microdescriptor digest, so an hourly refresh needs only
// the new microdescriptors.
//
// It is pure: it builds from parsed documents and touches no network, disk
// or clock, and it never chooses relays (see pathsel) or fetches anything.
package netdir
