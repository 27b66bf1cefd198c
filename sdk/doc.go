// Package sdk is onionlite's stable embedding API: a Tor client that an
// application configures with a struct, bootstraps, and dials through.
//
// It is not the protocol machinery (that lives under internal/) and it does
// not resolve names locally: every address is handed to the exit as given.
package sdk
