// Package bootstrap fetches and keeps current the directory a Tor client
// needs: the microdescriptor consensus (as a diff when possible), authority
// certificates and microdescriptors, and reports progress while it does so.
//
// It is not a parser (internal/netdoc) nor a store (dircache); it drives
// them over directory connections it is given.
package bootstrap
