package circuit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

// relayOf describes a test-network node the way a client would know it
// from the directory: identities, ntor key, address. The ntor key comes
// from the node's key file (tag | secret | public); TestBeginDirDescriptor
// checks it against the descriptor the relay serves.
func relayOf(t testing.TB, nd testnet.Node) (circuit.Relay, channel.Target) {
	t.Helper()
	fp, err := hex.DecodeString(nd.Fingerprint)
	if err != nil || len(fp) != 20 {
		t.Fatalf("%s: fingerprint %q", nd.Nick, nd.Fingerprint)
	}
	kf, err := os.ReadFile(filepath.Join(nd.DataDir, "keys", "secret_onion_key_ntor"))
	if err != nil || len(kf) != 96 || !bytes.HasPrefix(kf, []byte("== c25519v1: onion ==")) {
		t.Fatalf("%s: ntor key file: %v (%d bytes)", nd.Nick, err, len(kf))
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(nd.ORPort))
	r := circuit.Relay{RSAID: [20]byte(fp), Ed25519ID: nd.Ed25519ID, NtorKey: [32]byte(kf[64:]), NtorV3: true,
		Addrs: []netip.AddrPort{ap}}
	return r, channel.Target{Addr: ap.String(), RSAID: r.RSAID, Ed25519ID: r.Ed25519ID}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func nodesByRole(n *testnet.Network, role testnet.Role) []testnet.Node {
	var out []testnet.Node
	for _, nd := range n.Nodes() {
		if nd.Role == role {
			out = append(out, nd)
		}
	}
	return out
}

// httpGet sends an HTTP/1.0 GET over conn and returns the response.
func httpGet(t testing.TB, conn net.Conn, host, path string) (*http.Response, []byte) {
	t.Helper()
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, body
}

// TestOneHopHandshakes builds one-hop circuits to a real relay with each
// handshake and fetches the relay's own descriptor over BEGIN_DIR, which
// must carry the ntor key the test used.
func TestOneHopHandshakes(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	nd := nodesByRole(n, testnet.Middle)[0]
	r, tg := relayOf(t, nd)
	ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for _, hs := range []circuit.Handshake{circuit.HandshakeNtorV3, circuit.HandshakeNtor, circuit.HandshakeFast} {
		t.Run(hs.String(), func(t *testing.T) {
			r := r
			r.Handshake = hs
			c, err := circuit.Create(ctxT(t, 30*time.Second), ch, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.BeginDir(ctxT(t, 30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			s.SetDeadline(time.Now().Add(30 * time.Second))
			resp, body := httpGet(t, s, "127.0.0.1", "/tor/server/authority")
			if resp.StatusCode != 200 {
				t.Fatalf("status %s", resp.Status)
			}
			want := "\nntor-onion-key " + base64.StdEncoding.EncodeToString(r.NtorKey[:])
			if !bytes.Contains(body, []byte(strings.TrimRight(want, "="))) {
				t.Fatalf("descriptor lacks %q:\n%s", want, body)
			}
			if !bytes.Contains(body, []byte("router "+nd.Nick+" ")) {
				t.Fatalf("descriptor of the wrong relay:\n%.200s", body)
			}
			s.Close()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
	if ch.Circuits() != 0 {
		t.Fatalf("%d circuits left on the channel", ch.Circuits())
	}
}

// TestConsensusOverBeginDir is the bootstrap's first fetch: CREATE_FAST
// to an authority (no ntor key known yet), BEGIN_DIR, and the microdesc
// consensus over HTTP/1.0.
func TestConsensusOverBeginDir(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	auth := nodesByRole(n, testnet.Authority)[0]
	_, tg := relayOf(t, auth)
	r := circuit.Relay{RSAID: tg.RSAID} // only what a DirAuthority line gives
	ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	c, err := circuit.Create(ctxT(t, 30*time.Second), ch, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.BeginDir(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(60 * time.Second))
	resp, body := httpGet(t, s, "127.0.0.1", "/tor/status-vote/current/consensus-microdesc")
	if resp.StatusCode != 200 {
		t.Fatalf("status %s", resp.Status)
	}
	if !bytes.HasPrefix(body, []byte("network-status-version 3 microdesc\n")) {
		t.Fatalf("not a microdesc consensus: %.100q", body)
	}
	if got := bytes.Count(body, []byte("\nr ")); got != len(n.Nodes()) {
		t.Errorf("%d r lines for %d nodes", got, len(n.Nodes()))
	}
	if !bytes.Contains(body, []byte("\ndirectory-footer\n")) || !bytes.Contains(body, []byte("-----END SIGNATURE-----")) {
		t.Error("consensus truncated")
	}
	t.Logf("consensus: %d bytes over BEGIN_DIR; channel %+v", len(body), ch.Stats())
}

// build makes a 3-hop circuit guard -> middle -> exit, mixing handshakes.
func build(t testing.TB, n *testnet.Network) (*channel.Channel, *circuit.Circuit) {
	t.Helper()
	middles, exits := nodesByRole(n, testnet.Middle), nodesByRole(n, testnet.Exit)
	guard, gt := relayOf(t, middles[0])
	middle, _ := relayOf(t, middles[1])
	exit, _ := relayOf(t, exits[0])
	middle.Handshake = circuit.HandshakeNtor
	ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, gt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := circuit.Create(ctxT(t, 30*time.Second), ch, guard, nil)
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
	if c.Hops() != 3 {
		t.Fatalf("%d hops", c.Hops())
	}
	return ch, c
}

// TestThreeHopFetch extends to three hops with EXTEND2 and fetches a 1 MiB
// body from the test network's HTTP target through the exit: about 2,100
// DATA cells, so circuit SENDMEs (v1) and stream SENDMEs both flow.
func TestThreeHopFetch(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, c := build(t, n)
	defer ch.Close()
	defer c.Close()
	host, portStr, _ := net.SplitHostPort(n.HTTPTarget())
	var port uint16
	fmt.Sscan(portStr, &port)
	s, err := c.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Connected().Addr; a.String() != host {
		t.Errorf("CONNECTED address %v", a)
	}
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	body, _ := n.Body("1MiB.bin")
	resp, got := httpGet(t, s, n.HTTPTarget(), "/"+body.Name)
	if resp.StatusCode != 200 || int64(len(got)) != body.Size {
		t.Fatalf("status %s, %d bytes", resp.Status, len(got))
	}
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != body.SHA256 {
		t.Fatal("SHA-256 mismatch")
	}
	// The server closed the connection: the exit ends the stream with DONE,
	// which reads as EOF.
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the response: %v", err)
	}
	t.Logf("1 MiB over 3 hops: channel %+v", ch.Stats())
}

// TestThreeHopEcho writes 1 MiB through the exit to an echo server on
// 127.0.0.1 while reading the echo, so our package windows are spent and
// refilled by the exit's SENDMEs, whose v1 digests we verify.
func TestThreeHopEcho(t *testing.T) {
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
	ch, c := build(t, n)
	defer ch.Close()
	defer c.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	s, err := c.Begin(ctxT(t, 30*time.Second), "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(2 * time.Minute))
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		werr <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("echo differs")
	}
	s.Close()
}

// TestBeginRefused asks the exit for a closed port: the open fails with
// the exit's END reason as a typed error, and the circuit stays usable.
func TestBeginRefused(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing listens there now
	ch, c := build(t, n)
	defer ch.Close()
	defer c.Close()
	_, err = c.Begin(ctxT(t, 30*time.Second), "127.0.0.1", port, 0)
	// tor 0.4.9 exits report a refused connection as MISC (the errno is
	// gone by the time the END is built); any END reason must arrive as
	// a typed error.
	var ee *stream.EndError
	if !errors.As(err, &ee) {
		t.Fatalf("BEGIN to a closed port: %v", err)
	}
	if !errors.Is(err, &stream.EndError{Reason: ee.Reason}) || errors.Is(err, stream.ErrNotDirectory) {
		t.Fatalf("EndError matching for %v", ee.Reason)
	}
	t.Logf("refused: %v", err)
	// The circuit is still good for the next stream.
	host, portStr, _ := net.SplitHostPort(n.HTTPTarget())
	var hp uint16
	fmt.Sscan(portStr, &hp)
	s, err := c.Begin(ctxT(t, 30*time.Second), host, hp, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(30 * time.Second))
	resp, body := httpGet(t, s, n.HTTPTarget(), "/hello.txt")
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "Hello") {
		t.Fatalf("%s %q", resp.Status, body)
	}
	s.Close()
}

// TestResolve sends RESOLVE to the exit. The test network's exits have
// no DNS server and refuse to resolve private addresses, so the answer is
// a single error answer; what is tested is the RESOLVE/RESOLVED exchange
// on its own stream ID.
func TestResolve(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	ch, c := build(t, n)
	defer ch.Close()
	defer c.Close()
	ans, err := c.Resolve(ctxT(t, 30*time.Second), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(ans) == 1 && ans[0].Type == cell.AnswerIPv4 && ans[0].Addr.String() == "127.0.0.1":
	case len(ans) == 1 && (ans[0].Type == cell.AnswerErrorTransient || ans[0].Type == cell.AnswerErrorPermanent):
		t.Logf("exit answered error %#x %q", ans[0].Type, ans[0].Value)
	default:
		t.Fatalf("answers %+v", ans)
	}
	// The circuit carries on: a second lookup works the same way.
	if _, err := c.Resolve(ctxT(t, 30*time.Second), "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyFromRelay: when the relay at the far end of the channel goes
// away, the circuit ends with the channel's error and its streams see it.
func TestCircuitDiesWithChannel(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	nd := nodesByRole(n, testnet.Middle)[0]
	r, tg := relayOf(t, nd)
	ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, tg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := circuit.Create(ctxT(t, 30*time.Second), ch, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.BeginDir(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
	<-c.Done()
	var cc *circuit.ChannelClosedError
	if !errors.As(c.Err(), &cc) || !errors.Is(c.Err(), channel.ErrClosed) {
		t.Fatalf("circuit error %v", c.Err())
	}
	if _, err := s.Read(make([]byte, 10)); !errors.As(err, &cc) {
		t.Fatalf("stream read after the channel closed: %v", err)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("write succeeded on a dead circuit")
	}
	s.Close()
}

// TestThroughShapingProxy runs a channel through the test network's
// shaping SOCKS5 proxy (transport.SOCKS5 as the injected dialer): a
// consensus fetch over a 20 ms, 2 Mbit/s link with socket counters that
// agree with the proxy's, then a 1 MiB fetch on a connection the proxy
// resets after 200 KB, which must fail with the channel's error.
func TestThroughShapingProxy(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()

	t.Run("shaped", func(t *testing.T) {
		p, err := slowlink.New(slowlink.Config{Rate: 2_000_000, Delay: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		_, tg := relayOf(t, nodesByRole(n, testnet.Authority)[1])
		cfg := &channel.Config{Dialer: &transport.SOCKS5{Addr: p.Addr()}}
		ch, err := channel.Dial(ctxT(t, 30*time.Second), cfg, tg)
		if err != nil {
			t.Fatal(err)
		}
		c, err := circuit.Create(ctxT(t, 30*time.Second), ch, circuit.Relay{RSAID: tg.RSAID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.BeginDir(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		s.SetDeadline(time.Now().Add(time.Minute))
		resp, body := httpGet(t, s, "127.0.0.1", "/tor/status-vote/current/consensus-microdesc")
		if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("network-status-version 3 microdesc")) {
			t.Fatalf("%s %.40q", resp.Status, body)
		}
		s.Close()
		c.Close()
		ch.Close()
		p.Close() // waits for the proxy's goroutines: its counters are final
		cs, ps := ch.Stats(), p.Stats()
		// Every byte we read crossed the proxy; the proxy may have
		// delivered a few more (padding) that nobody read.
		if cs.BytesRead > ps.Down || ps.Down-cs.BytesRead > 4096 || cs.BytesWritten > ps.Up+4096 || cs.BytesWritten < 1000 {
			t.Fatalf("channel counted read %d written %d; proxy down %d up %d", cs.BytesRead, cs.BytesWritten, ps.Down, ps.Up)
		}
	})

	t.Run("reset", func(t *testing.T) {
		p, err := slowlink.New(slowlink.Config{ResetAfter: 200 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		middles, exits := nodesByRole(n, testnet.Middle), nodesByRole(n, testnet.Exit)
		guard, gt := relayOf(t, middles[2])
		exit, _ := relayOf(t, exits[1])
		ch, err := channel.Dial(ctxT(t, 30*time.Second), &channel.Config{Dialer: &transport.SOCKS5{Addr: p.Addr()}}, gt)
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		c, err := circuit.Create(ctxT(t, 30*time.Second), ch, guard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Extend(ctxT(t, 30*time.Second), exit); err != nil {
			t.Fatal(err)
		}
		host, portStr, _ := net.SplitHostPort(n.HTTPTarget())
		var port uint16
		fmt.Sscan(portStr, &port)
		s, err := c.Begin(ctxT(t, 30*time.Second), host, port, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprintf(s, "GET /1MiB.bin HTTP/1.0\r\nHost: %s\r\n\r\n", n.HTTPTarget())
		got, err := io.ReadAll(s)
		var cc *circuit.ChannelClosedError
		// How much arrives depends on what was in flight when the RST
		// came; never the whole body.
		if !errors.As(err, &cc) || len(got) >= 1<<20 || len(got) == 0 {
			t.Fatalf("read %d bytes, then %v", len(got), err)
		}
		<-ch.Done()
		if ps := p.Stats(); ps.Resets != 1 {
			t.Fatalf("proxy resets %d", ps.Resets)
		}
		s.Close()
	})
}
