// Package relaycrypto is Tor's relay cell cryptography (tor-spec 5.5 and
// 6.1) for the circuit's origin: per hop, AES-128-CTR in each direction and
// a running SHA-1 digest in each direction, seeded from the handshake's
// Kf/Kb and Df/Db.
//
// Outbound, the target hop's forward digest is updated with the plaintext
// relay payload (digest field zeroed), its first four bytes go into the
// digest field, and the payload is encrypted with the target hop's key and
// then every earlier hop's, in place. Inbound, each hop's layer is removed
// in turn until a hop recognizes the cell: recognized field zero and the
// digest field equal to that hop's running backward digest over the
// payload. A hop that does not recognize the cell leaves its digest state
// untouched.
//
// The full 20-byte running digest after each sealed or recognized cell is
// returned, because authenticated SENDMEs (prop 289) echo it.
//
// All work is in place on a *cell.Cell and allocates nothing. It is not the
// circuit: it knows nothing of windows, streams or which cells count.
package relaycrypto
