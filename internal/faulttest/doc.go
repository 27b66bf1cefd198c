// Package faulttest holds fault-injection and security tests that drive
// the sdk against a real private Tor network (internal/testnet): relays
// and authorities killed mid-run, a client killed while it writes its
// cache, damaged and unwritable data directories, skewed clocks, local
// DNS and log leaks. docs/SECURITY.md lists what each test proves.
//
// It has no code of its own: everything is in its _test.go files, and
// nothing imports it.
package faulttest
