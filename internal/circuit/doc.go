// Package circuit builds and runs a client's circuits over a channel
// (tor-spec 5-7): CREATE2 with ntor-v3 (prop 332) or ntor, CREATE_FAST for
// one-hop directory circuits without an onion key, EXTEND2 for further
// hops, relay cell crypto through internal/relaycrypto, stream
// multiplexing, and circuit-level flow control with authenticated SENDMEs
// (prop 289).
//
// Cells arrive on the channel's reader goroutine (HandleCell); the circuit
// decrypts them there, in order, and dispatches them without blocking:
// control replies go to the waiting Create/Extend/Resolve call, stream
// messages to the stream (internal/stream), and circuit SENDMEs are sent
// straight back. A circuit runs no goroutine of its own.
//
// Sending serializes encryption and queueing under one lock, so the order
// cells are encrypted in is the order they reach the link. DATA cells wait
// for the target hop's window and for the link's WaitWritable. Flow
// control is per hop, behind a small interface with two implementations:
//
//   - Fixed windows (tor-spec 7.3): a package window of 1000, +100 per
//     circuit SENDME whose v1 digest must match the digest recorded when
//     the 100th cell was sent. Incoming DATA lowers the deliver window;
//     at 900 a SENDME v1 echoing the running digest after the 100th cell
//     goes back.
//   - Congestion control (prop 324), on a hop that agreed to it in the
//     ntor-v3 handshake (prop 332 extensions; Config.CongestionControl and
//     Relay.CongestionControl ask for it): DATA may go while fewer than
//     cwnd cells are unacknowledged; a SENDME is due every negotiated
//     cc_sendme_inc (31) cells each way, its digest authenticated as
//     above; each SENDME received measures the RTT of the cell that
//     triggered it, and TOR_VEGAS moves cwnd (slow start, then the
//     alpha/beta/delta rules against a BDP of cwnd*minRTT/ewmaRTT). Streams
//     on such a hop use XON/XOFF instead of stream windows
//     (internal/stream).
//
// Streams open with BEGIN or BEGIN_DIR and wait for CONNECTED, or with
// BeginOptions.Optimistic return at once so the request rides right
// behind BEGIN (optimistic data).
//
// The first cells to any hop but the first, and every EXTEND2, travel as
// RELAY_EARLY (at most 8). An inbound RELAY_EARLY, an unrecognized cell, a
// SENDME without a matching digest, a window overrun, or a congestion
// control answer that was not asked for or whose cc_sendme_inc is more
// than a factor of 2 from ours close the circuit with a DESTROY. A DESTROY or TRUNCATED from the network closes it with a
// *DestroyedError; a closing channel closes it with the channel's error.
// Streams see the circuit's error after their queued data. A stream whose
// data stopped while its reader waits (stream.StallSink) makes the circuit
// nudge its channel (channel.Channel.Nudge): a first hop running C tor can
// hold back the DESTROY of a circuit whose exit died while the link to us
// was backed up, and the reader would otherwise wait for ever.
//
// LinkConflux joins circuits that end at one exit into a conflux set
// (prop 329): the set carries streams, delivers the exit's sequenced
// messages in order whichever leg they came on (CONFLUX_SWITCH moves a
// leg's sequence number; cells ahead of their turn wait in a queue charged
// to the memory quota), and sends on its lowest-RTT leg. docs/conflux.md.
//
// It is not a circuit manager: path selection, build timeouts, reuse and
// isolation belong to internal/circmgr.
package circuit
