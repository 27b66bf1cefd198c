package circuit_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

// ccParams are the parameters a client without consensus entries uses:
// tor 0.4.9's defaults, which the test network's exits use too.
func ccParams() *circuit.CCParams {
	p := circuit.DefaultCCParams()
	return &p
}

// buildWith makes a 3-hop circuit guard -> middle -> exit over chCfg,
// asking the exit for congestion control when cc is set.
func buildWith(t testing.TB, n *testnet.Network, chCfg *channel.Config, cc bool) (*channel.Channel, *circuit.Circuit) {
	t.Helper()
	middles, exits := nodesByRole(n, testnet.Middle), nodesByRole(n, testnet.Exit)
	guard, gt := relayOf(t, middles[0])
	middle, _ := relayOf(t, middles[1])
	exit, _ := relayOf(t, exits[0])
	exit.CongestionControl = cc
	ch, err := channel.Dial(ctxT(t, 30*time.Second), chCfg, gt)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &circuit.Config{CongestionControl: ccParams()}
	c, err := circuit.Create(ctxT(t, 30*time.Second), ch, guard, cfg)
	if err != nil {
		ch.Close()
		t.Fatal(err)
	}
	for i, r := range []circuit.Relay{middle, exit} {
		if err := c.Extend(ctxT(t, 30*time.Second), r); err != nil {
			ch.Close()
			t.Fatalf("extend to hop %d: %v", i+1, err)
		}
	}
	return ch, c
}

func httpTarget(n *testnet.Network) (string, uint16) {
	host, portStr, _ := net.SplitHostPort(n.HTTPTarget())
	var port uint16
	fmt.Sscan(portStr, &port)
	return host, port
}

