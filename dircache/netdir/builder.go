package netdir

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrBadConsensus: the consensus cannot be turned into a NetDir (no
	// relays, or entries not in strictly ascending identity order).
	ErrBadConsensus = errors.New("netdir: unusable consensus")
	// ErrBuilt: the Builder was already used by Build.
	ErrBuilt = errors.New("netdir: builder already built")
)

// Builder collects a consensus and its microdescriptors into a NetDir.
// Add microdescriptors in batches as they arrive (AddMicrodescs), watch
// DirInfo for progress, then call Build once. A Builder is not safe for
// concurrent use.
type Builder struct {
	nd *NetDir
	// What Build and markMD still need of the consensus, copied so that
	// the caller can drop the parsed consensus (over a megabyte at full
	// scale) while microdescriptors download.
	nicks []string          // nicknames, for families that name relays so
	noEd  []uint64          // bit i: relay i has NoEdConsensus
	cv6   []indexedAddrPort // consensus IPv6 ORPorts ("a" lines), by index
	prev  *NetDir
	extra []mdExtra
	byMD  []uint32 // relay indices sorted by microdescriptor digest
	mdKey []uint64 // the first 8 bytes of those digests, for searching
	built bool
}

// indexedAddrPort is an address of relay i.
type indexedAddrPort struct {
	i uint32
	a netip.AddrPort
}

// mdExtra is what a relay's microdescriptor contributes beyond the
// arrays: the sources its family and policies are interned from at Build.
type mdExtra struct {
	fam     familySource
	p4, p6  *netdoc.PortPolicy
	prevPol uint32 // policy pair index in prev; valid when p4 == nil
	v6      netip.AddrPort
}

// NewBuilder starts a NetDir for the checked consensus c. If prev is not
// nil, every relay whose microdescriptor digest prev knows is filled in
// from prev (identities and keys, family, policies), so only new
// microdescriptors need adding; prev is not modified, and may be any
// earlier NetDir, including one built from the same consensus. The
// Builder keeps no reference to c.
func NewBuilder(c *netdoc.Consensus, prev *NetDir) (*Builder, error) {
	if c == nil || len(c.Relays) == 0 {
		return nil, fmt.Errorf("%w: no relays", ErrBadConsensus)
	}
	n := len(c.Relays)
	for i := 1; i < n; i++ {
		if bytes.Compare(c.Relays[i-1].Identity[:], c.Relays[i].Identity[:]) >= 0 {
			return nil, fmt.Errorf("%w: entry %d not in ascending identity order", ErrBadConsensus, i)
		}
	}
	nd := &NetDir{
		validAfter: c.ValidAfter, freshUntil: c.FreshUntil, validUntil: c.ValidUntil,
		digests: c.Digests,
		params:  newParams(c.Params),
		ids:     make([][20]byte, n),
		eds:     make([][32]byte, n),
		ntor:    make([][32]byte, n),
		mds:     make([][32]byte, n),
		ipv4:    make([][4]byte, n),
		orport:  make([]uint16, n),
		flags:   make([]Flags, n),
		bw:      make([]uint32, n),
	}
	measured := false
	for i := range c.Relays {
		if rs := &c.Relays[i]; rs.HasWeight && !rs.Unmeasured {
			measured = true
			break
		}
	}
	capUnmeasured := uint32(nd.params.Get(ParamMaxUnmeasuredBw))
	var maxBW uint32
	for i := range c.Relays {
		rs := &c.Relays[i]
		nd.ids[i] = rs.Identity
		nd.mds[i] = rs.MicrodescDigest
		if a := rs.Addr.Addr(); a.Is4() {
			nd.ipv4[i] = a.As4()
		}
		nd.orport[i] = rs.Addr.Port()
		nd.flags[i] = consensusFlags(rs)
		bw := rs.Bandwidth
		switch {
		case !rs.HasWeight:
			bw = noBandwidthKB
		case rs.Unmeasured && measured:
			// Authorities cap unmeasured relays when bandwidth
			// authorities run (dir-spec 3.4.1, maxunmeasuredbw); a
			// client enforces the same cap.
			bw = min(bw, capUnmeasured)
		}
		nd.bw[i] = bw
		maxBW = max(maxBW, bw)
	}
	nd.weights = newWeightTable(c.BandwidthWeights, nd.params, n, maxBW)

	b := &Builder{nd: nd, prev: prev, extra: make([]mdExtra, n),
		nicks: make([]string, n), noEd: make([]uint64, (n+63)/64)}
	for i := range c.Relays {
		rs := &c.Relays[i]
		b.nicks[i] = rs.Nickname
		if rs.Flags&netdoc.FlagNoEdConsensus != 0 {
			b.noEd[i/64] |= 1 << (i % 64)
		}
		if a := rs.IPv6; a.IsValid() && a.Addr().Is6() {
			b.cv6 = append(b.cv6, indexedAddrPort{uint32(i), a})
		}
	}
	b.cv6 = slices.Clip(b.cv6)
	b.byMD, b.mdKey = sortByDigest(nd.mds, nil)
	if prev != nil {
		b.reuse(prev)
	}
	return b, nil
}

