// Package cell is the Tor link-layer wire format: fixed and variable-length
// cells, the cell commands, the relay cell header and the relay messages,
// and a capped pool of fixed-size cell buffers.
//
// Wire format (tor-spec sections 3, 4, 5.1, 6; link protocol 4 and later):
//
//	fixed cell     CircID [4] | Command [1] | Payload [PayloadLen]      = Len bytes
//	variable cell  CircID [4] | Command [1] | Length [2] | Payload [Length]
//	relay payload  RelayCmd [1] | Recognized [2] | StreamID [2] | Digest [4] |
//	               Length [2] | Body [Length] | padding up to PayloadLen
//
// A Cell is exactly the Len bytes a fixed cell occupies on a link of version
// 4 or higher, so a buffer is read from the link, decrypted in place and
// written to the link without copying. VERSIONS cells (and anything before
// them) use 2-byte circuit IDs; the codecs here take the circuit ID width as
// an argument where it matters.
//
// Codecs are append-style: Append(b) ([]byte, error) encodes into b, and
// Parse functions bounds-check every read and return an error, never panic,
// on malformed input. Parsed values may alias the input (DATA bodies do).
//
// It is not a transport: it does no I/O, no cryptography and no flow
// control. Relay crypto lives in internal/relaycrypto, the link in
// internal/channel.
package cell
