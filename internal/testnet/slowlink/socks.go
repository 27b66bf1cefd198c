package slowlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// SOCKS5 reply codes (RFC 1928 section 6).
const (
	repOK           = 0x00
	repFailure      = 0x01
	repNotAllowed   = 0x02
	repRefused      = 0x05
	repCmdUnsupp    = 0x07
	repAddrUnsupp   = 0x08
	handshakeWindow = 30 * time.Second
)

// errRefused is a request refused with a reply already sent.
var errRefused = errors.New("slowlink: request refused")

// loopbackDest parses a SOCKS5 destination: only IPv4 addresses in
// 127.0.0.0/8 are allowed, as an IPv4 address (atyp 1) or as a dotted-quad
// name (atyp 3). It returns the reply code to refuse with otherwise.
func loopbackDest(atyp byte, addr []byte) (netip.Addr, byte) {
	var ip netip.Addr
	switch atyp {
	case 1:
		ip = netip.AddrFrom4([4]byte(addr))
	case 3:
		a, err := netip.ParseAddr(string(addr))
		if err != nil || !a.Is4() {
			return netip.Addr{}, repNotAllowed
		}
		ip = a
	case 4:
		return netip.Addr{}, repNotAllowed
	default:
		return netip.Addr{}, repAddrUnsupp
	}
	if !ip.IsLoopback() {
		return netip.Addr{}, repNotAllowed
	}
	return ip, repOK
}

// handshake runs the server side of no-auth SOCKS5 CONNECT and returns
// the destination. Refusals are answered before errRefused is returned.
func handshake(c net.Conn) (netip.AddrPort, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return netip.AddrPort{}, err
	}
	if hdr[0] != 5 {
		return netip.AddrPort{}, fmt.Errorf("slowlink: SOCKS version %d", hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return netip.AddrPort{}, err
	}
	noAuth := false
	for _, m := range methods {
		noAuth = noAuth || m == 0
	}
	if !noAuth {
		c.Write([]byte{5, 0xff})
		return netip.AddrPort{}, errRefused
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return netip.AddrPort{}, err
	}
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return netip.AddrPort{}, err
	}
	if req[0] != 5 {
		return netip.AddrPort{}, fmt.Errorf("slowlink: SOCKS request version %d", req[0])
	}
	var addr []byte
	switch req[3] {
	case 1:
		addr = make([]byte, 4)
	case 4:
		addr = make([]byte, 16)
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return netip.AddrPort{}, err
		}
		addr = make([]byte, l[0])
	default:
		reply(c, repAddrUnsupp, netip.AddrPort{})
		return netip.AddrPort{}, errRefused
	}
	var port [2]byte
	if _, err := io.ReadFull(c, addr); err != nil {
		return netip.AddrPort{}, err
	}
	if _, err := io.ReadFull(c, port[:]); err != nil {
		return netip.AddrPort{}, err
	}
	if req[1] != 1 {
		reply(c, repCmdUnsupp, netip.AddrPort{})
		return netip.AddrPort{}, errRefused
	}
	ip, code := loopbackDest(req[3], addr)
	if code != repOK {
		reply(c, code, netip.AddrPort{})
		return netip.AddrPort{}, errRefused
	}
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(port[:])), nil
}

// reply sends a SOCKS5 reply with an IPv4 bound address.
func reply(c net.Conn, code byte, bound netip.AddrPort) error {
	b := []byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0}
	if bound.Addr().Is4() {
		a := bound.Addr().As4()
		copy(b[4:8], a[:])
		binary.BigEndian.PutUint16(b[8:], bound.Port())
	}
	_, err := c.Write(b)
	return err
}

// handle serves one client connection.
func (p *Proxy) handle(client net.Conn) {
	client.SetDeadline(p.clk.Now().Add(handshakeWindow))
	dest, err := handshake(client)
	if err != nil {
		if errors.Is(err, errRefused) {
			p.stats.refused.Add(1)
			p.logf("refused a request from %s", client.RemoteAddr())
		}
		client.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	dial := p.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	target, err := dial(ctx, "tcp4", dest.String())
	cancel()
	if err != nil {
		p.stats.failed.Add(1)
		code := byte(repFailure)
		if errors.Is(err, syscall.ECONNREFUSED) {
			code = repRefused
		}
		reply(client, code, netip.AddrPort{})
		client.Close()
		p.logf("%s: %v", dest, err)
		return
	}
	var bound netip.AddrPort
	if ta, ok := target.LocalAddr().(*net.TCPAddr); ok {
		bound = ta.AddrPort()
		bound = netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())
	}
	if err := reply(client, repOK, bound); err != nil {
		client.Close()
		target.Close()
		return
	}
	client.SetDeadline(time.Time{})
	c := newConn(p, client, target)
	if !p.register(c) {
		c.abort()
		return
	}
	p.logf("%s -> %s open", client.RemoteAddr(), dest)
	c.run()
	p.unregister(c)
	p.logf("%s -> %s closed", client.RemoteAddr(), dest)
}

func (p *Proxy) register(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	p.stats.active.Add(1)
	return true
}

func (p *Proxy) unregister(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	p.stats.active.Add(-1)
}
