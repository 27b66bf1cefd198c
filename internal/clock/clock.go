package clock

import "time"

// Clock tells the time and makes timers. Implementations must be safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// After behaves like time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Offset is the system clock shifted by a fixed duration: replays of old
// Tor documents run with Offset set to (document time - now). Timers run at
// the real rate.
type Offset struct{ D time.Duration }

// Now returns time.Now() shifted by o.D.
func (o Offset) Now() time.Time { return time.Now().Add(o.D) }

// After returns time.After(d).
func (Offset) After(d time.Duration) <-chan time.Time { return time.After(d) }

// At returns a clock whose current time is t, running forward at the real
// rate from the moment At is called.
func At(t time.Time) Offset { return Offset{D: time.Until(t)} }

// OrReal returns c, or Real when c is nil.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
