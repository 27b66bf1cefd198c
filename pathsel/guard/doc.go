// Package guard keeps the client's entry guards as guard-spec describes,
// with proposals 336 (randomized retry delays) and 337 (simpler "is this
// guard usable?" rule): a persistent sample of guards drawn by guard
// bandwidth-weights, the filtered and usable subsets, primary guards
// (three by default), confirmed guards in the order they were first used,
// directory guards (the primaries serve one-hop directory requests too),
// and retry schedules for unreachable guards.
//
// A Manager hands out a guard per circuit (Select) and learns from the
// outcome (Succeeded, Failed, Usable). Its persistent part is saved and
// restored as bytes (MarshalBinary, UnmarshalBinary); the SDK stores them
// in the directory cache's key/value area.
//
// It is pure: time and randomness are arguments, and it does no I/O. It
// does not build circuits, choose middles or exits (see pathsel), or
// handle bridges or path-bias accounting.
package guard
