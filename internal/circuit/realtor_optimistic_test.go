package circuit_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

// TestOptimisticData sends each request before CONNECTED arrives: to a
// relay's directory over BEGIN_DIR, and to the HTTP target through an
// exit; to a closed port the write still succeeds (it does not wait for
// CONNECTED) and the read reports the exit's END as a typed error.
func TestOptimisticData(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	opt := circuit.BeginOptions{Optimistic: true}

	t.Run("BEGIN_DIR", func(t *testing.T) {
		nd := nodesByRole(n, testnet.Middle)[2]
		r, tg := relayOf(t, nd)
		ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, tg)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		c, err := circuit.Create(ctxT(t, 30*time.Second), ch, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.BeginDirWith(ctxT(t, 30*time.Second), opt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(30 * time.Second))
		resp, body := httpGet(t, s, "127.0.0.1", "/tor/server/authority")
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("router "+nd.Nick+" ")) {
			t.Fatalf("%s %.100q", resp.Status, body)
		}
	})

	for _, cc := range []bool{false, true} {
		t.Run(fmt.Sprintf("BEGIN cc=%v", cc), func(t *testing.T) {
			ch, c := buildWith(t, n, nil, cc)
			defer ch.Close()
			defer c.Close()
			host, port := httpTarget(n)
			s, err := c.BeginWith(ctxT(t, 30*time.Second), host, port, 0, opt)
			if err != nil {
				t.Fatal(err)
			}
			s.SetDeadline(time.Now().Add(time.Minute))
			download(t, n, s, "1MiB.bin")
			if a := s.Connected().Addr; a.String() != host {
				t.Errorf("CONNECTED address %v", a)
			}
			s.Close()

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			closed := uint16(ln.Addr().(*net.TCPAddr).Port)
			ln.Close()
			s, err = c.BeginWith(ctxT(t, 30*time.Second), "127.0.0.1", closed, 0, opt)
			if err != nil {
				t.Fatal(err)
			}
			s.SetDeadline(time.Now().Add(time.Minute))
			if _, err := fmt.Fprintf(s, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatalf("optimistic write waited for the exit: %v", err)
			}
			_, err = s.Read(make([]byte, 1))
			var ee *stream.EndError
			if !errors.As(err, &ee) {
				t.Fatalf("read from a closed port: %v", err)
			}
			t.Logf("closed port: %v", err)
			if _, err := s.Write([]byte("x")); !errors.As(err, &ee) {
				t.Fatalf("write after the END: %v", err)
			}
			s.Close()
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkOptimisticFirstByte is the time from BEGIN to the first byte
// of a small HTTP response over a shaped 300 ms RTT link (64 kbit/s),
// with and without optimistic data: one round trip apart.
func BenchmarkOptimisticFirstByte(b *testing.B) {
	n := testnet.Shared(b)
	host, port := httpTarget(n)
	p, err := slowlink.New(slowlink.Config{Rate: 64_000, Delay: 150 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ch, c := buildWith(b, n, &channel.Config{Dialer: &transport.SOCKS5{Addr: p.Addr()}}, true)
	defer ch.Close()
	defer c.Close()
	for _, optimistic := range []bool{false, true} {
		b.Run(fmt.Sprintf("optimistic=%v", optimistic), func(b *testing.B) {
			for b.Loop() {
				s, err := c.BeginWith(ctxT(b, time.Minute), host, port, 0, circuit.BeginOptions{Optimistic: optimistic})
				if err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(s, "GET /hello.txt HTTP/1.0\r\nHost: %s\r\n\r\n", n.HTTPTarget())
				if _, err := s.Read(make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
