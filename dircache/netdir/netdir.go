package netdir

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"time"
	"unsafe"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// RelayIndex names a relay within one NetDir: 0 to Len()-1, in RSA
// identity order. It means nothing in another NetDir; keep identities to
// find a relay again after a refresh.
type RelayIndex uint32

// NoRelay is a RelayIndex that names no relay.
const NoRelay RelayIndex = ^RelayIndex(0)

// NetDir is an immutable view of the network built from one consensus and
// the microdescriptors that match it. It is safe for concurrent use.
//
// Relays are stored as parallel arrays (struct of arrays) indexed by
// RelayIndex; see docs/netdir.md for the layout and its size.
type NetDir struct {
	validAfter, freshUntil, validUntil time.Time
	digests                            netdoc.Digests
	params                             Params
	weights                            weightTable

	ids    [][20]byte // RSA identity digests, ascending
	eds    [][32]byte // ed25519 identities as the microdescriptor gives them
	ntor   [][32]byte // curve25519 ntor onion keys
	mds    [][32]byte // microdescriptor digests (consensus "m" lines)
	ipv4   [][4]byte
	orport []uint16
	flags  []Flags
	bw     []uint32 // consensus bandwidth, kB/s (unmeasured ones capped)
	fam    idxVec   // index into families; 0: no declaration
	pol    idxVec   // index into policies
	byEd   idxVec   // relays with FlagHasEd25519, sorted by ed25519 id
	v6     v6Table

	families   []family     // families[0] is "no declaration"
	famMembers []RelayIndex // the families' listed relays, each run sorted
	policies   []policyPair
	numMD      int
}

// policyPair is an interned pair of exit-policy summaries ("p", "p6").
type policyPair struct{ v4, v6 *netdoc.PortPolicy }

// Len returns the number of relays in the consensus.
func (nd *NetDir) Len() int { return len(nd.ids) }

// NumMicrodescs returns the number of relays whose microdescriptor is
// known.
func (nd *NetDir) NumMicrodescs() int { return nd.numMD }

// ValidAfter, FreshUntil and ValidUntil return the consensus lifetime.
func (nd *NetDir) ValidAfter() time.Time { return nd.validAfter }

// FreshUntil: see ValidAfter.
func (nd *NetDir) FreshUntil() time.Time { return nd.freshUntil }

// ValidUntil: see ValidAfter.
func (nd *NetDir) ValidUntil() time.Time { return nd.validUntil }

// ConsensusDigests returns the digests of the consensus the NetDir was
// built from (SignedSHA3 names it in consensus-diff requests).
func (nd *NetDir) ConsensusDigests() netdoc.Digests { return nd.digests }

// Params returns the consensus parameters.
func (nd *NetDir) Params() Params { return nd.params }

// ID returns relay i's RSA identity digest.
func (nd *NetDir) ID(i RelayIndex) [20]byte { return nd.ids[i] }

// Ed25519 returns relay i's ed25519 identity, if known and agreed by the
// consensus.
func (nd *NetDir) Ed25519(i RelayIndex) ([32]byte, bool) {
	if nd.flags[i]&FlagHasEd25519 == 0 {
		return [32]byte{}, false
	}
	return nd.eds[i], true
}

// NtorKey returns relay i's ntor onion key, if its microdescriptor is
// known.
func (nd *NetDir) NtorKey(i RelayIndex) ([32]byte, bool) {
	if nd.flags[i]&FlagHasMicrodesc == 0 {
		return [32]byte{}, false
	}
	return nd.ntor[i], true
}

// MicrodescDigest returns the digest of the microdescriptor the consensus
// lists for relay i (whether or not it is known).
func (nd *NetDir) MicrodescDigest(i RelayIndex) [32]byte { return nd.mds[i] }

// Addr returns relay i's IPv4 ORPort.
func (nd *NetDir) Addr(i RelayIndex) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(nd.ipv4[i]), nd.orport[i])
}

// IPv6 returns relay i's IPv6 ORPort, if it has one.
func (nd *NetDir) IPv6(i RelayIndex) (netip.AddrPort, bool) {
	if nd.flags[i]&FlagHasIPv6 == 0 {
		return netip.AddrPort{}, false
	}
	return nd.v6.lookup(int(i))
}

// Flags returns relay i's flags.
func (nd *NetDir) Flags(i RelayIndex) Flags { return nd.flags[i] }

// Bandwidth returns relay i's consensus bandwidth in kB/s, as used for
// weighting: unmeasured relays are capped at maxunmeasuredbw when the
// consensus has measured ones, and an entry without a weight counts as
// 30 kB/s (both as C tor does).
func (nd *NetDir) Bandwidth(i RelayIndex) uint32 { return nd.bw[i] }

