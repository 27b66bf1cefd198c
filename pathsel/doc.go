// Package pathsel chooses relays for circuits as Tor does: bandwidth
// weights per position, flags, families, subnets and exit policies.
//
// It is pure: time and randomness are injected and it touches no network
// or disk.
package pathsel