// reuse fills in relays whose microdescriptor prev knows.
func (b *Builder) reuse(prev *NetDir) {
	nd := b.nd
	// Walk both NetDirs in microdescriptor-digest order.
	pm, _ := sortByDigest(prev.mds, func(i int) bool { return prev.flags[i]&FlagHasMicrodesc != 0 })
	j := 0
	for _, i := range b.byMD {
		d := &nd.mds[i]
		for j < len(pm) && cmp32(&prev.mds[pm[j]], d) < 0 {
			j++
		}
		if j == len(pm) {
			break
		}
		p := pm[j]
		if prev.mds[p] != *d {
			continue
		}
		nd.ntor[i] = prev.ntor[p]
		nd.eds[i] = prev.eds[p]
		pf := prev.flags[p]
		b.markMD(int(i), prev.eds[p] != [32]byte{})
		e := &b.extra[i]
		e.fam = familySource{prev: prev.fam.get(int(p))}
		e.prevPol = prev.pol.get(int(p))
		if pf&flagV6FromMD != 0 {
			e.v6, _ = prev.v6.lookup(int(p))
		}
	}
}

// markMD records that relay i's microdescriptor is known.
func (b *Builder) markMD(i int, hasEd bool) {
	f := b.nd.flags[i]
	if f&FlagHasMicrodesc == 0 {
		b.nd.numMD++
	}
	f |= FlagHasMicrodesc
	f &^= FlagHasEd25519
	if hasEd && b.noEd[i/64]&(1<<(i%64)) == 0 {
		f |= FlagHasEd25519
	}
	b.nd.flags[i] = f
}

// AddMicrodescs adds a batch of parsed microdescriptors. Those that the
// consensus does not list are ignored (they are stale or unrequested).
// It returns how many relays gained a microdescriptor. The batch is not
// retained: only the fields a NetDir keeps are copied (interned family
// and policy objects are shared).
func (b *Builder) AddMicrodescs(mds []netdoc.Microdesc) (int, error) {
	if b.built {
		return 0, ErrBuilt
	}
	nd := b.nd
	added := 0
	for k := range mds {
		m := &mds[k]
		key := binary.BigEndian.Uint64(m.Digest[:8])
		lo, _ := slices.BinarySearch(b.mdKey, key)
		for lo < len(b.byMD) && b.mdKey[lo] == key && nd.mds[b.byMD[lo]] != m.Digest {
			lo++
		}
		for ; lo < len(b.byMD) && nd.mds[b.byMD[lo]] == m.Digest; lo++ {
			i := int(b.byMD[lo])
			if nd.flags[i]&FlagHasMicrodesc == 0 {
				added++
			}
			nd.ntor[i] = m.NtorKey
			nd.eds[i] = m.Ed25519ID
			b.markMD(i, m.Ed25519ID != [32]byte{})
			b.extra[i] = mdExtra{
				fam: familySource{line: m.Family, fids: m.FamilyIDs},
				p4:  m.IPv4Policy, p6: m.IPv6Policy,
				v6: m.IPv6,
			}
		}
	}
	return added, nil
}

