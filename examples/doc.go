// Package examples holds runnable programs that show how to embed
// onionlite: an http.Client through Tor (httpclient), a local SOCKS proxy
// (socksproxy) and stream isolation (isolation). Each runs against a local
// test network ("onionlite testnet up --dir DIR", then -authorities
// DIR/authorities) or, without -authorities, against the real Tor network.
//
// It contains no library code.
package examples
