package netdoc

import (
	"math/bits"
	"strconv"
	"strings"
)

// Proto names a subprotocol (tor-spec section 9, "proto"/"pr" entries).
type Proto uint8

// Known subprotocols. Others are kept by name (Protocols.Versions).
const (
	ProtoLink Proto = iota
	ProtoLinkAuth
	ProtoRelay
	ProtoDirCache
	ProtoHSDir
	ProtoHSIntro
	ProtoHSRend
	ProtoDesc
	ProtoMicrodesc
	ProtoCons
	ProtoPadding
	ProtoFlowCtrl
	ProtoConflux
	numProtos
)

var protoNames = [numProtos]string{
	"Link", "LinkAuth", "Relay", "DirCache", "HSDir", "HSIntro", "HSRend",
	"Desc", "Microdesc", "Cons", "Padding", "FlowCtrl", "Conflux",
}

func (p Proto) String() string {
	if p < numProtos {
		return protoNames[p]
	}
	return "Proto(" + strconv.Itoa(int(p)) + ")"
}

// MaxProtoVersion is the highest subprotocol version the format allows
// (proposal 318).
const MaxProtoVersion = 63

// Protocols is a parsed protocol-version list such as
// "Cons=1-2 Desc=1-4 Link=3-5": one 64-bit version mask per subprotocol.
// Values from a consensus are interned (relays with the same "pr" line
// share one *Protocols) and must not be modified.
type Protocols struct {
	known   [numProtos]uint64
	unknown []namedProto // sorted by name
}

type namedProto struct {
	name string
	mask uint64
}

// Supports reports whether version v of subprotocol p is listed.
func (p *Protocols) Supports(k Proto, v int) bool {
	if p == nil || k >= numProtos || v < 0 || v > MaxProtoVersion {
		return false
	}
	return p.known[k]&(1<<uint(v)) != 0
}

// Mask returns the version bit mask of a known subprotocol (bit v set
// when version v is listed).
func (p *Protocols) Mask(k Proto) uint64 {
	if p == nil || k >= numProtos {
		return 0
	}
	return p.known[k]
}

// Versions returns the version bit mask of any subprotocol by name,
// including ones this package does not know.
func (p *Protocols) Versions(name string) uint64 {
	if p == nil {
		return 0
	}
	for i, n := range protoNames {
		if n == name {
			return p.known[i]
		}
	}
	for _, u := range p.unknown {
		if u.name == name {
			return u.mask
		}
	}
	return 0
}

// Covers reports whether p lists every version that req lists (for
// "required-client-protocols" checks).
func (p *Protocols) Covers(req *Protocols) bool {
	if req == nil {
		return true
	}
	for i, m := range req.known {
		if m&^p.Mask(Proto(i)) != 0 {
			return false
		}
	}
	for _, u := range req.unknown {
		if u.mask&^p.Versions(u.name) != 0 {
			return false
		}
	}
	return true
}

// String returns the canonical form: entries sorted by name, ranges
// collapsed ("Cons=1-2 Link=3-5").
func (p *Protocols) String() string {
	if p == nil {
		return ""
	}
	var ents []namedProto
	for i, m := range p.known {
		if m != 0 {
			ents = append(ents, namedProto{protoNames[i], m})
		}
	}
	ents = append(ents, p.unknown...)
	// Small n: insertion sort keeps the dependency list short.
	for i := 1; i < len(ents); i++ {
		for j := i; j > 0 && ents[j].name < ents[j-1].name; j-- {
			ents[j], ents[j-1] = ents[j-1], ents[j]
		}
	}
	var sb strings.Builder
	for i, e := range ents {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(e.name)
		sb.WriteByte('=')
		writeMask(&sb, e.mask)
	}
	return sb.String()
}

func writeMask(sb *strings.Builder, m uint64) {
	first := true
	for m != 0 {
		lo := bits.TrailingZeros64(m)
		hi := lo
		for hi+1 <= MaxProtoVersion && m&(1<<uint(hi+1)) != 0 {
			hi++
		}
		if !first {
			sb.WriteByte(',')
		}
		first = false
		sb.WriteString(strconv.Itoa(lo))
		if hi > lo {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(hi))
		}
		if hi == 63 {
			break
		}
		m &^= (uint64(1)<<uint(hi+1) - 1)
	}
}

func protoByName(b []byte) (Proto, bool) {
	for i, n := range protoNames {
		if string(b) == n {
			return Proto(i), true
		}
	}
	return 0, false
}

// parseProtocols parses a space-separated list of Name=Versions entries.
func parseProtocols(args []byte) (*Protocols, string) {
	p := &Protocols{}
	var seenKnown uint32
	for len(args) > 0 {
		var ent []byte
		ent, args = nextArg(args)
		eq := indexByte(ent, '=')
		if eq <= 0 {
			return nil, "protocol entry without Name="
		}
		name := ent[:eq]
		for _, c := range name {
			if !kwChar[c] && c != '_' {
				return nil, "invalid protocol name"
			}
		}
		mask, ok := parseVersionRanges(ent[eq+1:])
		if !ok {
			return nil, "invalid protocol version list for " + strconv.Quote(string(name))
		}
		if k, ok := protoByName(name); ok {
			if seenKnown&(1<<k) != 0 {
				return nil, "duplicate protocol " + strconv.Quote(string(name))
			}
			seenKnown |= 1 << k
			p.known[k] = mask
			continue
		}
		for _, u := range p.unknown {
			if u.name == string(name) {
				return nil, "duplicate protocol " + strconv.Quote(string(name))
			}
		}
		p.unknown = append(p.unknown, namedProto{string(name), mask})
	}
	for i := 1; i < len(p.unknown); i++ {
		for j := i; j > 0 && p.unknown[j].name < p.unknown[j-1].name; j-- {
			p.unknown[j], p.unknown[j-1] = p.unknown[j-1], p.unknown[j]
		}
	}
	return p, ""
}

// parseVersionRanges parses "1-3,5" into a bit mask. An empty list is
// allowed and means no versions.
func parseVersionRanges(b []byte) (uint64, bool) {
	var m uint64
	for len(b) > 0 {
		var r []byte
		if j := indexByte(b, ','); j >= 0 {
			r, b = b[:j], b[j+1:]
			if len(b) == 0 {
				return 0, false // trailing comma
			}
		} else {
			r, b = b, nil
		}
		lo, hi := r, r
		if j := indexByte(r, '-'); j >= 0 {
			lo, hi = r[:j], r[j+1:]
		}
		l, ok1 := parseUint(lo, MaxProtoVersion)
		h, ok2 := parseUint(hi, MaxProtoVersion)
		if !ok1 || !ok2 || l > h {
			return 0, false
		}
		if h == 63 {
			m |= ^uint64(0) << l
		} else {
			m |= (uint64(1)<<(h+1) - 1) &^ (uint64(1)<<l - 1)
		}
	}
	return m, true
}
