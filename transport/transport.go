package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Dialer opens byte streams to relays. It is satisfied by *net.Dialer.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Direct dials plain TCP. Its zero value is ready to use.
type Direct struct {
	// Timeout bounds each dial when the context has no earlier deadline.
	// Zero means 30 seconds.
	Timeout time.Duration
}

// DialContext dials addr directly.
func (d Direct) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t := d.Timeout
	if t == 0 {
		t = 30 * time.Second
	}
	nd := net.Dialer{Timeout: t}
	return nd.DialContext(ctx, network, addr)
}

// OrDirect returns d, or Direct{} when d is nil.
func OrDirect(d Dialer) Dialer {
	if d == nil {
		return Direct{}
	}
	return d
}

// SOCKS5 dials through an upstream SOCKS5 proxy (RFC 1928), with optional
// username/password authentication (RFC 1929). Destinations are sent as
// given: IP literals as addresses, names as domain names, never resolved
// locally.
type SOCKS5 struct {
	// Addr is the proxy's host:port.
	Addr string
	// Username and Password, when Username is non-empty, are offered with
	// RFC 1929 authentication.
	Username, Password string
	// Forward reaches the proxy. Nil means Direct{}.
	Forward Dialer
}

// SOCKS5Error is a failure reply from the proxy.
type SOCKS5Error struct {
	Code byte // reply field (RFC 1928 section 6)
}

var socks5Replies = map[byte]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

func (e *SOCKS5Error) Error() string {
	if s, ok := socks5Replies[e.Code]; ok {
		return "socks5: " + s
	}
	return fmt.Sprintf("socks5: reply code %d", e.Code)
}

// DialContext connects to addr ("host:port") through the proxy. Only
// "tcp", "tcp4" and "tcp6" are supported.
func (s *SOCKS5) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("socks5: network %q not supported", network)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("socks5: bad address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("socks5: bad port in %q", addr)
	}
	if len(host) > 255 {
		return nil, errors.New("socks5: host name too long")
	}
	c, err := OrDirect(s.Forward).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("socks5: reaching proxy: %w", err)
	}
	// The handshake obeys the context: its end (deadline or cancellation)
	// interrupts blocked reads and writes. The conn gets no deadline of
	// its own: one could fire before the context's timer, and the caller
	// would see an i/o timeout instead of the context's error.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err = s.handshake(c, host, uint16(port))
	if !stop() || ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (s *SOCKS5) handshake(c net.Conn, host string, port uint16) error {
	methods := []byte{5, 1, 0}
	if s.Username != "" {
		methods = []byte{5, 2, 0, 2}
	}
	if _, err := c.Write(methods); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	var rep [2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fmt.Errorf("socks5: reading method: %w", err)
	}
	if rep[0] != 5 {
		return fmt.Errorf("socks5: proxy speaks version %d", rep[0])
	}
	switch rep[1] {
	case 0:
	case 2:
		if s.Username == "" || len(s.Username) > 255 || len(s.Password) > 255 {
			return errors.New("socks5: proxy wants a username/password we cannot send")
		}
		b := []byte{1, byte(len(s.Username))}
		b = append(b, s.Username...)
		b = append(b, byte(len(s.Password)))
		b = append(b, s.Password...)
		if _, err := c.Write(b); err != nil {
			return fmt.Errorf("socks5: %w", err)
		}
		if _, err := io.ReadFull(c, rep[:]); err != nil {
			return fmt.Errorf("socks5: reading auth reply: %w", err)
		}
		if rep[1] != 0 {
			return errors.New("socks5: proxy refused username/password")
		}
	default:
		return errors.New("socks5: proxy accepts none of our authentication methods")
	}

	req := []byte{5, 1, 0}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			req = append(req, 1)
			req = append(req, ip4...)
		} else {
			req = append(req, 4)
			req = append(req, ip.To16()...)
		}
	} else {
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	}
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("socks5: reading reply: %w", err)
	}
	if hdr[0] != 5 {
		return fmt.Errorf("socks5: reply version %d", hdr[0])
	}
	if hdr[1] != 0 {
		return &SOCKS5Error{Code: hdr[1]}
	}
	var skip int
	switch hdr[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return fmt.Errorf("socks5: reading reply: %w", err)
		}
		skip = int(l[0])
	default:
		return fmt.Errorf("socks5: reply address type %d", hdr[3])
	}
	buf := make([]byte, skip+2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("socks5: reading reply: %w", err)
	}
	return nil
}
