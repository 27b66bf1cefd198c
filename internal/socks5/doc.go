// Package socks5 is a SOCKS4, SOCKS4a and SOCKS5 server with Tor's
// extensions (socks-extensions.txt): RESOLVE (0xF0) and RESOLVE_PTR (0xF1),
// SOCKS usernames and passwords passed on as stream-isolation keys, HTTP
// requests answered with a short explanation, and optimistic data (bytes a
// client sends before our reply are forwarded, never lost).
//
// It never resolves a name locally: host names go to the Handler as text.
// It is not a SOCKS client (see transport) and does no Tor work itself;
// BIND and UDP ASSOCIATE are refused.
package socks5
