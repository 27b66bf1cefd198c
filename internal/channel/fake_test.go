package channel

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// A fake responder written from tor-spec 4: it proves identities it makes
// up, then follows a script. It shows how the client reacts to relays that
// misbehave, which real tor does not do on request.

// fakeRSAKey is an RSA-1024 key made for these tests only.
const fakeRSAKey = `-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDFiNSU/7i7n5j1EQNvxirBlBRqWmKwoSakt3d+1zXhI/x/dlYU
/5Yw59xJ5HOgikp0LYbnztE3CsfkdWs/C/kRwpAQfbxejpBiL7nRDzE5ZeUsU2IY
a4qTTWaeQzOiiw50zhbgAg91Crh2q6yLZgSm3QtKP0CBdb7EUMJP3DtGFQIDAQAB
AoGAaHo5reEfbSU5uozYG3tdy+stbR8HSdLCZKahLlZXqg/lkekeGJcichWAXxjU
y1m5jX8y9lJeN9Wc6knsgnkrr3ouh3c/XBvsDz0MYBsWhR2s7oBD7m7e5RqrlQiy
GEtWJ3cesObKmTCwDaUD6noEiwnwY70bfhuWoWirrLm1NSECQQDg8jn2aJ51gUcj
hHNgA7LDJYblIYLcau/Pgy1xNF0U4tPvqghyKORoyuQAYdIowJJnCRQgZSiKDqu5
JolfnC0NAkEA4M3aYqy6HRcWjJd3DLlaJQi3TUfaika+l4wxGrwnJhRydP12dJIs
FAfVO7HEtZazLzG9Iv2uMwDRhxgZIkqLKQJBALoImdcnfqU/XU4KZECrzlOF3aHx
rQANkHbVzecpnzF+xjgXLxT6rKvd3+JRBDWfzXRZFcQU5QoISAy/yizARKECQBS7
Z1SKUW+1XWMB5PzLa0DXGPCLm9/8vj8DstOgXovoftXDOlVt1ZrTThr/PgDxMP09
PRApDROvE6O92TOMZGECQQDIRuI2oSoWzYxYr6GVMhfl+6X8TTU3AYQxasdaomjP
hjr5zBuHs4nHKvf2TAIYjOR0W9qRYS8G3xjCc2zU5bb8
-----END RSA PRIVATE KEY-----`

type fakeKeys struct {
	made    time.Time // the certificates are valid for a day from here
	tlsCert tls.Certificate
	certs   []byte // CERTS payload
	id      torcrypto.RelayIdentity
}

var (
	fakeOnce sync.Once
	fake     fakeKeys
)

func edCert(typ, keyType uint8, key []byte, expires time.Time, signer ed25519.PrivateKey, ext []byte) []byte {
	b := []byte{1, typ}
	b = binary.BigEndian.AppendUint32(b, uint32(expires.Unix()/3600))
	b = append(b, keyType)
	b = append(b, key...)
	if ext != nil {
		b = append(b, 1, 0, 32, 4, 0)
		b = append(b, ext...)
	} else {
		b = append(b, 0)
	}
	return append(b, ed25519.Sign(signer, b)...)
}

func fakeRelayKeys(t testing.TB) fakeKeys {
	fakeOnce.Do(func() {
		now := clock.Real{}.Now()
		fake.made = now
		blk, _ := pem.Decode([]byte(fakeRSAKey))
		rsaKey, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "www.fake.net"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
		idDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tlsDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &tlsKey.PublicKey, tlsKey)
		if err != nil {
			t.Fatal(err)
		}
		idKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
		signKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32))
		idPub := idKey.Public().(ed25519.PublicKey)
		tlsDigest := sha256.Sum256(tlsDER)
		later := now.Add(24 * time.Hour)
		cross := append(bytes.Clone(idPub), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(cross[32:], uint32(later.Unix()/3600))
		h := sha256.Sum256(append([]byte("Tor TLS RSA/Ed25519 cross-certificate"), cross...))
		sig, _ := rsa.SignPKCS1v15(nil, rsaKey, crypto.Hash(0), h[:])
		cross = append(append(cross, byte(len(sig))), sig...)
		fake.certs, _ = cell.AppendCerts(nil, []cell.CertEntry{
			{Type: cell.CertTypeRSAIdentity, Body: idDER},
			{Type: cell.CertTypeEdIDSigning, Body: edCert(4, 1, signKey.Public().(ed25519.PublicKey), later, idKey, idPub)},
			{Type: cell.CertTypeEdSigningLink, Body: edCert(5, 3, tlsDigest[:], later, signKey, nil)},
			{Type: cell.CertTypeRSAEdCrosscert, Body: cross},
		})
		fake.tlsCert = tls.Certificate{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}
		fake.id.RSA = torcrypto.RSAIdentityDigest(&rsaKey.PublicKey)
		copy(fake.id.Ed25519[:], idPub)
	})
	return fake
}

