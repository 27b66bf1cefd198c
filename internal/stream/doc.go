// Package stream is one Tor stream over a circuit (tor-spec 6.2-6.3, 7.4):
// its state machine (opening, open, ended, closed), stream-level flow
// control, and a net.Conn adapter with deadlines.
//
// A Stream sees its circuit only through Sink, which this package defines
// and internal/circuit satisfies. The circuit hands each relay message for
// the stream to HandleRelay on its cell-reading goroutine; HandleRelay
// never blocks.
//
// Data: Write splits bytes into DATA cells filled to cell.RelayBodyMax
// (498) bytes, each taking one unit of the stream's package window (500,
// plus 50 per stream SENDME from the exit). Received DATA cells are queued
// as they arrived, in their pooled buffers, and Read copies out of them;
// the queue is charged to a cell.Account. The deliver window (500) drops
// by one per DATA cell and a stream SENDME (+50) is sent when it is at
// most 450 and fewer than 10 cells are still queued, so a stream whose
// reader stalls holds at most 500 cells.
//
// Endings: END before CONNECTED fails the open with an *EndError; END
// with reason DONE after it is io.EOF once queued data is read, other
// reasons are an *EndError (errors.Is matches the sentinel for the
// reason, e.g. ErrConnectRefused). A dying circuit ends reads and writes
// with its error after queued data. Close sends END (MISC, as tor-spec
// asks of clients) and discards queued data.
//
// It is not a circuit: circuit-level windows, relay crypto and stream IDs
// are internal/circuit's.
package stream
