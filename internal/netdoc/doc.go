// Package netdoc parses and checks the Tor directory documents a client
// needs: the microdesc-flavoured consensus, directory authority key
// certificates and microdescriptors, plus torrc-style DirAuthority lines.
//
// Parsing and checking are separate steps. The parsers
// (ParseConsensus, ParseAuthCerts, ParseMicrodescs) return unchecked
// values; a check against a given time, trusted authorities and
// certificates returns the usable value:
//
//	certs, err := netdoc.ParseAuthCerts(keysAll)        // []*UncheckedAuthCert
//	ac, err := certs[i].Check(now)                      // *AuthCert
//	u, err := netdoc.ParseConsensus(doc)                // *UncheckedConsensus
//	c, err := u.Check(now, netdoc.DefaultAuthorities(), acs) // *Consensus
//
// Microdescriptors carry no signature of their own: they are trusted by
// matching their SHA-256 digest against the `m` lines of a checked
// consensus (Consensus.MicrodescIndex, Microdesc.Digest).
//
// The package is pure: it does no I/O, reads no clock and uses no
// randomness. Time, certificates and trusted authorities are arguments,
// and the same input always gives the same result. Parsed values never
// point into the input document, so the caller may reuse its buffer.
//
// Bad input is reported as an error matching ErrMalformed (with a line
// number, see *ParseError); failed checks match ErrNotYetValid,
// ErrExpired, ErrBadSignature, ErrTooFewSignatures and friends. Error
// text is for people and may change.
//
// This package is not a directory client or cache: it never fetches or
// stores documents, and it does not parse votes, ns-flavoured consensuses,
// server descriptors or onion-service descriptors. It does not decide
// which relays to use (see dircache/netdir and pathsel).
package netdoc
