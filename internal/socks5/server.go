package socks5

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Command is a SOCKS command.
type Command byte

// Commands. Resolve and ResolvePTR are Tor extensions.
const (
	Connect    Command = 0x01
	Bind       Command = 0x02
	UDP        Command = 0x03
	Resolve    Command = 0xF0
	ResolvePTR Command = 0xF1
)

func (c Command) String() string {
	switch c {
	case Connect:
		return "CONNECT"
	case Bind:
		return "BIND"
	case UDP:
		return "UDP ASSOCIATE"
	case Resolve:
		return "RESOLVE"
	case ResolvePTR:
		return "RESOLVE_PTR"
	}
	return "command " + strconv.Itoa(int(c))
}

// SOCKS5 reply codes (RFC 1928 section 6).
const (
	ReplySucceeded          byte = 0x00
	ReplyGeneralFailure     byte = 0x01
	ReplyNotAllowed         byte = 0x02
	ReplyNetUnreachable     byte = 0x03
	ReplyHostUnreachable    byte = 0x04
	ReplyConnRefused        byte = 0x05
	ReplyTTLExpired         byte = 0x06
	ReplyCmdNotSupported    byte = 0x07
	ReplyAddrNotSupported   byte = 0x08
	socks4Granted           byte = 90
	socks4Rejected          byte = 91
	maxSOCKS4String              = 255
	defaultHandshakeTimeout      = 30 * time.Second
)

// Request is one SOCKS request.
type Request struct {
	Version int // 4 (including 4a) or 5
	Command Command
	// Host is a host name or an IP literal, exactly as the client sent it
	// (IPv6 without brackets). It is never resolved here.
	Host string
	Port uint16
	// Username and Password come from SOCKS5 username/password
	// authentication, or Username from the SOCKS4 user ID. Tor uses them
	// as a stream-isolation key.
	Username, Password string
}

// Addr returns Host and Port as "host:port".
func (r *Request) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))) }

// Handler carries out requests. Its errors may implement Replier to choose
// the SOCKS5 reply code; otherwise the reply is "general failure".
type Handler interface {
	// Connect opens a stream to req.Host:req.Port. The returned conn is
	// spliced with the client until either side closes.
	Connect(ctx context.Context, req *Request) (net.Conn, error)
	// Resolve looks req.Host up remotely.
	Resolve(ctx context.Context, req *Request) ([]netip.Addr, error)
	// ResolvePTR looks the address in req.Host up in reverse, remotely.
	ResolvePTR(ctx context.Context, req *Request) (string, error)
}

// Replier is implemented by Handler errors that map to a SOCKS5 reply code.
type Replier interface {
	SOCKSReply() byte
}

// Server serves SOCKS connections. Set its fields before the first Serve.
type Server struct {
	Handler Handler
	// HandshakeTimeout bounds reading the request. Zero means 30 seconds.
	HandshakeTimeout time.Duration
	// Logf, if set, receives one line per failed request. Destinations are
	// not logged.
	Logf func(format string, args ...any)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("socks5: server closed")

func (s *Server) init() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
	}
}

// Serve accepts connections on ln until it fails or Close is called. It
// closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.ServeConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops every Serve loop, closes every client connection, and waits
// for the connection goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	s.cancel()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// ServeConn handles one client connection and closes it.
func (s *Server) ServeConn(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.init()
	ctx := s.ctx
	s.mu.Unlock()
	to := s.HandshakeTimeout
	if to == 0 {
		to = defaultHandshakeTimeout
	}
	c.SetReadDeadline(time.Now().Add(to))
	req, err := ReadRequest(c)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			io.WriteString(c, httpAnswer)
		} else if req != nil {
			writeReply(c, req.Version, ReplyGeneralFailure, nil, "")
		}
		s.logf("socks: bad request: %v", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	switch req.Command {
	case Connect:
		s.connect(ctx, c, req)
	case Resolve:
		addrs, err := s.Handler.Resolve(ctx, req)
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			s.logf("socks: RESOLVE failed: %v", err)
			writeReply(c, req.Version, replyCode(err), nil, "")
			return
		}
		// SOCKS4 can carry only IPv4; prefer the first IPv4 answer there.
		a := addrs[0]
		if req.Version == 4 {
			a = netip.Addr{}
			for _, x := range addrs {
				if x.Is4() {
					a = x
					break
				}
			}
			if !a.IsValid() {
				writeReply(c, 4, ReplyHostUnreachable, nil, "")
				return
			}
		}
		writeReply(c, req.Version, ReplySucceeded, &a, "")
	case ResolvePTR:
		name, err := s.Handler.ResolvePTR(ctx, req)
		if err != nil {
			s.logf("socks: RESOLVE_PTR failed: %v", err)
			writeReply(c, req.Version, replyCode(err), nil, "")
			return
		}
		writeReply(c, req.Version, ReplySucceeded, nil, name)
	default:
		writeReply(c, req.Version, ReplyCmdNotSupported, nil, "")
	}
}

