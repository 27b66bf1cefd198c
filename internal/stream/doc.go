// Package stream is one Tor stream over a circuit (tor-spec 6.2-6.3, 7.4;
// prop 324 section 4): its state machine (opening, open, ended, closed),
// stream-level flow control, and a net.Conn adapter with deadlines.
//
// A Stream sees its circuit only through Sink, which this package defines
// and internal/circuit satisfies. The circuit hands each relay message for
// the stream to HandleRelay on its cell-reading goroutine; HandleRelay
// never blocks, except that an XOFF it decides on waits for a cell buffer
// (as the circuit's own SENDMEs do).
//
// Data: Write splits bytes into DATA cells filled to cell.RelayBodyMax
// (498) bytes. Received DATA cells are queued as they arrived, in their
// pooled buffers, and Read copies out of them; the queue is charged to the
// stream's memory account (Config.Account, made by the circuit below its
// own), claiming before it queues, so with a hard limit the circuit's
// cell reader waits there for room. Write keeps no buffer of its own: it
// copies into one cell at a time, which the circuit accounts while it
// waits for the circuit window. When the quota collapses the account,
// queued cells go back to the pool, Read and Write fail with the
// *memquota.ReclaimedError (errors.Is(err, memquota.ErrReclaimed)), and
// the exit gets END with reason RESOURCELIMIT. Flow control is one of two
// kinds:
//
//   - Stream windows (tor-spec 7.4): each DATA cell takes one unit of the
//     package window (500, plus 50 per stream SENDME from the exit). The
//     deliver window (500) drops by one per DATA cell and a stream SENDME
//     (+50) is sent when it is at most 450 and fewer than 10 cells are
//     still queued, so a stream whose reader stalls holds at most 500
//     cells.
//   - XON/XOFF (prop 324 section 4, Config.FlowControl), on circuits with
//     congestion control: no stream windows. An XOFF from the exit stops
//     Write until an XON, whose advisory rate Write then keeps to (a token
//     bucket of one second's worth). When more than cc_xoff_client cells'
//     worth of bytes wait to be read we send XOFF, and XON once the queue
//     is empty, advertising the drain rate: bytes read over the time the
//     queue was not empty, N_EWMA-smoothed per cc_xon_rate cells' worth;
//     later rate changes of more than cc_xon_change_pct go out as
//     advisory XONs. A stalled reader so holds about cc_xoff_client cells
//     plus what the exit had in flight.
//
// Opening: Write waits for CONNECTED unless Config.Optimistic, which lets
// the request go right behind BEGIN; Read always waits for CONNECTED.
//
// Deadlines (SetDeadline and friends) are times on the real clock, as
// net.Conn callers compute them from time.Now; Config.Clock, which may be
// offset to replay old documents, only dates queued data.
//
// Endings: END before CONNECTED fails the open with an *EndError; END
// with reason DONE after it is io.EOF once queued data is read, other
// reasons are an *EndError (errors.Is matches the sentinel for the
// reason, e.g. ErrConnectRefused). A dying circuit ends reads and writes
// with its error after queued data. A reader that has waited
// Config.StallAfter (40 s) since data stopped arriving tells a sink that
// is a StallSink, once per run of data: the circuit may be dead with the
// news held back by a relay (internal/channel's Nudge). Close sends END (MISC, as tor-spec
// asks of clients) and discards queued data.
//
// It is not a circuit: circuit-level windows, relay crypto and stream IDs
// are internal/circuit's.
package stream
