// Package guard keeps the client's entry guards as guard-spec describes:
// sampled, filtered, primary and confirmed sets with retry schedules.
//
// It is pure; persistence goes through a small state interface.
package guard
