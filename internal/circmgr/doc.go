// Package circmgr is the client's circuit pool: it builds three-hop exit
// circuits (guard from pathsel/guard, middle and exit from pathsel, EXTEND2
// with ntor-v3 where the relay supports it), gives up on slow builds as
// path-spec 2.4 says (a learned Pareto timeout, cbtinitialtimeout until it
// has 100 build times), and hands out streams over them.
//
// Dial(ctx, key, host, port) opens a stream to a hostname the exit resolves
// (never resolved locally). It reuses an open circuit of the same isolation
// key whose exit allows the port and that has been dirty for less than
// MaxDirtiness (10 minutes, as C tor), waits for a matching build already
// under way, or builds one. Streams of different isolation keys never share
// a circuit; a circuit that has carried no stream yet belongs to no key and
// is taken by the first one that uses it. Refusals are retried on another
// circuit as C tor does: EXITPOLICY bans the port at that exit until the
// next directory, RESOLVEFAILED/MISC/NOROUTE retire the circuit for new
// streams (at most three tries), HIBERNATING/RESOURCELIMIT ban the exit, a
// BEGIN unanswered for 10 s (15 s on later tries) makes the circuit too
// dirty for new streams; CONNECTREFUSED and TIMEOUT are final. Errors are
// *Error values whose Kind is one of this package's sentinels.
//
// A background goroutine keeps a few clean circuits ready for the
// preemptive ports (80 and 443) unless the manager is dormant or no stream
// was asked for in the last hour, and closes circuits that have carried no
// stream for IdleTimeout or are too dirty to use. TrimMemory drops every
// circuit without streams at once.
//
// Guard state is loaded once and saved through the configured hooks
// whenever it changes. docs/circmgr.md describes the design and its
// numbers.
//
// It is not a path selector (pathsel), a guard state machine
// (pathsel/guard), a circuit or stream implementation (internal/circuit,
// internal/stream), a channel pool (internal/chanmgr) or a directory
// client: it never fetches a consensus or microdescriptors itself. With
// Config.Conflux an exit circuit may be a two-leg conflux set
// (internal/circuit.Conflux); it has no onion-service or path-bias
// support.
package circmgr