// responder is the server side of one fake link.
type responder struct {
	t    testing.TB
	conn *tls.Conn
}

func (r *responder) writeVar(circIDLen int, cmd cell.Command, p []byte) {
	b, err := cell.AppendVar(nil, circIDLen, cell.VarCell{Command: cmd, Payload: p})
	if err != nil {
		r.t.Error(err)
	}
	r.conn.Write(b)
}

func (r *responder) writeFixed(id uint32, cmd cell.Command, p []byte) {
	var c cell.Cell
	c.SetPayload(id, cmd, p)
	r.conn.Write(c[:])
}

// readVersions reads the client's VERSIONS cell.
func (r *responder) readVersions() []uint16 {
	var hdr [5]byte
	if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
		r.t.Error(err)
		return nil
	}
	p := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	io.ReadFull(r.conn, p)
	vs, _ := cell.ParseVersions(p)
	return vs
}

func (r *responder) readCell() (*cell.Cell, error) {
	c := new(cell.Cell)
	_, err := io.ReadFull(r.conn, c[:])
	return c, err
}

// standard plays a correct responder handshake with a given NETINFO time.
func (r *responder) standard(netinfoTime uint32) {
	r.readVersions()
	r.writeVar(2, cell.CmdVPadding, []byte{1, 2, 3})
	r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{3, 4, 5}))
	r.writeVar(4, cell.CmdCerts, fake.certs)
	r.writeFixed(0, cell.CmdPadding, nil)
	ac, _ := cell.AuthChallenge{Methods: []uint16{1, 3}}.Append(nil)
	r.writeVar(4, cell.CmdAuthChallenge, ac)
	ni, _ := cell.Netinfo{Time: netinfoTime}.Append(nil)
	r.writeFixed(0, cell.CmdNetinfo, ni)
}

// countConn counts Write calls on the client's socket.
var debugWrites = false

type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if debugWrites {
		println("write", len(p))
	}
	return c.Conn.Write(p)
}

// fakeDial runs script as the responder on one end of a pipe and returns
// the client's end.
func fakeDial(t *testing.T, script func(r *responder)) (*countConn, chan struct{}) {
	k := fakeRelayKeys(t)
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{k.tlsCert}})
		if err := srv.Handshake(); err != nil {
			return
		}
		script(&responder{t: t, conn: srv})
		srv.Close()
	}()
	return &countConn{Conn: a}, done
}

func fakeTarget() Target {
	return Target{Addr: "192.0.2.1:9001", RSAID: fake.id.RSA, Ed25519ID: fake.id.Ed25519}
}

func TestFakeHandshakeAndDispatch(t *testing.T) {
	fakeRelayKeys(t)
	srvDone := make(chan struct{})
	type ready struct {
		r  *responder
		ni cell.Netinfo
	}
	readyCh := make(chan ready, 1)
	cc, done := fakeDial(t, func(r *responder) {
		now := uint32(clock.Real{}.Now().Unix())
		if vs := r.readVersions(); len(vs) != 2 || vs[0] != 4 || vs[1] != 5 {
			t.Errorf("client offered versions %v", vs)
		}
		r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{3, 4}))
		r.writeVar(4, cell.CmdCerts, fake.certs)
		r.writeVar(4, cell.CmdVPadding, nil)
		r.writeFixed(0, cell.CmdNetinfo, mustNetinfo(cell.Netinfo{Time: now - 3600}))
		c, err := r.readCell()
		if err != nil || c.Command() != cell.CmdNetinfo {
			t.Errorf("client's NETINFO: %v %v", c.Command(), err)
			return
		}
		ni, _ := cell.ParseNetinfo(c.Payload()[:])
		readyCh <- ready{r, ni}
		<-srvDone
	})
	ch, err := Client(context.Background(), nil, cc, fakeTarget())
	if err != nil {
		t.Fatal(err)
	}
	if ch.LinkVersion() != 4 {
		t.Fatalf("link version %d", ch.LinkVersion())
	}
	skew, ok := ch.ClockSkew()
	if !ok || skew > -59*time.Minute || skew < -61*time.Minute {
		t.Fatalf("skew %v", skew)
	}
	// Dispatch: padding and cells for unknown circuits are dropped; a
	// registered circuit gets its cells in order.
	h := &sink{cells: make(chan *cell.Cell, 10), closed: make(chan error, 1), pool: ch.Pool()}
	id, _ := ch.AddCircuit(h)
	rd := <-readyCh
	r0, gotNetinfo := rd.r, rd.ni
	r0.writeFixed(0, cell.CmdPadding, nil)
	r0.writeVar(4, cell.CmdVPadding, make([]byte, 300))
	r0.writeFixed(id^1, cell.CmdRelay, []byte{1})
	r0.writeFixed(id, cell.CmdRelay, []byte{2})
	r0.writeFixed(id, cell.CmdDestroy, []byte{3})
	for _, want := range []cell.Command{cell.CmdRelay, cell.CmdDestroy} {
		c := <-h.cells
		if c.Command() != want || c.CircID() != id {
			t.Fatalf("got %v on %x", c.Command(), c.CircID())
		}
		ch.Pool().Put(c)
	}
	if gotNetinfo.Time != 0 || gotNetinfo.OtherAddr.String() != "192.0.2.1" || len(gotNetinfo.MyAddrs) != 0 {
		t.Fatalf("client NETINFO %+v", gotNetinfo)
	}
	// The relay hangs up: the circuit learns why.
	close(srvDone)
	<-done
	if err := <-h.closed; err == nil {
		t.Fatal("ChannelClosed(nil)")
	}
	<-ch.Done()
	ch.Close()
}

