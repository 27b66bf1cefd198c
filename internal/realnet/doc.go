// Package realnet locates the real Tor network documents used by tests and
// benchmarks (../shared/testdata/realnet beside the checkout, or the
// directory named by $ONIONLITE_REALNET).
//
// It is test support only: it reads no document itself and is never
// imported by product code.
package realnet
