package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeProxy is a minimal SOCKS5 server run on loopback: it records the
// request and either fails it with code or relays to an echo.
func fakeProxy(t *testing.T, code byte, wantAuth bool) (addr string, got chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var h [2]byte
		io.ReadFull(c, h[:])
		m := make([]byte, h[1])
		io.ReadFull(c, m)
		if wantAuth {
			c.Write([]byte{5, 2})
			var v [2]byte
			io.ReadFull(c, v[:])
			u := make([]byte, v[1])
			io.ReadFull(c, u)
			io.ReadFull(c, v[:1])
			p := make([]byte, v[0])
			io.ReadFull(c, p)
			ok := byte(0)
			if string(u) != "alice" || string(p) != "pw" {
				ok = 1
			}
			c.Write([]byte{1, ok})
		} else {
			c.Write([]byte{5, 0})
		}
		var req [4]byte
		io.ReadFull(c, req[:])
		var rest []byte
		switch req[3] {
		case 1:
			rest = make([]byte, 6)
		case 4:
			rest = make([]byte, 18)
		case 3:
			var l [1]byte
			io.ReadFull(c, l[:])
			rest = append([]byte{l[0]}, make([]byte, int(l[0])+2)...)
			io.ReadFull(c, rest[1:])
			got <- append(req[:], rest...)
			goto reply
		}
		io.ReadFull(c, rest)
		got <- append(req[:], rest...)
	reply:
		c.Write([]byte{5, code, 0, 1, 127, 0, 0, 1, 0, 80})
		if code == 0 {
			io.Copy(c, c)
		}
	}()
	return ln.Addr().String(), got
}

func TestSOCKS5HostnameNotResolved(t *testing.T) {
	addr, got := fakeProxy(t, 0, false)
	d := &SOCKS5{Addr: addr}
	c, err := d.DialContext(context.Background(), "tcp", "example.onion:443")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := <-got
	want := append([]byte{5, 1, 0, 3, byte(len("example.onion"))}, "example.onion"...)
	want = append(want, 1, 187)
	if !bytes.Equal(req, want) {
		t.Fatalf("request %x, want %x", req, want)
	}
	c.Write([]byte("ping"))
	var b [4]byte
	io.ReadFull(c, b[:])
	if string(b[:]) != "ping" {
		t.Fatalf("echo %q", b)
	}
}

func TestSOCKS5IPv4AndAuth(t *testing.T) {
	addr, got := fakeProxy(t, 0, true)
	d := &SOCKS5{Addr: addr, Username: "alice", Password: "pw"}
	c, err := d.DialContext(context.Background(), "tcp", "127.0.0.9:9001")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if req := <-got; !bytes.Equal(req, []byte{5, 1, 0, 1, 127, 0, 0, 9, 0x23, 0x29}) {
		t.Fatalf("request %x", req)
	}
}

func TestSOCKS5Refused(t *testing.T) {
	addr, _ := fakeProxy(t, 2, false)
	d := &SOCKS5{Addr: addr}
	_, err := d.DialContext(context.Background(), "tcp", "10.0.0.1:80")
	var se *SOCKS5Error
	if !errors.As(err, &se) || se.Code != 2 {
		t.Fatalf("err = %v, want SOCKS5Error code 2", err)
	}
}

func TestSOCKS5ContextDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // never answers
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = (&SOCKS5{Addr: ln.Addr().String()}).DialContext(ctx, "tcp", "127.0.0.1:1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestSOCKS5BadInput(t *testing.T) {
	d := &SOCKS5{Addr: "127.0.0.1:1"}
	if _, err := d.DialContext(context.Background(), "udp", "a:1"); err == nil {
		t.Fatal("udp accepted")
	}
	if _, err := d.DialContext(context.Background(), "tcp", "noport"); err == nil {
		t.Fatal("address without port accepted")
	}
}
