// Command memprobe-client is the onionlite client that memprobe measures:
// it links the sdk and nothing it does not need, runs one workload and
// prints a memprobe report line. Modes:
//
//	-mode fetch    cold bootstrap from -authorities (a file of DirAuthority
//	               lines), then GET /-body from -target, SHA-256 checked
//	-mode populate write a real directory set (-realnet, -set 2019) into
//	               -data's cache as a client would have stored it
//	-mode warm     start from -data's cache at the set's time, with the
//	               set's authorities, and wait until the directory is ready
//
// warm uses the real network's addresses: run it in a network namespace
// with only lo up (memprobe does).
package main
