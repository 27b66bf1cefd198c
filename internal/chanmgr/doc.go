// Package chanmgr shares channels: one open TLS link per relay identity,
// reused by every circuit that starts there, with concurrent requests for
// the same relay joined into one dial. It keeps socket-level byte counters
// across every channel it ever opened, and closes idle channels on request.
//
// It does not build circuits or choose relays.
package chanmgr