// DirInfo reports how much of the network the microdescriptors added so
// far make usable (see DirInfo). A bootstrap can report Paths as
// progress and start building circuits once Enough.
func (b *Builder) DirInfo() DirInfo {
	if b.built {
		return b.nd.DirInfo()
	}
	return dirInfo(b.nd, func(i int) bool {
		e := &b.extra[i]
		if e.p4 == nil {
			if b.prev == nil {
				return true
			}
			p := b.prev.policies[e.prevPol]
			return !p.v4.AllowsAny() && !p.v6.AllowsAny()
		}
		return !e.p4.AllowsAny() && !e.p6.AllowsAny()
	})
}

// MissingMicrodescs returns, without duplicates, the digests of the
// microdescriptors still needed for relays a client would use (Running,
// EXTEND2).
func (b *Builder) MissingMicrodescs() [][32]byte { return missing(b.nd) }

// Provisional returns the NetDir that Build would make if no
// microdescriptor had been added: the consensus alone, for choosing
// directory caches and guards while microdescriptors download. It shares
// the Builder's arrays that never change (identities, digests, addresses,
// bandwidths, weights), allocates only the per-relay arrays that
// microdescriptors fill, and leaves the Builder as it was.
func (b *Builder) Provisional() (*NetDir, error) {
	if b.built {
		return nil, ErrBuilt
	}
	nd := b.nd
	n := len(nd.ids)
	p := &NetDir{
		validAfter: nd.validAfter, freshUntil: nd.freshUntil, validUntil: nd.validUntil,
		digests: nd.digests, params: nd.params, weights: nd.weights,
		ids: nd.ids, mds: nd.mds, ipv4: nd.ipv4, orport: nd.orport, bw: nd.bw,
		eds: make([][32]byte, n), ntor: make([][32]byte, n), flags: make([]Flags, n),
	}
	for i, f := range nd.flags {
		p.flags[i] = f &^ (FlagHasMicrodesc | FlagHasEd25519 | FlagHasIPv6 | flagV6FromMD)
	}
	t := &Builder{nd: p, extra: make([]mdExtra, n), nicks: b.nicks, noEd: b.noEd, cv6: b.cv6}
	return t.Build()
}

// Snapshot returns the NetDir that Build would make from the
// microdescriptors added so far, and leaves the Builder as it was, so
// that a bootstrap can start using a view that is Enough while the rest
// download. It copies the per-relay arrays that microdescriptors fill
// (about 100 bytes a relay while it builds) and shares the rest.
func (b *Builder) Snapshot() (*NetDir, error) {
	if b.built {
		return nil, ErrBuilt
	}
	p := *b.nd
	p.eds, p.ntor, p.flags = slices.Clone(p.eds), slices.Clone(p.ntor), slices.Clone(p.flags)
	t := &Builder{nd: &p, extra: slices.Clone(b.extra), nicks: b.nicks, noEd: b.noEd, cv6: b.cv6, prev: b.prev}
	return t.Build()
}