func replyCode(err error) byte {
	var r Replier
	if errors.As(err, &r) {
		return r.SOCKSReply()
	}
	return ReplyGeneralFailure
}

func (s *Server) connect(ctx context.Context, c net.Conn, req *Request) {
	up, err := s.Handler.Connect(ctx, req)
	if err != nil {
		s.logf("socks: CONNECT failed: %v", err)
		writeReply(c, req.Version, replyCode(err), nil, "")
		return
	}
	defer up.Close()
	zero := netip.IPv4Unspecified()
	if err := writeReply(c, req.Version, ReplySucceeded, &zero, ""); err != nil {
		return
	}
	splice(c, up)
}

// splice copies both ways until both directions are done, forwarding
// half-closes where the connections support them.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	// One side finished; give the other a moment to drain, then tear both
	// down so neither goroutine outlives the connection.
	t := time.NewTimer(30 * time.Second)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
		a.Close()
		b.Close()
		<-done
	}
}

type httpError struct{}

func (*httpError) Error() string { return "socks: an HTTP request arrived at a SOCKS port" }

const httpAnswer = "HTTP/1.0 501 Tor is not an HTTP Proxy\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"This is a SOCKS proxy, not an HTTP proxy. Configure your application to use it as SOCKS5 " +
	"(with remote DNS, e.g. socks5h:// or curl --socks5-hostname).\n"

// ReadRequest reads a SOCKS4/4a/5 request from r, answering the SOCKS5
// method negotiation and authentication on the way (so r must also be an
// io.Writer). It reads exactly the request's bytes, so data a client sends
// optimistically stays in r. On error the returned Request, if not nil,
// tells which version to answer with.
func ReadRequest(rw io.ReadWriter) (*Request, error) {
	var v [1]byte
	if _, err := io.ReadFull(rw, v[:]); err != nil {
		return nil, fmt.Errorf("socks: reading version: %w", err)
	}
	switch v[0] {
	case 4:
		return readSOCKS4(rw)
	case 5:
		return readSOCKS5(rw)
	case 'G', 'H', 'P', 'C', 'O', 'D':
		return nil, &httpError{}
	}
	return nil, fmt.Errorf("socks: unknown version %d", v[0])
}

func readSOCKS4(r io.Reader) (*Request, error) {
	req := &Request{Version: 4}
	var h [7]byte // command, port, IPv4
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return req, fmt.Errorf("socks4: reading request: %w", err)
	}
	req.Command = Command(h[0])
	req.Port = binary.BigEndian.Uint16(h[1:3])
	user, err := readCString(r)
	if err != nil {
		return req, fmt.Errorf("socks4: reading user id: %w", err)
	}
	req.Username = user
	ip := netip.AddrFrom4([4]byte(h[3:7]))
	if h[3] == 0 && h[4] == 0 && h[5] == 0 && h[6] != 0 {
		// SOCKS4a: 0.0.0.x means a host name follows.
		host, err := readCString(r)
		if err != nil {
			return req, fmt.Errorf("socks4a: reading host name: %w", err)
		}
		if host == "" {
			return req, errors.New("socks4a: empty host name")
		}
		req.Host = host
	} else {
		req.Host = ip.String()
	}
	if req.Command != Connect && req.Command != Resolve {
		return req, fmt.Errorf("socks4: %v not supported", req.Command)
	}
	return req, nil
}

func readCString(r io.Reader) (string, error) {
	var b [maxSOCKS4String + 1]byte
	for i := range b {
		if _, err := io.ReadFull(r, b[i:i+1]); err != nil {
			return "", err
		}
		if b[i] == 0 {
			return string(b[:i]), nil
		}
	}
	return "", errors.New("string too long")
}