// ExitPolicy returns relay i's IPv4 exit-policy summary ("p" line);
// reject-all when its microdescriptor is not known. Do not modify it.
func (nd *NetDir) ExitPolicy(i RelayIndex) *netdoc.PortPolicy {
	return nd.policies[nd.pol.get(int(i))].v4
}

// ExitPolicy6 returns relay i's IPv6 exit-policy summary ("p6" line);
// reject-all when absent or unknown. Do not modify it.
func (nd *NetDir) ExitPolicy6(i RelayIndex) *netdoc.PortPolicy {
	return nd.policies[nd.pol.get(int(i))].v6
}

// PolicyIndex returns an index naming relay i's pair of exit-policy
// summaries: relays with equal summaries have equal indices, from 0 to
// NumPolicies()-1. Callers can evaluate each distinct policy once.
func (nd *NetDir) PolicyIndex(i RelayIndex) int { return int(nd.pol.get(int(i))) }

// NumPolicies returns the number of distinct exit-policy pairs.
func (nd *NetDir) NumPolicies() int { return len(nd.policies) }

// Policy returns the IPv4 summary of the policy pair with index k.
func (nd *NetDir) Policy(k int) *netdoc.PortPolicy { return nd.policies[k].v4 }

// RejectsAll reports whether relay i's exit policies reject every port
// (or its microdescriptor is unknown), so it can never be an exit.
func (nd *NetDir) RejectsAll(i RelayIndex) bool {
	p := nd.policies[nd.pol.get(int(i))]
	return !p.v4.AllowsAny() && !p.v6.AllowsAny()
}

// Relay is a copy of everything a NetDir knows about one relay.
type Relay struct {
	Index           RelayIndex
	ID              [20]byte
	Ed25519         [32]byte // zero unless Flags has FlagHasEd25519
	NtorKey         [32]byte // zero unless Flags has FlagHasMicrodesc
	MicrodescDigest [32]byte
	Addr            netip.AddrPort
	IPv6            netip.AddrPort // invalid (zero) unless Flags has FlagHasIPv6
	Flags           Flags
	Bandwidth       uint32 // kB/s
	ExitPolicy      *netdoc.PortPolicy
	ExitPolicy6     *netdoc.PortPolicy
}

// Relay returns a copy of relay i's data.
func (nd *NetDir) Relay(i RelayIndex) Relay {
	r := Relay{
		Index: i, ID: nd.ids[i], MicrodescDigest: nd.mds[i], Addr: nd.Addr(i),
		Flags: nd.flags[i] &^ flagV6FromMD, Bandwidth: nd.bw[i],
		ExitPolicy: nd.ExitPolicy(i), ExitPolicy6: nd.ExitPolicy6(i),
	}
	r.Ed25519, _ = nd.Ed25519(i)
	r.NtorKey, _ = nd.NtorKey(i)
	r.IPv6, _ = nd.IPv6(i)
	return r
}

// ByID finds a relay by RSA identity digest.
func (nd *NetDir) ByID(id [20]byte) (RelayIndex, bool) {
	i, ok := slices.BinarySearchFunc(nd.ids, id, cmpID)
	return RelayIndex(i), ok
}

// ByEd25519 finds a relay by ed25519 identity (only relays with
// FlagHasEd25519 can be found).
func (nd *NetDir) ByEd25519(ed [32]byte) (RelayIndex, bool) {
	n := nd.byEd.len()
	k := sort.Search(n, func(k int) bool { return cmp32(&nd.eds[nd.byEd.get(k)], &ed) >= 0 })
	if k < n {
		if i := nd.byEd.get(k); nd.eds[i] == ed {
			return RelayIndex(i), true
		}
	}
	return NoRelay, false
}

// InSameFamily reports whether relays a and b (a != b) are in one family:
// each lists the other in its "family" line (C tor's mutual rule; old
// nickname entries match relay nicknames, case-insensitively), or their
// "family-ids" lines share an entry (proposal 321). A relay whose
// microdescriptor is unknown is in no family.
func (nd *NetDir) InSameFamily(a, b RelayIndex) bool {
	fa, fb := nd.fam.get(int(a)), nd.fam.get(int(b))
	if fa == 0 || fb == 0 {
		return false
	}
	A, B := &nd.families[fa], &nd.families[fb]
	if A.more != nil && B.more != nil && sharesFamilyID(A.more.fids, B.more.fids) {
		return true
	}
	return nd.lists(A, b) && nd.lists(B, a)
}

// lists reports whether declaration f lists relay i.
func (nd *NetDir) lists(f *family, i RelayIndex) bool {
	_, ok := slices.BinarySearch(nd.famMembers[f.off:f.off+f.n], i)
	return ok
}

// FamilyIndex returns an index naming relay i's family declaration
// (0: none). Relays with the same declaration share an index.
func (nd *NetDir) FamilyIndex(i RelayIndex) int { return int(nd.fam.get(int(i))) }

