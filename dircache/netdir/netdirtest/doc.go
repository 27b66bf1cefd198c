// Package netdirtest makes synthetic microdescriptors so that tests and
// benchmarks can build a full-size NetDir from a real consensus whose
// real microdescriptors are mostly missing (only the 2019 set is
// complete). Every synthetic value is derived deterministically from a
// seed and is marked as such where it is used.
//
// It is test support only: product code never imports it. It is pure
// (no files, no clock, no randomness beyond the seed).
package netdirtest
