package stream

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/onionlite/onionlite/internal/cell"
)

// TestOptimisticData: an optimistic stream writes before CONNECTED; Read
// waits for it. When END comes instead, reads and later writes fail with
// the exit's reason.
func TestOptimisticData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSink()
		s, _ := New(f, 5, &Config{Optimistic: true})
		if _, err := s.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := f.counts(); n != 1 {
			t.Fatalf("%d DATA cells before CONNECTED", n)
		}
		got := make(chan string, 1)
		go func() {
			b := make([]byte, 10)
			n, err := s.Read(b)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(b[:n])
		}()
		synctest.Wait()
		select {
		case g := <-got:
			t.Fatalf("Read returned %q before CONNECTED", g)
		default:
		}
		deliver(t, s, f, cell.RelayConnected, []byte{127, 0, 0, 1, 0, 0, 0, 1})
		deliver(t, s, f, cell.RelayData, []byte("HTTP/1.0"))
		if g := <-got; g != "HTTP/1.0" {
			t.Fatal(g)
		}

		s2, _ := New(f, 6, &Config{Optimistic: true})
		if _, err := s2.Write([]byte("lost")); err != nil {
			t.Fatal(err)
		}
		deliver(t, s2, f, cell.RelayEnd, []byte{byte(cell.EndConnectRefused)})
		if _, err := s2.Read(make([]byte, 1)); !errors.Is(err, ErrConnectRefused) {
			t.Fatalf("read: %v", err)
		}
		if _, err := s2.Write([]byte("x")); !errors.Is(err, ErrConnectRefused) {
			t.Fatalf("write: %v", err)
		}
		if err := s2.WaitOpen(context.Background()); !errors.Is(err, ErrConnectRefused) {
			t.Fatalf("WaitOpen: %v", err)
		}
	})
}
