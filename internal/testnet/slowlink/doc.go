// Package slowlink is a SOCKS5 proxy that emulates a slow link for tests
// and benchmarks: rate per direction, one-way delay, jitter, a small
// per-connection queue with backpressure, and faults (reset a connection
// after N bytes, stall it). The kernel here has no netem, so this is how a
// 64 kbit/s, 300 ms RTT mobile link is made on 127.0.0.1.
//
// The model (../shared/notes/tor-testnet.md section 9): each direction is
// one serialising bottleneck shared by every connection. A chunk read
// from a connection (at most ChunkSize bytes) departs when the link is
// free plus its serialisation time len*8/Rate, and is delivered Delay
// (plus jitter) after departure. Each connection holds at most QueueBytes
// per direction plus what is on the wire (Rate*Delay); a full queue stops
// reading that connection, so its sender feels backpressure. Half-closes
// are forwarded after the same delay. The SOCKS handshake itself is not
// shaped.
//
// It is not a general proxy: it speaks only no-auth SOCKS5 CONNECT and
// reaches only IPv4 loopback destinations (127.0.0.0/8, given as an
// address or as a dotted-quad name). Everything else is refused with
// reply 0x02, so nothing can leave the machine through it.
package slowlink
