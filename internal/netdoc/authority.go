package netdoc

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// Authority is a directory authority as configured by a torrc
// DirAuthority line.
type Authority struct {
	Nickname string
	// V3Ident is the v3 identity (SHA-1 of the authority identity key,
	// the fingerprint of its key certificates). Zero for authorities that
	// do not sign consensuses (bridge authorities); such entries never
	// count towards signature thresholds.
	V3Ident [20]byte
	// Fingerprint is the RSA identity digest of the authority's relay
	// (its "r" line identity).
	Fingerprint [20]byte
	Addr        netip.AddrPort // IPv4 address and DirPort
	ORPort      uint16
	IPv6        netip.AddrPort // IPv6 ORPort address; invalid (zero) if none
	Bridge      bool           // "bridge" flag: a bridge authority
}

// ORAddr returns the IPv4 ORPort address.
func (a Authority) ORAddr() netip.AddrPort { return netip.AddrPortFrom(a.Addr.Addr(), a.ORPort) }

// String returns the authority as a DirAuthority line (without the
// leading keyword), parseable by ParseDirAuthority.
func (a Authority) String() string {
	var sb strings.Builder
	sb.WriteString(a.Nickname)
	fmt.Fprintf(&sb, " orport=%d", a.ORPort)
	if a.Bridge {
		sb.WriteString(" bridge")
	}
	if a.V3Ident != ([20]byte{}) {
		fmt.Fprintf(&sb, " v3ident=%X", a.V3Ident)
	}
	if a.IPv6.IsValid() {
		fmt.Fprintf(&sb, " ipv6=%s", a.IPv6)
	}
	fmt.Fprintf(&sb, " %s %X", a.Addr, a.Fingerprint)
	return sb.String()
}

const docAuthority = "DirAuthority line"

// ParseDirAuthority parses one torrc-style authority line:
//
//	[DirAuthority] NICKNAME [FLAGS...] IPV4:DIRPORT FINGERPRINT
//
// FLAGS are "orport=N" (required), "v3ident=HEX40", "ipv6=[ADDR]:PORT"
// and "bridge"; other flags ("no-v2", "hs", "v3", "weight=N", ...) are
// ignored as C tor does. The fingerprint may be written in groups of
// four hex digits separated by spaces.
func ParseDirAuthority(line string) (Authority, error) {
	b := bytes.TrimSpace([]byte(line))
	fields := bytes.Fields(b)
	if len(fields) > 0 && strings.EqualFold(string(fields[0]), "DirAuthority") {
		fields = fields[1:]
	}
	bad := func(format string, args ...any) (Authority, error) {
		return Authority{}, parseErr(docAuthority, 0, format, args...)
	}
	if len(fields) < 3 {
		return bad("want NICKNAME [FLAGS] ADDRESS:DIRPORT FINGERPRINT")
	}
	var a Authority
	if !validNickname(fields[0]) {
		return bad("bad nickname %.40q", fields[0])
	}
	a.Nickname = string(fields[0])
	i := 1
	haveORPort := false
	for ; i < len(fields); i++ {
		f := fields[i]
		if len(f) > 0 && f[0] >= '0' && f[0] <= '9' {
			break // the address
		}
		k, v, hasV := bytes.Cut(f, []byte("="))
		switch {
		case string(k) == "orport" && hasV:
			p, ok := parsePort(v)
			if !ok || p == 0 {
				return bad("bad orport %.20q", v)
			}
			a.ORPort, haveORPort = p, true
		case string(k) == "v3ident" && hasV:
			id, ok := parseHex20(v)
			if !ok {
				return bad("bad v3ident %.60q", v)
			}
			a.V3Ident = id
		case string(k) == "ipv6" && hasV:
			ap, ok := parseAddrPort(v)
			if !ok || !ap.Addr().Is6() {
				return bad("bad ipv6 address %.60q", v)
			}
			a.IPv6 = ap
		case string(f) == "bridge":
			a.Bridge = true
		}
	}
	if i >= len(fields) {
		return bad("missing ADDRESS:DIRPORT")
	}
	ap, ok := parseAddrPort(fields[i])
	if !ok || !ap.Addr().Is4() {
		return bad("bad IPv4 address:dirport %.60q", fields[i])
	}
	a.Addr = ap
	if !haveORPort {
		return bad("missing orport=")
	}
	fp := bytes.Join(fields[i+1:], nil)
	id, ok := parseHex20(fp)
	if !ok {
		return bad("fingerprint must be 40 hex digits, got %.60q", fp)
	}
	a.Fingerprint = id
	return a, nil
}

