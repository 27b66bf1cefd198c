package stream

import (
	"errors"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
)

// TestDeadlinesWithOffsetClock: deadlines come from time.Now (net/http
// and the SOCKS server set them so) and must hold in real time even when
// the stream's clock pretends to be years away, as in replays of old
// documents.
func TestDeadlinesWithOffsetClock(t *testing.T) {
	for _, off := range []time.Duration{-7 * 365 * 24 * time.Hour, 7 * 365 * 24 * time.Hour} {
		synctest.Test(t, func(t *testing.T) {
			f := newSink()
			s, _ := New(f, 1, &Config{Clock: clock.Offset{D: off}})
			deliver(t, s, f, cell.RelayConnected, nil)
			t0 := time.Now()
			s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read: %v", err)
			}
			if took := time.Since(t0); took != 50*time.Millisecond {
				t.Fatalf("clock offset %v: read deadline of 50ms fired after %v", off, took)
			}
			s.packageWindow = 0
			t0 = time.Now()
			s.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write: %v", err)
			}
			if took := time.Since(t0); took != 20*time.Millisecond {
				t.Fatalf("clock offset %v: write deadline of 20ms fired after %v", off, took)
			}
			s.SetReadDeadline(time.Now().Add(-time.Millisecond))
			if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(t0) != 20*time.Millisecond {
				t.Fatalf("past deadline: %v", err)
			}
			// Queued data is still dated by the stream's clock.
			s.SetReadDeadline(time.Time{})
			deliver(t, s, f, cell.RelayData, []byte("x"))
			if at, ok := s.Oldest(); !ok || at.Sub(time.Now().Add(off)).Abs() > time.Second {
				t.Fatalf("queued data dated %v, clock says %v", at, time.Now().Add(off))
			}
			s.Close()
		})
	}
}
