package netdoc

import (
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"time"
)

// Small allocation-free parsers for the argument types of directory
// documents. Each returns ok=false on any deviation; callers turn that
// into a ParseError with the line number.

// parseUint parses a decimal number without sign or leading '+' that
// fits in max. Leading zeros are accepted (Tor writes none, but accepts
// them).
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt32 parses an optionally negative decimal Int32 (dir-spec
// "params").
func parseInt32(b []byte) (int32, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	limit := uint64(1<<31 - 1)
	if neg {
		limit = 1 << 31
	}
	v, ok := parseUint(b, limit)
	if !ok {
		return 0, false
	}
	if neg {
		return int32(-int64(v)), true
	}
	return int32(v), true
}

func parsePort(b []byte) (uint16, bool) {
	v, ok := parseUint(b, 65535)
	return uint16(v), ok
}

// twoDigits parses exactly two ASCII digits.
func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseTime parses "YYYY-MM-DD" and "HH:MM:SS" (two arguments) as UTC.
func parseTime(date, clock []byte) (time.Time, bool) {
	if len(date) != 10 || len(clock) != 8 || date[4] != '-' || date[7] != '-' || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	y, ok1 := digits(date[0:4])
	mo, ok2 := digits(date[5:7])
	d, ok3 := digits(date[8:10])
	h, ok4 := digits(clock[0:2])
	mi, ok5 := digits(clock[3:5])
	s, ok6 := digits(clock[6:8])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 60 {
		return time.Time{}, false
	}
	if s == 60 { // leap second, as Tor's parser allows; normalise
		s = 59
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC), true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// timeArgs parses the two time arguments at the start of args.
func timeArgs(args []byte) (t time.Time, rest []byte, ok bool) {
	var a [2][]byte
	rest, ok = argN(args, a[:])
	if !ok {
		return time.Time{}, rest, false
	}
	t, ok = parseTime(a[0], a[1])
	return t, rest, ok
}

// parseHex20 decodes exactly 40 hex digits (either case).
func parseHex20(b []byte) (out [20]byte, ok bool) {
	if len(b) != 40 {
		return out, false
	}
	_, err := hex.Decode(out[:], b)
	return out, err == nil
}

// parseB64Fixed decodes base64 of exactly len(dst) bytes, with or without
// '=' padding. Non-zero trailing bits are tolerated, as by Tor.
func parseB64Fixed(dst []byte, b []byte) bool {
	for len(b) > 0 && b[len(b)-1] == '=' {
		b = b[:len(b)-1]
	}
	if base64.RawStdEncoding.DecodedLen(len(b)) != len(dst) || len(b) != base64.RawStdEncoding.EncodedLen(len(dst)) {
		return false
	}
	n, err := base64.RawStdEncoding.Decode(dst, b)
	return err == nil && n == len(dst)
}

// validNickname: 1-19 characters [A-Za-z0-9].
func validNickname(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseIPv4 parses a dotted quad without leading zeros.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	i := 0
	for k := 0; k < 4; k++ {
		if k > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start || v > 255 || (i-start > 1 && b[start] == '0') {
			return netip.Addr{}, false
		}
		a[k] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// parseIPv6 parses an IPv6 address in RFC 4291 text form ("::"
// compression, optional trailing dotted quad), without zone. It does not
// allocate.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var a [16]byte
	ellipsis := -1 // byte index in a where "::" was
	i, n := 0, 0   // i: position in b; n: bytes of a filled
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		i = 2
		if i == len(b) {
			return netip.AddrFrom16(a), true
		}
	}
	for i < len(b) {
		// A group of 1-4 hex digits, or a dotted quad in the last 32 bits.
		start, v := i, 0
		for i < len(b) && i-start < 5 {
			c := b[i]
			var d int
			switch {
			case c >= '0' && c <= '9':
				d = int(c - '0')
			case c >= 'a' && c <= 'f':
				d = int(c-'a') + 10
			case c >= 'A' && c <= 'F':
				d = int(c-'A') + 10
			default:
				d = -1
			}
			if d < 0 {
				break
			}
			v = v<<4 | d
			i++
		}
		if i < len(b) && b[i] == '.' {
			if n > 12 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b[start:])
			if !ok {
				return netip.Addr{}, false
			}
			q := v4.As4()
			copy(a[n:], q[:])
			n += 4
			break // the dotted quad consumed the rest of b
		}
		if i == start || i-start > 4 || n >= 16 {
			return netip.Addr{}, false
		}
		a[n], a[n+1] = byte(v>>8), byte(v)
		n += 2
		if i == len(b) {
			break
		}
		if b[i] != ':' {
			return netip.Addr{}, false
		}
		i++
		if i < len(b) && b[i] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = n
			i++
			if i == len(b) {
				break
			}
		} else if i == len(b) {
			return netip.Addr{}, false // trailing single ':'
		}
	}
	if ellipsis < 0 {
		if n != 16 {
			return netip.Addr{}, false
		}
	} else {
		if n == 16 {
			return netip.Addr{}, false // "::" must stand for at least one group
		}
		gap := 16 - n
		copy(a[ellipsis+gap:], a[ellipsis:n])
		for j := ellipsis; j < ellipsis+gap; j++ {
			a[j] = 0
		}
	}
	return netip.AddrFrom16(a), true
}

// parseAddrPort parses "IPv4:port" or "[IPv6]:port". Port 0 is rejected.
func parseAddrPort(b []byte) (netip.AddrPort, bool) {
	var addr netip.Addr
	var ok bool
	var portb []byte
	if len(b) > 0 && b[0] == '[' {
		j := indexByte(b, ']')
		if j < 0 || j+1 >= len(b) || b[j+1] != ':' {
			return netip.AddrPort{}, false
		}
		addr, ok = parseIPv6(b[1:j])
		portb = b[j+2:]
	} else {
		j := indexByte(b, ':')
		if j < 0 {
			return netip.AddrPort{}, false
		}
		addr, ok = parseIPv4(b[:j])
		portb = b[j+1:]
	}
	if !ok {
		return netip.AddrPort{}, false
	}
	port, ok := parsePort(portb)
	if !ok || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, port), true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
