package netdir

import (
	"math/bits"
	"net/netip"
)

// idxVec is a vector of small indices stored in 16 bits each while every
// value fits, and in 32 bits otherwise. Today's network needs the narrow
// form; the wide one keeps larger networks working.
type idxVec struct {
	n16 []uint16
	n32 []uint32
}

// newIdxVec makes a vector of n zero entries able to hold values up to
// maxVal.
func newIdxVec(n int, maxVal uint32) idxVec {
	if maxVal <= 0xffff {
		return idxVec{n16: make([]uint16, n)}
	}
	return idxVec{n32: make([]uint32, n)}
}

func (v *idxVec) get(i int) uint32 {
	if v.n32 != nil {
		return v.n32[i]
	}
	return uint32(v.n16[i])
}

func (v *idxVec) set(i int, x uint32) {
	if v.n32 != nil {
		v.n32[i] = x
		return
	}
	v.n16[i] = uint16(x)
}

func (v *idxVec) len() int {
	if v.n32 != nil {
		return len(v.n32)
	}
	return len(v.n16)
}

func (v *idxVec) bytes() int { return 2*cap(v.n16) + 4*cap(v.n32) }

// v6Table holds the IPv6 ORPorts of the relays that have one: a bitmap
// over relays, a rank per 64 relays, and dense address/port arrays in
// relay order. About half of today's relays have IPv6, so this costs
// about 9 bytes per relay instead of 18 in every row.
type v6Table struct {
	bits  []uint64
	rank  []uint32 // number of set bits before bits[k]
	addrs [][16]byte
	ports []uint16
}

func newV6Table(n int, addrs []netip.AddrPort) v6Table {
	t := v6Table{bits: make([]uint64, (n+63)/64), rank: make([]uint32, (n+63)/64)}
	cnt := 0
	for i, ap := range addrs {
		if ap.IsValid() {
			t.bits[i/64] |= 1 << (i % 64)
			cnt++
		}
	}
	t.addrs = make([][16]byte, 0, cnt)
	t.ports = make([]uint16, 0, cnt)
	var r uint32
	for k, w := range t.bits {
		t.rank[k] = r
		r += uint32(bits.OnesCount64(w))
	}
	for _, ap := range addrs {
		if ap.IsValid() {
			t.addrs = append(t.addrs, ap.Addr().As16())
			t.ports = append(t.ports, ap.Port())
		}
	}
	return t
}

// lookup returns the IPv6 ORPort of relay i, if it has one.
func (t *v6Table) lookup(i int) (netip.AddrPort, bool) {
	k, b := i/64, uint(i%64)
	w := t.bits[k]
	if w&(1<<b) == 0 {
		return netip.AddrPort{}, false
	}
	j := t.rank[k] + uint32(bits.OnesCount64(w&(1<<b-1)))
	return netip.AddrPortFrom(netip.AddrFrom16(t.addrs[j]), t.ports[j]), true
}

// prefix32 returns the first 32 bits of relay i's IPv6 address.
func (t *v6Table) prefix32(i int) (uint32, bool) {
	k, b := i/64, uint(i%64)
	w := t.bits[k]
	if w&(1<<b) == 0 {
		return 0, false
	}
	a := &t.addrs[t.rank[k]+uint32(bits.OnesCount64(w&(1<<b-1)))]
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), true
}

func (t *v6Table) bytes() int {
	return 8*cap(t.bits) + 4*cap(t.rank) + 16*cap(t.addrs) + 2*cap(t.ports)
}
