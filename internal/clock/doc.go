// Package clock is the one place onionlite reads the wall clock. Everything
// else takes a Clock (or a time) so tests and replays of old documents can
// run at any date.
//
// It is not a timer wheel or scheduler.
package clock
