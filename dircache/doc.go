// Package dircache is the persistent directory cache: the current
// consensus, microdescriptors by digest, authority certificates and a small
// key/value area for client state, behind a narrow Store interface backed by
// badger/v4 tuned for small memory.
//
// It is not a network view (see dircache/netdir) and it never trusts what it
// loads: callers re-verify documents and drop what fails.
package dircache