func mustNetinfo(n cell.Netinfo) []byte {
	b, _ := n.Append(nil)
	return b
}

type sink struct {
	cells  chan *cell.Cell
	closed chan error
	pool   *cell.Pool
}

func (s *sink) HandleCell(c *cell.Cell) { s.cells <- c }
func (s *sink) ChannelClosed(err error) { s.closed <- err }

// TestWriteBatching: cells queued while the writer is blocked go out in
// batches of WriteBatch, one socket write each.
func TestWriteBatching(t *testing.T) {
	fakeRelayKeys(t)
	release := make(chan struct{})
	got := make(chan int, 1)
	cc, done := fakeDial(t, func(r *responder) {
		r.standard(0)
		r.readCell() // client NETINFO
		<-release
		n := 0
		for {
			if _, err := r.readCell(); err != nil {
				break
			}
			n++
		}
		got <- n
	})
	ch, err := Client(context.Background(), &Config{WriteBatch: 10}, cc, fakeTarget())
	if err != nil {
		t.Fatal(err)
	}
	before := cc.writes.Load()
	send := func() {
		c, _ := ch.Pool().Get(context.Background())
		c.SetPayload(0x80000001, cell.CmdPadding, nil)
		if err := ch.Send(c); err != nil {
			t.Fatal(err)
		}
	}
	// The first cell blocks the writer on the pipe; 25 more queue up.
	send()
	for ch.Stats().Queued != 0 {
		runtime.Gosched()
	}
	for i := 0; i < 25; i++ {
		send()
	}
	close(release)
	for ch.Stats().CellsWritten != 26 {
		runtime.Gosched()
	}
	if w := cc.writes.Load() - before; w != 1+3 {
		t.Fatalf("%d socket writes for 1 + 25 cells in batches of 10", w)
	}
	ch.Close()
	<-done
	if n := <-got; n != 26 {
		t.Fatalf("relay read %d cells", n)
	}
}

func TestPaddingNegotiation(t *testing.T) {
	fakeRelayKeys(t)
	got := make(chan []byte, 2)
	release := make(chan struct{})
	cc, done := fakeDial(t, func(r *responder) {
		r.readVersions()
		r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{5}))
		r.writeVar(4, cell.CmdCerts, fake.certs)
		r.writeFixed(0, cell.CmdNetinfo, mustNetinfo(cell.Netinfo{}))
		for i := 0; i < 2; i++ {
			c, err := r.readCell()
			if err != nil {
				break
			}
			got <- append([]byte{byte(c.Command())}, c.Payload()[:6]...)
		}
		<-release
		// A relay must not negotiate padding with a client.
		r.writeFixed(0, cell.CmdPaddingNegotiate, []byte{0, 2, 0, 0, 0, 0})
		r.readCell()
	})
	ch, err := Client(context.Background(), &Config{Padding: PaddingOff}, cc, fakeTarget())
	if err != nil {
		t.Fatal(err)
	}
	if b := <-got; cell.Command(b[0]) != cell.CmdNetinfo {
		t.Fatalf("first cell %v", cell.Command(b[0]))
	}
	if b := <-got; cell.Command(b[0]) != cell.CmdPaddingNegotiate || !bytes.Equal(b[1:], []byte{0, 1, 0, 0, 0, 0}) {
		t.Fatalf("second cell %x, want PADDING_NEGOTIATE STOP", b)
	}
	close(release)
	<-ch.Done()
	if !errors.Is(ch.Err(), ErrProtocol) {
		t.Fatalf("channel error %v", ch.Err())
	}
	ch.Close()
	<-done
}

