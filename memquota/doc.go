// Package memquota accounts the memory held by queues in a tree of
// accounts and reclaims the holder of the oldest data when a limit is
// crossed.
//
// A Tracker has a limit and a lower low-water mark. Accounts form a tree
// (top level → channel → circuit → stream, any depth). A queue registers
// as a Participant of an account and reports bytes with Claim and Release
// on its Participation: an atomic fast path with no lock. When a claim
// takes the total over the limit, the tracker's own goroutine asks every
// participant holding bytes for the age of its oldest data, and collapses
// the account of the oldest (with all its descendants) and then the next
// oldest, until usage is at or below the low-water mark. Participants of a
// collapsed account get a *ReclaimedError through Reclaimed, and their
// later claims fail with it.
//
// Claims are never refused for being over the limit: reclamation follows
// promptly, on another goroutine. An optional hard limit makes a claim
// that would leave usage above it wait for reclamation instead, bounding
// usage by the hard limit plus the claims in flight at that moment.
//
// It is a leaf package: it knows nothing about Tor, cells or buffers, and
// it is not an allocator. It counts what participants tell it, so it
// bounds queued data, not the process's memory. See docs/memquota.md for
// how queues hook in and how a whole-process budget is split.
package memquota
