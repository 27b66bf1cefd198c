// Command genfallbacks writes internal/netdoc/fallbacks_gen.go, the
// default fallback directory list, from two real documents: C tor's
// src/app/config/fallback_dirs.inc (dir-list-spec format) and a real
// microdesc consensus with the authority certificates that sign it.
//
// An entry of the C tor list is kept only if the checked consensus lists
// the same RSA identity at the same IPv4 address and ORPort with the
// flags Running, Valid, Fast, Stable and V2Dir, and without BadExit or
// MiddleOnly. Its IPv6 ORPort is kept only if the consensus has the same
// one in an "a" line. Every dropped entry is reported on stderr with its
// reason, followed by counts per reason.
//
// Usage (from the module root; the C tor file is an input only and is
// never committed):
//
//	go run ./internal/netdoc/internal/genfallbacks \
//		-inc /tmp/fallback_dirs.inc -inc-source 'torproject/tor@COMMIT' \
//		-consensus ../shared/testdata/realnet/.../consensus-microdesc-... \
//		-certs ../shared/testdata/realnet/.../cached-certs \
//		-o internal/netdoc/fallbacks_gen.go
//
// It is a development tool: nothing imports it, and unlike netdoc it
// reads and writes files.
package main