func TestFakeHandshakeViolations(t *testing.T) {
	fakeRelayKeys(t)
	cases := map[string]struct {
		script func(r *responder)
		want   error
	}{
		"no common version": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{1, 2, 3}))
		}, ErrProtocol},
		"odd VERSIONS": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, []byte{0, 4, 0})
		}, ErrProtocol},
		"CERTS first": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdCerts, fake.certs)
		}, ErrProtocol},
		"NETINFO before CERTS": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
			r.writeFixed(0, cell.CmdNetinfo, mustNetinfo(cell.Netinfo{}))
		}, ErrProtocol},
		"AUTH_CHALLENGE before CERTS": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
			ac, _ := cell.AuthChallenge{}.Append(nil)
			r.writeVar(4, cell.CmdAuthChallenge, ac)
		}, ErrProtocol},
		"two CERTS": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
			r.writeVar(4, cell.CmdCerts, fake.certs)
			r.writeVar(4, cell.CmdCerts, fake.certs)
		}, ErrProtocol},
		"CREATED2 in the handshake": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
			r.writeVar(4, cell.CmdCerts, fake.certs)
			r.writeFixed(5, cell.CmdCreated2, nil)
		}, ErrProtocol},
		"CERTS missing the crosscert": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
			entries, _ := cell.ParseCerts(fake.certs)
			p, _ := cell.AppendCerts(nil, entries[:3])
			r.writeVar(4, cell.CmdCerts, p)
		}, torcrypto.ErrCertificate},
		"hang-up after VERSIONS": {func(r *responder) {
			r.readVersions()
			r.writeVar(2, cell.CmdVersions, cell.AppendVersions(nil, []uint16{4}))
		}, io.ErrUnexpectedEOF},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cc, done := fakeDial(t, tc.script)
			_, err := Client(context.Background(), nil, cc, fakeTarget())
			if !errors.Is(err, tc.want) && !(tc.want == io.ErrUnexpectedEOF && errors.Is(err, io.EOF)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			<-done
		})
	}

	// The relay proves identities other than the expected ones.
	cc, done := fakeDial(t, func(r *responder) { r.standard(0) })
	tg := fakeTarget()
	tg.Ed25519ID[5] ^= 1
	var ie *IdentityError
	if _, err := Client(context.Background(), nil, cc, tg); !errors.As(err, &ie) || ie.Got != fake.id {
		t.Fatalf("wrong Ed25519 identity: %v", err)
	}
	<-done

	// A context cancelled while the relay stalls ends the handshake.
	stall := make(chan struct{})
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("gave up")
	cc, done = fakeDial(t, func(r *responder) {
		r.readVersions()
		cancel(why)
		<-stall
	})
	if _, err := Client(ctx, nil, cc, fakeTarget()); !errors.Is(err, why) {
		t.Fatalf("cancelled handshake: %v", err)
	}
	close(stall)
	<-done

	// A relay that stalls forever meets HandshakeTimeout (in fake time).
	synctest.Test(t, func(t *testing.T) {
		stall := make(chan struct{})
		cc, done := fakeDial(t, func(r *responder) {
			r.readVersions()
			<-stall
		})
		defer func() {
			close(stall)
			<-done
		}()
		_, err := Client(context.Background(), &Config{HandshakeTimeout: time.Minute}, cc, fakeTarget())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stalled handshake: %v", err)
		}
	})
}

// TestWaitWritable: WaitWritable blocks while HighWater cells are queued
// and returns once the writer drains below it; Send itself never blocks.
func TestWaitWritable(t *testing.T) {
	k := fakeRelayKeys(t)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		cc, done := fakeDial(t, func(r *responder) {
			r.standard(0)
			r.readCell()
			<-release
			for {
				if _, err := r.readCell(); err != nil {
					return
				}
			}
		})
		released := false
		defer func() {
			if !released {
				close(release)
			}
			cc.Close()
			<-done
		}()
		// Fake time starts in 2000; the certificates are from today.
		cfg := &Config{HighWater: 5, WriteBatch: 2, Clock: clock.At(k.made)}
		ch, err := Client(context.Background(), cfg, cc, fakeTarget())
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		for i := 0; i < 8; i++ {
			c, _ := ch.Pool().Get(context.Background())
			c.SetPayload(0x80000001, cell.CmdPadding, nil)
			if err := ch.Send(c); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // the writer took a batch and blocks on the pipe
		waited := make(chan error, 1)
		go func() { waited <- ch.WaitWritable(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("WaitWritable returned with %d cells queued: %v", ch.Stats().Queued, err)
		default:
		}
		close(release)
		released = true
		if err := <-waited; err != nil {
			t.Fatal(err)
		}
		if q := ch.Stats().Queued; q >= 5 {
			t.Fatalf("woke with %d queued", q)
		}
		ch.Close()
		if err := ch.WaitWritable(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WaitWritable on a closed channel: %v", err)
		}
	})
}
