package netdoc

import (
	"strconv"
	"strings"
)

// PortPolicy is an exit-policy summary ("p"/"p6" lines, dir-spec 3.8.2):
// the listed ports are accepted (Accept) or rejected (!Accept) for exit
// to most addresses. Values from a batch of microdescriptors are
// interned; do not modify them.
type PortPolicy struct {
	Accept bool
	Ranges []PortRange // ascending, non-overlapping
}

// PortRange is an inclusive port range.
type PortRange struct{ Lo, Hi uint16 }

// rejectAll is the policy of a microdescriptor without a "p" line:
// "reject 1-65535".
var rejectAll = &PortPolicy{Ranges: []PortRange{{1, 65535}}}

// RejectAllPolicy returns the shared reject-everything policy (the
// meaning of an absent "p" or "p6" line). Do not modify it.
func RejectAllPolicy() *PortPolicy { return rejectAll }

// Allows reports whether exit to port is allowed by the summary.
func (p *PortPolicy) Allows(port uint16) bool {
	lo, hi := 0, len(p.Ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.Ranges[m].Hi < port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	in := lo < len(p.Ranges) && p.Ranges[lo].Lo <= port
	return in == p.Accept
}

// AllowsAny reports whether the policy allows at least one port.
func (p *PortPolicy) AllowsAny() bool {
	if p.Accept {
		return len(p.Ranges) > 0
	}
	next := 1 // lowest port not yet known to be rejected
	for _, r := range p.Ranges {
		if int(r.Lo) > next {
			return true
		}
		next = int(r.Hi) + 1
	}
	return next <= 65535
}

// String returns the summary in its line form, "accept 80,443".
func (p *PortPolicy) String() string {
	var sb strings.Builder
	if p.Accept {
		sb.WriteString("accept ")
	} else {
		sb.WriteString("reject ")
	}
	if len(p.Ranges) == 0 {
		return sb.String() + "(none)"
	}
	for i, r := range p.Ranges {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(int(r.Lo)))
		if r.Hi != r.Lo {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(int(r.Hi)))
		}
	}
	return sb.String()
}

// parsePortPolicy parses "accept|reject PortList".
func parsePortPolicy(args []byte) (*PortPolicy, string) {
	verb, rest := nextArg(args)
	list, _ := nextArg(rest)
	p := &PortPolicy{}
	switch string(verb) {
	case "accept":
		p.Accept = true
	case "reject":
	default:
		return nil, "policy must start with accept or reject"
	}
	if len(list) == 0 {
		return nil, "policy without ports"
	}
	n := 1
	for _, c := range list {
		if c == ',' {
			n++
		}
	}
	p.Ranges = make([]PortRange, 0, n)
	for len(list) > 0 {
		var r []byte
		if j := indexByte(list, ','); j >= 0 {
			r, list = list[:j], list[j+1:]
			if len(list) == 0 {
				return nil, "trailing comma in port list"
			}
		} else {
			r, list = list, nil
		}
		lo, hi := r, r
		if j := indexByte(r, '-'); j >= 0 {
			lo, hi = r[:j], r[j+1:]
		}
		l, ok1 := parsePort(lo)
		h, ok2 := parsePort(hi)
		if !ok1 || !ok2 || l == 0 || l > h {
			return nil, "bad port range " + strconv.Quote(string(r))
		}
		if k := len(p.Ranges); k > 0 && p.Ranges[k-1].Hi >= l {
			return nil, "port ranges out of order or overlapping"
		}
		p.Ranges = append(p.Ranges, PortRange{l, h})
	}
	return p, ""
}
