package socks5

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

type refusal struct{}

func (refusal) Error() string    { return "exit policy refuses" }
func (refusal) SOCKSReply() byte { return ReplyNotAllowed }

// handler records requests and connects to an in-memory echo.
type handler struct {
	mu   sync.Mutex
	reqs []Request
	fail error
}

func (h *handler) record(r *Request) {
	h.mu.Lock()
	h.reqs = append(h.reqs, *r)
	h.mu.Unlock()
}

func (h *handler) last() Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reqs[len(h.reqs)-1]
}

func (h *handler) Connect(ctx context.Context, r *Request) (net.Conn, error) {
	h.record(r)
	if h.fail != nil {
		return nil, h.fail
	}
	a, b := net.Pipe()
	go func() { io.Copy(b, b); b.Close() }()
	return a, nil
}

func (h *handler) Resolve(ctx context.Context, r *Request) ([]netip.Addr, error) {
	h.record(r)
	return []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.7")}, h.fail
}

func (h *handler) ResolvePTR(ctx context.Context, r *Request) (string, error) {
	h.record(r)
	return "host.example", h.fail
}

func start(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func TestSOCKS5ConnectHostnameWithOptimisticData(t *testing.T) {
	h := &handler{}
	c := dial(t, start(t, h))
	// Greeting, request and early data in one write: nothing may be lost.
	msg := []byte{5, 1, 0, 5, 1, 0, 3, 11}
	msg = append(msg, "example.com"...)
	msg = append(msg, 0, 80)
	msg = append(msg, "GET / HTTP/1.0\r\n\r\n"...)
	c.Write(msg)
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{5, 0}) {
		t.Fatalf("method reply %x", got)
	}
	if got := readN(t, c, 10); got[1] != ReplySucceeded {
		t.Fatalf("reply %x", got)
	}
	if got := readN(t, c, 18); string(got) != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("echo %q", got)
	}
	r := h.last()
	if r.Host != "example.com" || r.Port != 80 || r.Command != Connect || r.Version != 5 {
		t.Fatalf("request %+v", r)
	}
}

func TestSOCKS5AuthIsIsolationKey(t *testing.T) {
	h := &handler{}
	c := dial(t, start(t, h))
	c.Write([]byte{5, 2, 0, 2})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{5, 2}) {
		t.Fatalf("server did not choose username/password: %x", got)
	}
	c.Write(append(append([]byte{1, 3}, "bob"...), append([]byte{2}, "pw"...)...))
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{1, 0}) {
		t.Fatalf("auth reply %x", got)
	}
	c.Write([]byte{5, 1, 0, 1, 10, 1, 2, 3, 1, 187})
	readN(t, c, 10)
	r := h.last()
	if r.Username != "bob" || r.Password != "pw" || r.Host != "10.1.2.3" || r.Port != 443 {
		t.Fatalf("request %+v", r)
	}
}

func TestSOCKS5BrokenClientAuthWithoutNegotiation(t *testing.T) {
	h := &handler{}
	c := dial(t, start(t, h))
	c.Write([]byte{5, 1, 0})
	readN(t, c, 2)
	// Empty username and password sent although no-auth was chosen, then
	// the request straight after.
	c.Write([]byte{1, 0, 0, 5, 1, 0, 3, 1, 'x', 0, 22})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{1, 0}) {
		t.Fatalf("auth reply %x", got)
	}
	if got := readN(t, c, 10); got[1] != 0 {
		t.Fatalf("reply %x", got)
	}
	if r := h.last(); r.Host != "x" || r.Port != 22 {
		t.Fatalf("request %+v", r)
	}
}

func TestSOCKS4And4a(t *testing.T) {
	h := &handler{}
	addr := start(t, h)
	c := dial(t, addr)
	c.Write(append([]byte{4, 1, 0, 80, 192, 0, 2, 1}, "alice\x00"...))
	if got := readN(t, c, 8); got[1] != 90 {
		t.Fatalf("socks4 reply %x", got)
	}
	if r := h.last(); r.Host != "192.0.2.1" || r.Username != "alice" || r.Version != 4 {
		t.Fatalf("request %+v", r)
	}
	c2 := dial(t, addr)
	c2.Write(append([]byte{4, 1, 1, 187, 0, 0, 0, 1}, "\x00www.example.org\x00"...))
	if got := readN(t, c2, 8); got[1] != 90 {
		t.Fatalf("socks4a reply %x", got)
	}
	if r := h.last(); r.Host != "www.example.org" || r.Port != 443 {
		t.Fatalf("request %+v", r)
	}
}

