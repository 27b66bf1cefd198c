package cell

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Netinfo is the body of a NETINFO cell (tor-spec 4.5).
type Netinfo struct {
	// Time is the sender's clock in seconds since the Unix epoch; clients
	// send 0.
	Time uint32
	// OtherAddr is the address the sender sees for its peer. The zero
	// Addr is sent as 0.0.0.0; an entry of unknown type or wrong length
	// parses as the zero Addr.
	OtherAddr netip.Addr
	// MyAddrs are the sender's own addresses. Entries of unknown type or
	// wrong length are skipped when parsing.
	MyAddrs []netip.Addr
}

const (
	addrTypeIPv4 = 4
	addrTypeIPv6 = 6
)

func appendNetinfoAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4() || a.Is4In6():
		v := a.Unmap().As4()
		b = append(b, addrTypeIPv4, 4)
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		b = append(b, addrTypeIPv6, 16)
		return append(b, v[:]...)
	default:
		return append(b, addrTypeIPv4, 4, 0, 0, 0, 0)
	}
}

// parseNetinfoAddr returns the address (invalid if its type or length is
// unknown) and the rest of p.
func parseNetinfoAddr(p []byte) (netip.Addr, []byte, error) {
	if len(p) < 2 {
		return netip.Addr{}, nil, ErrTruncated
	}
	t, l := p[0], int(p[1])
	if len(p) < 2+l {
		return netip.Addr{}, nil, ErrTruncated
	}
	v := p[2 : 2+l]
	rest := p[2+l:]
	switch {
	case t == addrTypeIPv4 && l == 4:
		return netip.AddrFrom4([4]byte(v)), rest, nil
	case t == addrTypeIPv6 && l == 16:
		return netip.AddrFrom16([16]byte(v)), rest, nil
	}
	return netip.Addr{}, rest, nil
}

// Append encodes n.
func (n Netinfo) Append(b []byte) ([]byte, error) {
	if len(n.MyAddrs) > 255 {
		return b, errors.New("cell: too many NETINFO addresses")
	}
	b = binary.BigEndian.AppendUint32(b, n.Time)
	b = appendNetinfoAddr(b, n.OtherAddr)
	b = append(b, byte(len(n.MyAddrs)))
	for _, a := range n.MyAddrs {
		b = appendNetinfoAddr(b, a)
	}
	return b, nil
}

// ParseNetinfo parses a NETINFO payload, ignoring trailing bytes.
func ParseNetinfo(p []byte) (Netinfo, error) {
	var n Netinfo
	if len(p) < 4 {
		return n, ErrTruncated
	}
	n.Time = binary.BigEndian.Uint32(p)
	a, rest, err := parseNetinfoAddr(p[4:])
	if err != nil {
		return n, fmt.Errorf("cell: NETINFO other address: %w", err)
	}
	n.OtherAddr = a
	if len(rest) < 1 {
		return n, fmt.Errorf("cell: NETINFO address count: %w", ErrTruncated)
	}
	cnt := int(rest[0])
	rest = rest[1:]
	for i := 0; i < cnt; i++ {
		a, rest, err = parseNetinfoAddr(rest)
		if err != nil {
			return n, fmt.Errorf("cell: NETINFO address %d: %w", i, err)
		}
		if a.IsValid() {
			n.MyAddrs = append(n.MyAddrs, a)
		}
	}
	return n, nil
}