// download GETs name over s and checks its SHA-256.
func download(t testing.TB, n *testnet.Network, s net.Conn, name string) {
	t.Helper()
	body, ok := n.Body(name)
	if !ok {
		t.Fatalf("no body %s", name)
	}
	fmt.Fprintf(s, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", body.Name, n.HTTPTarget())
	resp, err := http.ReadResponse(bufio.NewReaderSize(s, 64<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("%s after %d bytes: %v", name, got, err)
	}
	if got != body.Size || hex.EncodeToString(h.Sum(nil)) != body.SHA256 {
		t.Fatalf("%s: %d bytes, SHA-256 mismatch", name, got)
	}
}

// TestCongestionControl: a 3-hop circuit whose exit (tor 0.4.9, FlowCtrl=2)
// agrees to congestion control at cc_sendme_inc 31; the 10 MiB body
// arrives intact with SENDMEs every 31 cells and no stream SENDMEs (the
// exit would close the circuit otherwise); then 1 MiB echoed through the
// exit runs our own Vegas on the exit's SENDMEs.
func TestCongestionControl(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()
	defer func() {
		ln.Close()
		wg.Wait()
		check()
	}()
	ch, c := buildWith(t, n, nil, true)
	defer ch.Close()
	defer c.Close()
	st, ok := c.CongestionControl()
	if !ok || st.SendmeInc != 31 || st.Cwnd != 124 || !st.SlowStart {
		t.Fatalf("CongestionControl() = %+v, %v", st, ok)
	}
	host, port := httpTarget(n)
	s, err := c.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	download(t, n, s, "10MiB.bin")
	fs, ok := s.FlowStats()
	if !ok {
		t.Fatal("stream on a congestion-controlled circuit without flow control")
	}
	t.Logf("10 MiB with CC: flow %+v; channel %+v", fs, ch.Stats())
	s.Close()

	e, err := c.Begin(ctxT(t, 30*time.Second), "127.0.0.1", uint16(ln.Addr().(*net.TCPAddr).Port), 0)
	if err != nil {
		t.Fatal(err)
	}
	e.SetDeadline(time.Now().Add(2 * time.Minute))
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := e.Write(payload)
		werr <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(e, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("echo differs")
	}
	e.Close()
	st, _ = c.CongestionControl()
	// 2,106 cells sent: 67 SENDMEs, each with a real RTT.
	if st.Sendmes < 60 || st.MinRTT <= 0 || st.EWMARTT < st.MinRTT || st.MaxRTT < st.EWMARTT || st.Cwnd < 124 {
		t.Fatalf("after the upload: %+v", st)
	}
	t.Logf("after 1 MiB up: %+v", st)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestCongestionControlSlowReader: with no stream window, only XOFF keeps
// a reader that stops from queueing the whole 10 MiB body. The channel
// gets a pool big enough for all of it, so only the XOFF can stop the
// exit; the reader waits until nothing more arrives, then reads the rest.
func TestCongestionControlSlowReader(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, c := buildWith(t, n, &channel.Config{Pool: cell.NewPool(32 << 10)}, true)
	defer ch.Close()
	defer c.Close()
	host, port := httpTarget(n)
	s, err := c.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	body, _ := n.Body("10MiB.bin")
	fmt.Fprintf(s, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", body.Name, n.HTTPTarget())
	// Wait for the queue to stop growing: 20 polls 50 ms apart that see
	// no new data.
	last, still := -1, 0
	for still < 20 {
		time.Sleep(50 * time.Millisecond)
		if b := s.Buffered(); b != last {
			last, still = b, 0
		} else {
			still++
		}
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
	}
	fs, _ := s.FlowStats()
	t.Logf("reader stalled: %d bytes queued, flow %+v", last, fs)
	// cc_xoff_client (500 cells) plus at most cc_ss_max (5000) cells the
	// exit may have had in flight when the XOFF reached it.
	if limit := int64((500 + 5000) * cell.RelayBodyMax); fs.XoffSent != 1 || fs.MaxQueued > limit || int64(last) >= body.Size {
		t.Fatalf("queued %d bytes (limit %d) with %d XOFFs", fs.MaxQueued, limit, fs.XoffSent)
	}
	resp, err := http.ReadResponse(bufio.NewReader(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first XON advertises the slow drain rate measured across the
	// stall; reading at full speed must lift it (advisory XONs), or the
	// rest of the body would crawl in at that rate.
	h := sha256.New()
	t0 := time.Now()
	if got, err := io.Copy(h, resp.Body); err != nil || got != body.Size || hex.EncodeToString(h.Sum(nil)) != body.SHA256 {
		t.Fatalf("%d bytes, %v; SHA-256 match %v", got, err, hex.EncodeToString(h.Sum(nil)) == body.SHA256)
	}
	t.Logf("read the body in %v", time.Since(t0))
	// The stall put at least 1 s of busy time into the first sample of
	// about 250 kB: at most 250 kB/s. Reading from memory into SHA-256
	// runs far faster than 1 MB/s, even under the race detector.
	fs, _ = s.FlowStats()
	if fs.XonSent < 2 || fs.XonRate < 1000 {
		t.Fatalf("XON after draining, then a rate for a reader that keeps up: %+v", fs)
	}
	t.Logf("after reading: flow %+v", fs)
}

// BenchmarkThreeHopDownload fetches the 10 MiB body through the same
// three relays per iteration (BEGIN, HTTP GET, read to the end, SHA-256;
// a fresh circuit per iteration, built off the clock): with fixed windows,
// with congestion control, over a conflux set of two circuits, and for
// comparison in the same run through a C
// tor client (which negotiates congestion control too, and builds its
// circuits before the first fetch).
func BenchmarkThreeHopDownload(b *testing.B) {
	n := testnet.Shared(b)
	body, _ := n.Body("10MiB.bin")
	host, port := httpTarget(n)
	for _, cc := range []bool{false, true} {
		name := "fixed"
		if cc {
			name = "cc"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(body.Size)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				ch, c := buildWith(b, n, nil, cc)
				b.StartTimer()
				s, err := c.Begin(ctxT(b, 30*time.Second), host, port, 0)
				if err != nil {
					b.Fatal(err)
				}
				download(b, n, s, body.Name)
				b.StopTimer()
				s.Close()
				c.Close()
				ch.Close()
				b.StartTimer()
			}
		})
	}
	// Two legs through disjoint guards and middles to the same exit,
	// linked as a conflux set (a fresh set per iteration, off the clock).
	b.Run("conflux", func(b *testing.B) {
		b.SetBytes(body.Size)
		for b.Loop() {
			b.StopTimer()
			x, closeAll := confluxSet(b, n)
			b.StartTimer()
			s, err := x.Begin(ctxT(b, 30*time.Second), host, port, 0)
			if err != nil {
				b.Fatal(err)
			}
			download(b, n, s, body.Name)
			b.StopTimer()
			s.Close()
			closeAll()
			b.StartTimer()
		}
	})
	// Same exit as ours; C tor picks its own guard and middle (pinning
	// them leaves its guard sample empty on this network). "ctor" has
	// conflux off, so one circuit carries the stream, as ours does;
	// "ctor-conflux" is C tor's default, which may split the download
	// over two circuits (and exits).
	for _, conflux := range []bool{false, true} {
		name, torrc := "ctor", []string{"ExitNodes " + nodesByRole(n, testnet.Exit)[0].Fingerprint,
			"StrictNodes 1", "ConfluxEnabled 0"}
		if conflux {
			name, torrc = "ctor-conflux", nil
		}
		b.Run(name, func(b *testing.B) {
			ctx := ctxT(b, 3*time.Minute)
			cl, err := n.StartClient(ctx, testnet.ClientConfig{Dir: b.TempDir(), ExtraTorrc: torrc})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Stop()
			if err := cl.WaitBootstrapped(ctx); err != nil {
				b.Fatal(err)
			}
			d := &transport.SOCKS5{Addr: cl.SOCKSAddr()}
			// A first fetch to have the circuit built.
			conn, err := d.DialContext(ctx, "tcp", n.HTTPTarget())
			if err != nil {
				b.Fatal(err)
			}
			download(b, n, conn, "hello.txt")
			conn.Close()
			b.SetBytes(body.Size)
			for b.Loop() {
				conn, err := d.DialContext(ctx, "tcp", n.HTTPTarget())
				if err != nil {
					b.Fatal(err)
				}
				download(b, n, conn, body.Name)
				conn.Close()
			}
		})
	}
}

// BenchmarkSlowLinkDownload fetches 1 MiB over a shaped 1 Mbit/s link
// with 100 ms RTT between us and the guard, per iteration on a fresh
// circuit, with fixed windows and with congestion control.
func BenchmarkSlowLinkDownload(b *testing.B) {
	n := testnet.Shared(b)
	body, _ := n.Body("1MiB.bin")
	host, port := httpTarget(n)
	for _, cc := range []bool{false, true} {
		name := "fixed"
		if cc {
			name = "cc"
		}
		b.Run(name, func(b *testing.B) {
			p, err := slowlink.New(slowlink.Config{Rate: 1_000_000, Delay: 50 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Start("127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.SetBytes(body.Size)
			for b.Loop() {
				ch, c := buildWith(b, n, &channel.Config{Dialer: &transport.SOCKS5{Addr: p.Addr()}}, cc)
				s, err := c.Begin(ctxT(b, time.Minute), host, port, 0)
				if err != nil {
					b.Fatal(err)
				}
				download(b, n, s, body.Name)
				s.Close()
				c.Close()
				ch.Close()
			}
		})
	}
}
