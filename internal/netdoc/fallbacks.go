package netdoc

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Fallback is a fallback directory mirror (dir-spec 5.1): a relay that a
// client with no usable consensus may ask for one, in preference to the
// directory authorities. Clients reach it on its ORPort (a BEGIN_DIR
// stream over a one-hop circuit), so no DirPort is kept.
type Fallback struct {
	// Nickname is the relay's nickname as recorded by the built-in list;
	// "" for a FallbackDir line, which carries none. It is informational
	// only: the identity is Fingerprint.
	Nickname string
	// Fingerprint is the relay's RSA identity digest (its "r" line
	// identity), checked by the link handshake.
	Fingerprint [20]byte
	Addr        netip.AddrPort // IPv4 address and ORPort
	IPv6        netip.AddrPort // IPv6 address and ORPort; invalid (zero) if none
}

// String returns the fallback as a FallbackDir line without the leading
// keyword ("IPV4 orport=N id=HEX40 [ipv6=[ADDR]:PORT]"), parseable by
// ParseFallbackLine. The nickname is not part of that syntax and is left
// out.
func (f Fallback) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s orport=%d id=%X", f.Addr.Addr(), f.Addr.Port(), f.Fingerprint)
	if f.IPv6.IsValid() {
		fmt.Fprintf(&sb, " ipv6=%s", f.IPv6)
	}
	return sb.String()
}

const docFallback = "FallbackDir line"

// ParseFallbackLine parses one torrc FallbackDir line (tor(1),
// "FallbackDir"):
//
//	[FallbackDir] IPV4[:DIRPORT] orport=ORPORT id=FINGERPRINT [weight=NUM] [ipv6=[IPV6]:ORPORT]
//
// The options may come in any order around the address, as C tor
// accepts them. ORPORT is 1-65535; FINGERPRINT is the relay's RSA
// identity as 40 hex digits (either case) and must not be all zeros; the
// ipv6 option needs a bracketed IPv6 address and a non-zero port;
// neither address may be all zeros. The DirPort (optional, as in C tor's
// own fallback_dirs.inc entries since April 2021) is checked and
// dropped: fallbacks are reached on their ORPort. "weight=" and other
// unknown key=value options are ignored, as C tor does. Repeating
// orport, id or ipv6 is an error (C tor silently keeps one of them).
// Nickname is left empty.
//
// Errors match ErrMalformed.
func ParseFallbackLine(line string) (Fallback, error) {
	fields := bytes.Fields([]byte(line))
	if len(fields) > 0 && strings.EqualFold(string(fields[0]), "FallbackDir") {
		fields = fields[1:]
	}
	bad := func(format string, args ...any) (Fallback, error) {
		return Fallback{}, parseErr(docFallback, 0, format, args...)
	}
	if len(fields) == 0 {
		return bad("empty line: want IPV4[:DIRPORT] orport=N id=FINGERPRINT [ipv6=[ADDR]:PORT]")
	}
	var (
		f                         Fallback
		addr                      []byte
		orport                    uint16
		haveORPort, haveID, have6 bool
	)
	for _, t := range fields {
		k, v, isKV := bytes.Cut(t, []byte("="))
		if !isKV {
			if addr != nil {
				return bad("more than one address (%.60q and %.60q); options are key=value", addr, t)
			}
			addr = t
			continue
		}
		switch {
		case string(k) == "orport":
			if haveORPort {
				return bad("orport given twice")
			}
			p, ok := parsePort(v)
			if !ok || p == 0 {
				return bad("bad orport %.20q: want a port 1-65535", v)
			}
			orport, haveORPort = p, true
		case string(k) == "id":
			if haveID {
				return bad("id given twice")
			}
			id, ok := parseHex20(v)
			if !ok {
				return bad("bad id %.60q: want 40 hex digits", v)
			}
			if id == ([20]byte{}) {
				return bad("id is all zeros")
			}
			f.Fingerprint, haveID = id, true
		case strings.EqualFold(string(k), "ipv6"):
			if have6 {
				return bad("ipv6 given twice")
			}
			ap, ok := parseAddrPort(v)
			if !ok || !ap.Addr().Is6() || ap.Addr().IsUnspecified() {
				return bad("bad ipv6 %.60q: want [IPV6]:ORPORT", v)
			}
			f.IPv6, have6 = ap, true
		}
	}
	if addr == nil {
		return bad("missing IPV4[:DIRPORT] address")
	}
	host, dirport, hasPort := bytes.Cut(addr, []byte(":"))
	ip, ok := parseIPv4(host)
	if !ok || ip.IsUnspecified() {
		return bad("bad address %.60q: want a dotted-quad IPv4 address, optionally with :DIRPORT", addr)
	}
	if hasPort {
		if p, ok := parsePort(dirport); !ok || p == 0 {
			return bad("bad DirPort in %.60q: want a port 1-65535", addr)
		}
	}
	if !haveORPort {
		return bad("missing orport=")
	}
	if !haveID {
		return bad("missing id=")
	}
	f.Addr = netip.AddrPortFrom(ip, orport)
	return f, nil
}

// DefaultFallbacks returns the real Tor network's fallback directory
// mirrors compiled into this package: the entries of C tor's
// fallback_dirs.inc still present, unchanged and healthy in a 2026
// consensus (see fallbacks_gen.go and docs/fallbacks.md). The slice is
// freshly allocated on each call.
//
// A client should try a few fallbacks before a directory authority, and
// must not rely on any one of them being up: a relay listed here may
// have moved or left the network since.
func DefaultFallbacks() []Fallback {
	return slices.Clone(defaultFallbacks)
}