// FamilyListed returns the relays that family declaration k lists (its
// classic "family" line resolved against this consensus), sorted. Do not
// modify the result.
func (nd *NetDir) FamilyListed(k int) []RelayIndex {
	if k == 0 {
		return nil
	}
	f := &nd.families[k]
	return nd.famMembers[f.off : f.off+f.n : f.off+f.n]
}

// SameSubnet reports whether relays a and b share an IPv4 /16 or an IPv6
// /32 (C tor's EnforceDistinctSubnets rule).
func (nd *NetDir) SameSubnet(a, b RelayIndex) bool {
	x, y := &nd.ipv4[a], &nd.ipv4[b]
	if x[0] == y[0] && x[1] == y[1] && *x != ([4]byte{}) && *y != ([4]byte{}) {
		return true
	}
	if nd.flags[a]&nd.flags[b]&FlagHasIPv6 == 0 {
		return false
	}
	pa, _ := nd.v6.prefix32(int(a))
	pb, _ := nd.v6.prefix32(int(b))
	return pa == pb
}

// DirInfo reports how much of the network this NetDir can use (see
// Builder.DirInfo).
func (nd *NetDir) DirInfo() DirInfo {
	return dirInfo(nd, func(i int) bool { return nd.RejectsAll(RelayIndex(i)) })
}

// MissingMicrodescs returns, without duplicates, the digests of the
// microdescriptors of relays a client would use (Running, EXTEND2) that
// are not known, highest consensus bandwidth first (ties in identity
// order): fetched in this order, the fraction of paths a client can build
// (DirInfo) grows fastest.
func (nd *NetDir) MissingMicrodescs() [][32]byte { return missing(nd) }

func missing(nd *NetDir) [][32]byte {
	var idx []int
	seen := map[[32]byte]bool{}
	for i, f := range nd.flags {
		if f&FlagHasMicrodesc != 0 || !f.Has(FlagRunning|FlagExtend2) || seen[nd.mds[i]] {
			continue
		}
		seen[nd.mds[i]] = true
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(nd.bw[b], nd.bw[a]) })
	out := make([][32]byte, len(idx))
	for k, i := range idx {
		out[k] = nd.mds[i]
	}
	return out
}

// Stats describes a NetDir's size.
type Stats struct {
	Relays, Microdescs int
	// Bytes is what the NetDir holds in memory: the per-relay arrays,
	// the IPv6 table, the identity indices, the interned policies and
	// families, and the parameters. Shared objects (policies) are counted
	// once.
	Bytes int
	// RelayBytes is the part of Bytes that does not depend on families.
	RelayBytes int
	// Families is the number of distinct family declarations,
	// FamilyMembers the listed relays they hold in all, and FamilyBytes
	// their size.
	Families, FamilyMembers, FamilyBytes int
	// Policies is the number of distinct exit-policy pairs and
	// PolicyBytes their size.
	Policies, PolicyBytes int
}

// Stats reports the NetDir's size; docs/netdir.md explains the layout.
func (nd *NetDir) Stats() Stats {
	s := Stats{Relays: len(nd.ids), Microdescs: nd.numMD, Families: len(nd.families) - 1, Policies: len(nd.policies)}
	rel := int(unsafe.Sizeof(*nd))
	rel += 20*cap(nd.ids) + 32*(cap(nd.eds)+cap(nd.ntor)+cap(nd.mds)) + 4*cap(nd.ipv4) +
		2*cap(nd.orport) + 4*cap(nd.flags) + 4*cap(nd.bw)
	rel += nd.fam.bytes() + nd.pol.bytes() + nd.byEd.bytes() + nd.v6.bytes()
	rel += 16 * cap(nd.params.list)
	for _, p := range nd.params.list {
		rel += len(p.Name)
	}
	seen := map[*netdoc.PortPolicy]bool{}
	pb := 16 * cap(nd.policies)
	for _, p := range nd.policies {
		for _, q := range []*netdoc.PortPolicy{p.v4, p.v6} {
			if q == netdoc.RejectAllPolicy() || seen[q] {
				continue
			}
			seen[q] = true
			pb += int(unsafe.Sizeof(*q)) + 4*cap(q.Ranges)
		}
	}
	fb := 4 * cap(nd.famMembers)
	fb += int(unsafe.Sizeof(family{})) * (cap(nd.families) - len(nd.families))
	for k := range nd.families {
		f := &nd.families[k]
		fb += f.bytes()
		s.FamilyMembers += int(f.n)
		if f.more != nil {
			s.FamilyMembers += len(f.more.absent)
		}
	}
	s.PolicyBytes, s.FamilyBytes = pb, fb
	s.RelayBytes = rel + pb
	s.Bytes = s.RelayBytes + fb
	return s
}
