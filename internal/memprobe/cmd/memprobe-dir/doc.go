// Command memprobe-dir measures the directory alone: it parses a real
// consensus and microdescriptors, checks the consensus's signatures,
// builds the network view (dircache/netdir) and selects paths from it
// (pathsel), in a binary that links nothing else of the client (no
// badger, no sdk). It prints a memprobe report line.
//
//	-set 2019  the real 2019-12-15 consensus (6,345 relays) with every
//	           real microdescriptor
//	-set 2026  the real 2026-06-27 consensus (9,609 relays); its few real
//	           microdescriptors are kept and the rest synthesized
//	           (dircache/netdir/netdirtest), as no full 2026 set exists
package main
