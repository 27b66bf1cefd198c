package faulttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onionlite/onionlite/bootstrap"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// TestClockSkew runs clients whose clocks are two days ahead and two days
// behind the network's. Bootstrap must fail promptly with KindClockSkew
// (not time out), carrying a ClockSkewError whose Skew says how far off
// the clock is, in the right direction. A client that only dials (no
// Bootstrap call) must get the same kind, not a timeout, and the app
// hears about it on Events.
func TestClockSkew(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	n := testnet.Shared(t)
	for _, off := range []time.Duration{48 * time.Hour, -48 * time.Hour} {
		t.Run(off.String(), func(t *testing.T) {
			c := newClient(t, n, t.TempDir(), nil)
			c.Clock = sdk.StartingAt(time.Now().Add(off))
			err := c.Bootstrap(ctxFor(t, 2*time.Minute))
			checkSkew(t, "Bootstrap", err, off)

			// Dial only: the background bootstrap finds the skew and
			// the waiting dial is told, well before its deadline.
			d := newClient(t, n, t.TempDir(), nil)
			d.Clock = sdk.StartingAt(time.Now().Add(off))
			// The events context only bounds the wait if no warning
			// ever comes.
			evctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
			defer stop()
			events := d.Events(evctx)
			_, err = d.DialContext(ctxFor(t, 2*time.Minute), "tcp", n.HTTPTarget())
			checkSkew(t, "DialContext", err, off)
			warned := false
			for ev := range events {
				if ev.Kind == sdk.EventWarning && errors.Is(ev.Err, &sdk.Error{Kind: sdk.KindClockSkew}) {
					checkSkew(t, "warning event", ev.Err, off)
					warned = true
					stop()
				}
			}
			if !warned {
				t.Fatal("no clock-skew warning event")
			}
		})
	}
}

func checkSkew(t *testing.T, what string, err error, off time.Duration) {
	t.Helper()
	var se *sdk.Error
	var ce *bootstrap.ClockSkewError
	if !errors.As(err, &se) || se.Kind != sdk.KindClockSkew || !errors.As(err, &ce) {
		t.Fatalf("%s with the clock %v off: %v, want KindClockSkew with a ClockSkewError", what, off, err)
	}
	if d := ce.Skew - off; d < -time.Hour || d > time.Hour {
		t.Fatalf("%s: skew reported as %v for a clock %v off", what, ce.Skew, off)
	}
}
