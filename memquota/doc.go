// Package memquota accounts the memory held by queues in a tree of
// accounts and reclaims the holder of the oldest data when a limit is
// crossed.
//
// It is a leaf package: it knows nothing about Tor.
package memquota
