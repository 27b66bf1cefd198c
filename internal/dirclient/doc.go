// Package dirclient speaks Tor's directory protocol, HTTP/1.0 over a
// BEGIN_DIR stream (or any byte stream): it sends one GET, negotiates
// compression (x-zstd, deflate, gzip), and decompresses the answer under an
// absolute size cap and C tor's compression-bomb ratio check.
//
// While a download runs its buffers (header reader, decoder window, body)
// are charged to a "dir body" memory account below the stream's
// (Request.Account, or the conn's MemoryAccount), claimed before they are
// allocated; a reclaimed download stops with the quota's error.
//
// It is not a general HTTP client (no keep-alive, no chunked encoding, no
// redirects) and it does not know which documents to ask for; that is the
// bootstrap's job.
package dirclient
