package faulttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// addrListener listens on loopback but reports another address, so that
// the SOCKS loopback check can be tried on any address without serving
// anything beyond loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// TestSOCKSLoopbackOnly: ServeSOCKS refuses listeners on addresses other
// than loopback (KindConfig, listener closed) and accepts loopback ones;
// ServeSOCKSRemote, the explicit opt-in, serves any, and a CONNECT through
// it reaches the HTTP target.
func TestSOCKSLoopbackOnly(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	c := newClient(t, n, t.TempDir(), nil)
	listen := func(addr string) addrListener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return addrListener{ln, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))}
	}
	for _, addr := range []string{"0.0.0.0:9150", "192.0.2.7:9150", "10.0.0.1:1080", "[::]:9150", "[2001:db8::1]:9150", "[fe80::1]:9150"} {
		ln := listen(addr)
		done := make(chan error, 1)
		go func() { done <- c.ServeSOCKS(ln) }()
		// A greeting is answered only if the listener is served; a
		// refusal closes it, which resets the waiting connection.
		if conn, err := net.Dial("tcp", ln.Listener.Addr().String()); err == nil {
			conn.Write([]byte{5, 1, 0})
			_, rerr := io.ReadFull(conn, make([]byte, 2))
			conn.Close()
			if rerr == nil {
				c.Close()
				<-done
				t.Fatalf("ServeSOCKS serves a listener on %s", addr)
			}
		}
		if err := <-done; !errors.Is(err, &sdk.Error{Kind: sdk.KindConfig}) {
			t.Errorf("ServeSOCKS on %s: %v, want KindConfig", addr, err)
		}
		if _, aerr := ln.Listener.Accept(); !errors.Is(aerr, net.ErrClosed) {
			t.Errorf("ServeSOCKS on %s left the listener open (%v)", addr, aerr)
		}
	}
	serve := func(ln net.Listener, remote bool) (string, chan error) {
		done := make(chan error, 1)
		go func() {
			if remote {
				done <- c.ServeSOCKSRemote(ln)
			} else {
				done <- c.ServeSOCKS(ln)
			}
		}()
		return ln.(addrListener).Listener.Addr().String(), done
	}
	var servers []chan error
	for _, tc := range []struct {
		addr   string
		remote bool
	}{{"127.0.0.1:9150", false}, {"127.3.4.5:9150", false}, {"[::1]:9150", false}, {"[::ffff:127.0.0.1]:9150", false}, {"192.0.2.7:9150", true}, {"[::]:9150", true}} {
		real, done := serve(listen(tc.addr), tc.remote)
		servers = append(servers, done)
		code, conn := socksConnect(t, real, false, "127.0.0.1", uint16(targetPort(t, n)))
		if code != 0 {
			t.Errorf("SOCKS on %s (remote opt-in %v): reply %d", tc.addr, tc.remote, code)
		} else if err := fetchHello(conn, n.HTTPTarget()); err != nil {
			t.Errorf("SOCKS on %s: %v", tc.addr, err)
		}
		conn.Close()
	}
	c.Close()
	for _, done := range servers {
		if err := <-done; !errors.Is(err, sdk.ErrClosed) {
			t.Errorf("a SOCKS server ended with %v", err)
		}
	}
}

// TestBridgeIdentityMismatch: a bridge whose fingerprint is another
// relay's is refused at the link handshake: the bootstrap fails with the
// identity error in its chain and nothing is used from that relay. The
// same relay with its own fingerprint works.
func TestBridgeIdentityMismatch(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	var mids []testnet.Node
	for _, nd := range n.Nodes() {
		if nd.Role == testnet.Middle {
			mids = append(mids, nd)
		}
	}
	bridge := func(addrOf, fpOf testnet.Node) string {
		return fmt.Sprintf("127.0.0.1:%d %s", addrOf.ORPort, fpOf.Fingerprint)
	}
	wrong := newClient(t, n, t.TempDir(), nil)
	wrong.Bridges = []string{bridge(mids[0], mids[1])}
	err := wrong.Bootstrap(ctxFor(t, 2*time.Minute))
	if !errors.Is(err, &sdk.Error{Kind: sdk.KindBootstrapFailed}) || !errors.Is(err, channel.ErrIdentity) {
		t.Fatalf("bridge with another relay's fingerprint: %v, want KindBootstrapFailed wrapping channel.ErrIdentity", err)
	}
	if st := wrong.Stats(); st.DirBytesRead != 0 || st.Relays != 0 {
		t.Fatalf("something was read from the impostor: %+v", st)
	}
	right := newClient(t, n, t.TempDir(), nil)
	right.Bridges = []string{bridge(mids[0], mids[0])}
	if err := right.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("the same bridge with its own fingerprint: %v", err)
	}
}