func TestResolveExtensions(t *testing.T) {
	h := &handler{}
	addr := start(t, h)
	c := dial(t, addr)
	c.Write(append([]byte{5, 1, 0, 5, 0xF0, 0, 3, 8}, "tor.test\x00\x00"...))
	readN(t, c, 2)
	got := readN(t, c, 4+16+2)
	if got[1] != 0 || got[3] != 4 || !bytes.Equal(got[4:20], netip.MustParseAddr("2001:db8::1").AsSlice()) {
		t.Fatalf("RESOLVE reply %x", got)
	}
	// SOCKS4a RESOLVE returns the IPv4 answer.
	c4 := dial(t, addr)
	c4.Write(append([]byte{4, 0xF0, 0, 0, 0, 0, 0, 1}, "\x00tor.test\x00"...))
	if got := readN(t, c4, 8); got[1] != 90 || !bytes.Equal(got[4:], []byte{192, 0, 2, 7}) {
		t.Fatalf("SOCKS4 RESOLVE reply %x", got)
	}
	cp := dial(t, addr)
	cp.Write([]byte{5, 1, 0, 5, 0xF1, 0, 1, 192, 0, 2, 7, 0, 0})
	readN(t, cp, 2)
	got = readN(t, cp, 5+len("host.example")+2)
	if got[3] != 3 || string(got[5:5+12]) != "host.example" {
		t.Fatalf("RESOLVE_PTR reply %x", got)
	}
}

func TestRefusalsAndErrors(t *testing.T) {
	h := &handler{fail: refusal{}}
	addr := start(t, h)
	c := dial(t, addr)
	c.Write([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	readN(t, c, 2)
	if got := readN(t, c, 10); got[1] != ReplyNotAllowed {
		t.Fatalf("typed error mapped to %d", got[1])
	}
	h.fail = errors.New("plain")
	c = dial(t, addr)
	c.Write([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	readN(t, c, 2)
	if got := readN(t, c, 10); got[1] != ReplyGeneralFailure {
		t.Fatalf("plain error mapped to %d", got[1])
	}
	c = dial(t, addr)
	c.Write([]byte{5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80}) // BIND
	readN(t, c, 2)
	if got := readN(t, c, 10); got[1] != ReplyCmdNotSupported {
		t.Fatalf("BIND answered %d", got[1])
	}
	c = dial(t, addr)
	c.Write([]byte{5, 1, 0x80}) // only an unknown method
	if got := readN(t, c, 2); got[1] != 0xFF {
		t.Fatalf("no acceptable method answered %x", got)
	}
	c = dial(t, addr)
	c.Write([]byte("GET http://example.com/ HTTP/1.1\r\n\r\n"))
	page, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(page), "HTTP/1.0 501") {
		t.Fatalf("HTTP request answered %q", page)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	h := &handler{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	c.Write([]byte{5, 1, 0, 5, 1, 0, 3, 1, 'x', 0, 1})
	readN(t, c, 12)
	s.Close() // must return although the spliced stream is open
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client connection still open after Close")
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 1, 'x', 0, 80})
	f.Add([]byte{5, 1, 2, 1, 1, 'a', 1, 'b', 5, 0xF0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add(append([]byte{4, 1, 0, 80, 0, 0, 0, 1}, "u\x00h\x00"...))
	f.Add([]byte{5, 1, 0, 1, 0, 0, 5, 1, 0, 1, 1, 2, 3, 4, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard}
		req, err := ReadRequest(rw)
		if err == nil && (req == nil || req.Host == "") {
			t.Fatalf("accepted a request without a host: %+v", req)
		}
	})
}