func readSOCKS5(rw io.ReadWriter) (*Request, error) {
	var n [1]byte
	if _, err := io.ReadFull(rw, n[:]); err != nil {
		return nil, fmt.Errorf("socks5: reading methods: %w", err)
	}
	methods := make([]byte, n[0])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return nil, fmt.Errorf("socks5: reading methods: %w", err)
	}
	var noAuth, userPass bool
	for _, m := range methods {
		noAuth = noAuth || m == 0
		userPass = userPass || m == 2
	}
	req := &Request{Version: 5}
	switch {
	case userPass: // preferred: the credentials are an isolation key
		if _, err := rw.Write([]byte{5, 2}); err != nil {
			return nil, err
		}
		if err := readUserPass(rw, req); err != nil {
			return nil, err
		}
	case noAuth:
		if _, err := rw.Write([]byte{5, 0}); err != nil {
			return nil, err
		}
	default:
		rw.Write([]byte{5, 0xFF})
		return nil, errors.New("socks5: no acceptable authentication method")
	}
	var in io.Reader = rw
	var h [4]byte
	if _, err := io.ReadFull(in, h[:]); err != nil {
		return nil, fmt.Errorf("socks5: reading request: %w", err)
	}
	if h[0] == 1 && req.Username == "" {
		// A broken client sends username/password auth without having
		// negotiated it (socks-extensions 1.1): accept it. The bytes
		// already read may run into the request that follows.
		in = io.MultiReader(bytesReader(h[1:]), rw)
		if err := readUserPassBody(in, req); err != nil {
			return nil, err
		}
		if _, err := rw.Write([]byte{1, 0}); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(in, h[:]); err != nil {
			return nil, fmt.Errorf("socks5: reading request: %w", err)
		}
	}
	if h[0] != 5 {
		return req, fmt.Errorf("socks5: request version %d", h[0])
	}
	req.Command = Command(h[1])
	switch h[3] {
	case 1:
		var a [4]byte
		if _, err := io.ReadFull(in, a[:]); err != nil {
			return req, fmt.Errorf("socks5: reading address: %w", err)
		}
		req.Host = netip.AddrFrom4(a).String()
	case 4:
		var a [16]byte
		if _, err := io.ReadFull(in, a[:]); err != nil {
			return req, fmt.Errorf("socks5: reading address: %w", err)
		}
		req.Host = netip.AddrFrom16(a).String()
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(in, l[:]); err != nil {
			return req, fmt.Errorf("socks5: reading host name: %w", err)
		}
		host := make([]byte, l[0])
		if _, err := io.ReadFull(in, host); err != nil {
			return req, fmt.Errorf("socks5: reading host name: %w", err)
		}
		if len(host) == 0 {
			return req, errors.New("socks5: empty host name")
		}
		req.Host = string(host)
	default:
		return req, fmt.Errorf("socks5: address type %d", h[3])
	}
	var p [2]byte
	if _, err := io.ReadFull(in, p[:]); err != nil {
		return req, fmt.Errorf("socks5: reading port: %w", err)
	}
	req.Port = binary.BigEndian.Uint16(p[:])
	return req, nil
}

func readUserPass(rw io.ReadWriter, req *Request) error {
	var h [2]byte
	if _, err := io.ReadFull(rw, h[:]); err != nil {
		return fmt.Errorf("socks5: reading credentials: %w", err)
	}
	if h[0] != 1 {
		return fmt.Errorf("socks5: credentials version %d", h[0])
	}
	if err := readUserPassBody(io.MultiReader(bytesReader(h[1:]), rw), req); err != nil {
		return err
	}
	_, err := rw.Write([]byte{1, 0}) // every credential is accepted: they only isolate
	return err
}

// readUserPassBody reads an RFC 1929 message after its version byte.
func readUserPassBody(rd io.Reader, req *Request) error {
	var l [1]byte
	if _, err := io.ReadFull(rd, l[:]); err != nil {
		return fmt.Errorf("socks5: reading username: %w", err)
	}
	user := make([]byte, l[0])
	if _, err := io.ReadFull(rd, user); err != nil {
		return fmt.Errorf("socks5: reading username: %w", err)
	}
	if _, err := io.ReadFull(rd, l[:]); err != nil {
		return fmt.Errorf("socks5: reading password: %w", err)
	}
	pass := make([]byte, l[0])
	if _, err := io.ReadFull(rd, pass); err != nil {
		return fmt.Errorf("socks5: reading password: %w", err)
	}
	req.Username, req.Password = string(user), string(pass)
	return nil
}

type byteSliceReader struct{ b []byte }

func bytesReader(b []byte) *byteSliceReader { return &byteSliceReader{b} }

func (r *byteSliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// writeReply sends a reply. addr is the bound/resolved address, name a
// host name (RESOLVE_PTR); both may be empty.
func writeReply(w io.Writer, version int, code byte, addr *netip.Addr, name string) error {
	if version == 4 {
		b := []byte{0, socks4Rejected, 0, 0, 0, 0, 0, 0}
		if code == ReplySucceeded {
			b[1] = socks4Granted
			if addr != nil && addr.Is4() {
				a := addr.As4()
				copy(b[4:], a[:])
			}
		}
		_, err := w.Write(b)
		return err
	}
	b := []byte{5, code, 0}
	switch {
	case name != "" && len(name) <= 255:
		b = append(b, 3, byte(len(name)))
		b = append(b, name...)
	case addr != nil && addr.Is4():
		a := addr.As4()
		b = append(b, 1)
		b = append(b, a[:]...)
	case addr != nil && addr.Is6():
		a := addr.As16()
		b = append(b, 4)
		b = append(b, a[:]...)
	default:
		b = append(b, 1, 0, 0, 0, 0)
	}
	b = append(b, 0, 0)
	_, err := w.Write(b)
	return err
}
