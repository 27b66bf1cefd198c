// Package netdir is the compact, immutable in-memory view of the Tor
// network that path selection reads: per relay only what a client needs.
//
// It is pure: it builds from parsed documents and touches no network, disk
// or clock.
package netdir
