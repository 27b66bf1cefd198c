// Package pathsel chooses relays for circuits as Tor does (path-spec 2.2,
// 5.1; dir-spec 3.8.3): bandwidth-weighted per position with the
// consensus bandwidth-weights, restricted by flags (Running, Valid, Fast,
// Stable, Guard; never BadExit or MiddleOnly relays as exits), by exit
// policy summary for the target port, and so that no two relays of a
// path share a family or an IPv4 /16 or IPv6 /32.
//
// A Selector is made once per netdir.NetDir; Select picks one relay for
// a position and BuildPath a whole three-hop path. Choices follow the
// weighted distribution exactly: a relay is drawn from precomputed
// per-position weights and redrawn if a restriction excludes it, falling
// back to a scan of the restricted set when restrictions exclude most of
// the weight.
//
// It is pure: randomness is an injected Rand and it touches no network,
// disk or clock. It does not keep guard state (see pathsel/guard), build
// circuits or decide when to.
package pathsel
