// Package dircache is the persistent directory cache: the current
// consensus of each flavor (its exact text, so that a later diff applies
// to it), microdescriptors by SHA-256 digest with a last-listed time,
// authority key certificates, and a small key/value area for client state
// such as guards. All of it sits behind the narrow Store interface, with
// two implementations: DB (Open), on badger/v4 tuned for small memory plus
// one zstd-compressed file per consensus, and MemStore (NewMemStore), for
// tests and for running when the data directory is read-only or full.
//
// It never trusts what it loads. Microdescriptors are re-hashed against
// their keys, a consensus against the SHA3-256 recorded when it was
// stored, certificates and state values against a stored SHA-256; what
// fails is deleted and counted, and the caller refetches it. A killed
// writer leaves either the old or the new version of each entry. Damaged
// badger tables are dropped before badger opens them, and a directory that
// still cannot be opened is moved aside and started afresh (DB.Recovery).
//
// It is not a parser and not a network view: it stores bytes and the
// little metadata the caller hands it. Signatures, validity and the
// microdescriptor-to-consensus match are checked by the caller
// (internal/netdoc), and the in-memory view is dircache/netdir. See
// docs/dircache.md for the badger options and their measured effect.
package dircache