// ParseAuthorityFile parses DirAuthority lines, one per line. Blank lines
// and comments (from '#' to the end of the line) are skipped; an error
// names the line.
func ParseAuthorityFile(text string) ([]Authority, error) {
	var out []Authority
	for n, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		a, err := ParseDirAuthority(line)
		if err != nil {
			if pe, ok := err.(*ParseError); ok {
				pe.Line = n + 1
			}
			return nil, err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, parseErr(docAuthority, 0, "no DirAuthority lines")
	}
	return out, nil
}

// defaultAuthorityLines is the real Tor network's directory authorities as
// of 2026, in DirAuthority syntax. v3 identities, addresses and ports
// match the dir-source lines of the 2026-06-27 consensus; the relay
// fingerprints match C tor's src/app/config/auth_dirs.inc (after the 2023-2025
// key rotations of moria1, tor26 and faravahar) and the 2026 consensus's
// Authority-flagged entries; IPv6 ORPorts are those entries' "a" lines.
// The bridge authority Serge is left out: it signs no consensus.
var defaultAuthorityLines = []string{
	"moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 128.31.0.39:9231 1A25 C635 8DB9 1342 AA51 720A 5038 B727 4273 2498",
	"tor26 orport=443 v3ident=2F3DF9CA0E5D36F2685A2DA67184EB8DCB8CBA8C ipv6=[2a02:16a8:662:2203::1]:443 217.196.147.77:80 FAA4 BCA4 A6AC 0FB4 CA2F 8AD5 A11D 9E12 2BA8 94F6",
	"dizum orport=443 v3ident=E8A9C45EDE6D711294FADF8E7951F4DE6CA56B58 ipv6=[2a09:61c0::1337]:443 45.66.35.11:80 7EA6 EAD6 FD83 083C 538F 4403 8BBF A077 587D D755",
	"gabelmoo orport=443 v3ident=ED03BB616EB2F60BEC80151114BB25CEF515B226 ipv6=[2001:638:a000:4140::ffff:189]:443 131.188.40.189:80 F204 4413 DAC2 E02E 3D6B CF47 35A1 9BCA 1DE9 7281",
	"dannenberg orport=443 v3ident=0232AF901C31A04EE9848595AF9BB7620D4C5B2E ipv6=[2001:678:558:1000::244]:443 193.23.244.244:80 7BE6 83E6 5D48 1413 21C5 ED92 F075 C553 64AC 7123",
	"maatuska orport=80 v3ident=49015F787433103580E3B66A1707A00E60F2D15B ipv6=[2001:67c:289c::9]:80 171.25.193.9:443 BD6A 8292 55CB 08E6 6FBE 7D37 4836 3586 E46B 3810",
	"longclaw orport=443 v3ident=23D15D965BC35114467363C165C4F724B64B4F66 199.58.81.140:80 74A9 1064 6BCE EFBC D2E8 74FC 1DC9 9743 0F96 8145",
	"bastet orport=443 v3ident=27102BC123E7AF1D4741AE047E160C91ADC76B21 ipv6=[2620:13:4000:6000::1000:118]:443 204.13.164.118:80 24E2 F139 121D 4394 C54B 5BCC 368B 3B41 1857 C413",
	"faravahar orport=443 v3ident=70849B868D606BAECFB6128C5E3D782029AA394F ipv6=[2001:470:164:2::2]:443 216.218.219.41:80 E3E4 2D35 F801 C9D5 AB23 584E 0025 D56F E2B3 3396",
}

// DefaultAuthorities returns the real Tor network's nine v3 directory
// authorities (2026). The slice is freshly allocated on each call.
func DefaultAuthorities() []Authority {
	out := make([]Authority, len(defaultAuthorityLines))
	for i, l := range defaultAuthorityLines {
		a, err := ParseDirAuthority(l)
		if err != nil {
			panic("BUG: netdoc: bad built-in authority line: " + err.Error())
		}
		out[i] = a
	}
	return out
}