// Build finishes the NetDir. Relays without a microdescriptor stay in it
// (path selection skips them). The Builder cannot be used afterwards; to
// add microdescriptors that arrive later, start a new Builder with the
// result as prev.
func (b *Builder) Build() (*NetDir, error) {
	if b.built {
		return nil, ErrBuilt
	}
	b.built = true
	nd := b.nd
	n := len(nd.ids)

	// IPv6 ORPorts: the consensus "a" line, else an old microdescriptor's.
	v6 := make([]netip.AddrPort, n)
	cv6 := b.cv6
	for i := range n {
		if len(cv6) > 0 && cv6[0].i == uint32(i) {
			v6[i] = cv6[0].a
			cv6 = cv6[1:]
		} else if a := b.extra[i].v6; a.IsValid() && a.Addr().Is6() && nd.flags[i]&FlagHasMicrodesc != 0 {
			v6[i] = a
			nd.flags[i] |= flagV6FromMD
		}
		if v6[i].IsValid() {
			nd.flags[i] |= FlagHasIPv6
		}
	}
	nd.v6 = newV6Table(n, v6)

	// Exit policies, interned by value across batches.
	type ptrPair struct{ a, b *netdoc.PortPolicy }
	byPtr := map[ptrPair]uint32{}
	byText := map[string]uint32{}
	reject := netdoc.RejectAllPolicy()
	nd.policies = []policyPair{{reject, reject}}
	byPtr[ptrPair{reject, reject}] = 0
	var keyBuf []byte
	keyBuf = policyKey(policyKey(keyBuf[:0], reject), reject)
	byText[string(keyBuf)] = 0
	pols := make([]uint32, n)
	for i := range b.extra {
		e := &b.extra[i]
		if nd.flags[i]&FlagHasMicrodesc == 0 {
			continue
		}
		pp := ptrPair{e.p4, e.p6}
		if e.p4 == nil {
			q := b.prev.policies[e.prevPol]
			pp = ptrPair{q.v4, q.v6}
		}
		if pp.b == nil {
			pp.b = reject
		}
		k, ok := byPtr[pp]
		if !ok {
			keyBuf = policyKey(policyKey(keyBuf[:0], pp.a), pp.b)
			if k, ok = byText[string(keyBuf)]; !ok {
				nd.policies = append(nd.policies, policyPair{pp.a, pp.b})
				k = uint32(len(nd.policies) - 1)
				byText[string(keyBuf)] = k
			}
			byPtr[pp] = k
		}
		pols[i] = k
	}
	nd.policies = slices.Clip(nd.policies)
	nd.pol = newIdxVec(n, uint32(len(nd.policies)-1))
	for i, k := range pols {
		nd.pol.set(i, k)
	}

	// Families.
	nd.families = []family{{}}
	fi := newFamilyInterner(nd, b.prev, func(i int) string { return b.nicks[i] })
	fams := pols // reuse the scratch slice
	for i := range b.extra {
		fams[i] = 0
		if nd.flags[i]&FlagHasMicrodesc != 0 {
			fams[i] = fi.intern(b.extra[i].fam)
		}
	}
	nd.families = append([]family(nil), nd.families...)
	nd.famMembers = append([]RelayIndex(nil), nd.famMembers...)
	nd.fam = newIdxVec(n, uint32(len(nd.families)-1))
	for i, k := range fams {
		nd.fam.set(i, k)
	}

	// Ed25519 index.
	nEd := 0
	for _, f := range nd.flags {
		if f&FlagHasEd25519 != 0 {
			nEd++
		}
	}
	byEd, _ := sortByDigest(nd.eds, func(i int) bool { return nd.flags[i]&FlagHasEd25519 != 0 })
	nd.byEd = newIdxVec(nEd, uint32(max(n-1, 0)))
	for k, i := range byEd {
		nd.byEd.set(k, i)
	}

	b.extra, b.byMD, b.mdKey, b.prev = nil, nil, nil, nil
	b.nicks, b.noEd, b.cv6 = nil, nil, nil
	return nd, nil
}

// cmp32 compares two 32-byte values as big-endian numbers.
func cmp32(a, b *[32]byte) int {
	for k := 0; k < 32; k += 8 {
		x, y := binary.BigEndian.Uint64(a[k:]), binary.BigEndian.Uint64(b[k:])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// policyKey appends a binary encoding of p (accept bit and ranges).
func policyKey(b []byte, p *netdoc.PortPolicy) []byte {
	if p.Accept {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Ranges)))
	for _, r := range p.Ranges {
		b = binary.BigEndian.AppendUint16(b, r.Lo)
		b = binary.BigEndian.AppendUint16(b, r.Hi)
	}
	return b
}

// sortByDigest returns the indices of vals (those that keep accepts, or
// all) sorted by value, and the first 8 bytes of each as a big-endian
// number.
func sortByDigest(vals [][32]byte, keep func(int) bool) ([]uint32, []uint64) {
	type ent struct {
		key uint64
		i   uint32
	}
	es := make([]ent, 0, len(vals))
	for i := range vals {
		if keep == nil || keep(i) {
			es = append(es, ent{binary.BigEndian.Uint64(vals[i][:8]), uint32(i)})
		}
	}
	slices.SortFunc(es, func(x, y ent) int {
		if x.key != y.key {
			if x.key < y.key {
				return -1
			}
			return 1
		}
		return cmp32(&vals[x.i], &vals[y.i])
	})
	idx, keys := make([]uint32, len(es)), make([]uint64, len(es))
	for k, e := range es {
		idx[k], keys[k] = e.i, e.key
	}
	return idx, keys
}
