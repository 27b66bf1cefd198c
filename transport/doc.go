// Package transport defines how onionlite reaches relays: a Dialer
// interface with direct TCP and SOCKS5 upstream-proxy implementations.
//
// It is not a Tor protocol package; it only moves bytes.
package transport
