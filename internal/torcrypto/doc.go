// Package torcrypto is Tor's client-side cryptography for the link and
// circuit layers: the ntor (tor-spec 5.1.4) and ntor-v3 (prop 332)
// handshakes with ntor-v3's extension messages, CREATE_FAST, KDF-TOR and
// KDF-RFC5869, Ed25519 certificates and the RSA->Ed25519 cross-certificate
// (cert-spec), the CERTS-cell checks that bind a TLS link to a relay's RSA
// and Ed25519 identities, constant-time comparison and zeroing.
//
// Randomness always comes from an injected io.Reader; Rand(nil) is
// crypto/rand, and this is the only package that reads crypto/rand.
// Handshakes read their ephemeral keys from that reader, so a fixed reader
// gives reproducible transcripts.
//
// Parsers (ParseEd25519Cert, ParseRSACrosscert) return unchecked values;
// Check methods verify them against a key and a time. Secrets are zeroed
// where Go allows it (our own byte arrays), best effort: the standard
// library's key schedules cannot be wiped.
//
// It is not a relay: only the client halves of the handshakes are here,
// and it does no I/O.
package torcrypto
