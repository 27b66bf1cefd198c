package netdir

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"strings"
	"unsafe"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// family is one interned family declaration: a microdescriptor's
// "family" line together with its "family-ids" line. Every relay whose
// microdescriptor carries the same two lines shares one family, so the
// ~400-member lines of large operators are stored once per NetDir.
//
// Listed relays that are in the consensus are kept as sorted relay
// indices (4 bytes each instead of a 20-byte digest) in one array shared
// by all families of the NetDir; listed identities that are not in the
// consensus are kept as digests, so the declaration can be rebuilt
// exactly for the next consensus.
type family struct {
	key    [32]byte // identifies the pair of lines across NetDirs
	off, n uint32   // members: NetDir.famMembers[off:off+n]
	more   *familyMore
}

// familyMore holds the rarer parts of a declaration.
type familyMore struct {
	absent [][20]byte // sorted: listed identities not in this NetDir
	// nicks holds old-style bare-nickname entries (lower case, sorted);
	// C tor matches them against relay nicknames, so they are resolved
	// against each consensus into members. When there are any, ids keeps
	// the listed digests, since members then mixes both.
	nicks []string
	ids   [][20]byte
	// fids are the "family-ids" entries (proposal 321), sorted; two
	// relays sharing one are in the same family.
	fids []string
}

func (f *family) bytes() int {
	n := int(unsafe.Sizeof(family{}))
	if m := f.more; m != nil {
		n += int(unsafe.Sizeof(*m)) + 20*(cap(m.absent)+cap(m.ids)) + 16*(cap(m.nicks)+cap(m.fids))
		for _, s := range m.nicks {
			n += len(s)
		}
		for _, s := range m.fids {
			n += len(s)
		}
	}
	return n
}

// sharesFamilyID reports whether two sorted family-id lists intersect.
func sharesFamilyID(a, b []string) bool {
	for len(a) > 0 && len(b) > 0 {
		switch c := strings.Compare(a[0], b[0]); {
		case c == 0:
			return true
		case c < 0:
			a = a[1:]
		default:
			b = b[1:]
		}
	}
	return false
}

// familyKey identifies a (family line, family-ids line) pair. Equal lines
// give equal keys whether they came from a new microdescriptor or from a
// previous NetDir.
func familyKey(lineKey *[32]byte, fids []string) [32]byte {
	h := sha256.New()
	h.Write([]byte("onionlite netdir family\x00"))
	if lineKey != nil {
		h.Write([]byte{1})
		h.Write(lineKey[:])
	} else {
		h.Write([]byte{0})
	}
	for _, s := range fids {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// familySource is what a family is built from: either a newly added
// microdescriptor's lines, or a family of the previous NetDir.
type familySource struct {
	line *netdoc.Family
	fids []string
	prev uint32 // family index in the previous NetDir; 0: none
}

// familyInterner builds the families of one NetDir.
type familyInterner struct {
	nd       *NetDir
	prevND   *NetDir
	nickname func(i int) string // consensus nickname of relay i
	byKey    map[[32]byte]uint32
	byLine   map[lineRef]uint32
	byPrev   map[uint32]uint32
	byNick   []nickEnt // lower-case consensus nicknames, sorted; built on first use
	scratch  [][20]byte
}

type nickEnt struct {
	name string
	i    RelayIndex
}

type lineRef struct {
	line *netdoc.Family
	fids *string // first element of the interned family-ids slice
}

func newFamilyInterner(nd, prev *NetDir, nickname func(int) string) *familyInterner {
	return &familyInterner{
		nd: nd, prevND: prev, nickname: nickname,
		byKey:  map[[32]byte]uint32{},
		byLine: map[lineRef]uint32{},
		byPrev: map[uint32]uint32{},
	}
}

// intern returns the family index for src (0: no declaration).
func (fi *familyInterner) intern(src familySource) uint32 {
	if src.prev != 0 {
		if k, ok := fi.byPrev[src.prev]; ok {
			return k
		}
		p := &fi.prevND.families[src.prev]
		k := fi.internKey(p.key, func() family { return fi.fromPrev(p) })
		fi.byPrev[src.prev] = k
		return k
	}
	if src.line == nil && len(src.fids) == 0 {
		return 0
	}
	ref := lineRef{line: src.line}
	if len(src.fids) > 0 {
		ref.fids = &src.fids[0]
	}
	if k, ok := fi.byLine[ref]; ok {
		return k
	}
	var lk *[32]byte
	if src.line != nil {
		lk = &src.line.Key
	}
	key := familyKey(lk, src.fids)
	k := fi.internKey(key, func() family {
		var ids [][20]byte
		var nicks []string
		if src.line != nil {
			ids = src.line.IDs
			for _, n := range src.line.Nicknames {
				nicks = append(nicks, strings.ToLower(n))
			}
		}
		return fi.resolve(key, ids, nicks, src.fids)
	})
	fi.byLine[ref] = k
	return k
}

func (fi *familyInterner) internKey(key [32]byte, make func() family) uint32 {
	if k, ok := fi.byKey[key]; ok {
		return k
	}
	fi.nd.families = append(fi.nd.families, make())
	k := uint32(len(fi.nd.families) - 1)
	fi.byKey[key] = k
	return k
}

// fromPrev rebuilds a previous NetDir's family against this NetDir.
func (fi *familyInterner) fromPrev(p *family) family {
	var ids [][20]byte
	var nicks, fids []string
	if m := p.more; m != nil {
		ids, nicks, fids = m.ids, m.nicks, m.fids
	}
	if nicks == nil {
		members := fi.prevND.famMembers[p.off : p.off+p.n]
		var absent [][20]byte
		if p.more != nil {
			absent = p.more.absent
		}
		ids = make([][20]byte, 0, len(members)+len(absent))
		for _, m := range members {
			ids = append(ids, fi.prevND.ids[m])
		}
		ids = append(ids, absent...)
	}
	return fi.resolve(p.key, ids, nicks, fids)
}

// resolve builds a family from listed identities, nickname entries and
// family ids, appending its members to the NetDir's member array.
func (fi *familyInterner) resolve(key [32]byte, ids [][20]byte, nicks, fids []string) family {
	nd := fi.nd
	f := family{key: key, off: uint32(len(nd.famMembers))}
	sorted := slices.IsSortedFunc(ids, cmpID)
	if !sorted {
		ids = slices.Clone(ids)
		slices.SortFunc(ids, cmpID)
	}
	ids = compactIDs(ids, !sorted)
	var absent [][20]byte
	fi.scratch = fi.scratch[:0]
	for _, id := range ids {
		if i, ok := nd.ByID(id); ok {
			nd.famMembers = append(nd.famMembers, i)
		} else {
			fi.scratch = append(fi.scratch, id)
		}
	}
	if len(fi.scratch) > 0 {
		absent = slices.Clone(fi.scratch)
	}
	var nicksOut []string
	var idsOut [][20]byte
	if len(nicks) > 0 {
		nicksOut = sortedUnique(nicks)
		idsOut = slices.Clip(slices.Clone(ids))
		if fi.byNick == nil {
			fi.byNick = make([]nickEnt, len(nd.ids))
			for i := range nd.ids {
				fi.byNick[i] = nickEnt{strings.ToLower(fi.nickname(i)), RelayIndex(i)}
			}
			slices.SortFunc(fi.byNick, func(a, b nickEnt) int { return strings.Compare(a.name, b.name) })
		}
		for _, n := range nicksOut {
			k, _ := slices.BinarySearchFunc(fi.byNick, n, func(e nickEnt, n string) int { return strings.Compare(e.name, n) })
			for ; k < len(fi.byNick) && fi.byNick[k].name == n; k++ {
				nd.famMembers = append(nd.famMembers, fi.byNick[k].i)
			}
		}
		mem := nd.famMembers[f.off:]
		slices.Sort(mem)
		nd.famMembers = nd.famMembers[:int(f.off)+len(slices.Compact(mem))]
	}
	var fidsOut []string
	if len(fids) > 0 {
		fidsOut = sortedUnique(fids)
	}
	f.n = uint32(len(nd.famMembers)) - f.off
	if absent != nil || nicksOut != nil || fidsOut != nil {
		f.more = &familyMore{absent: absent, nicks: nicksOut, ids: idsOut, fids: fidsOut}
	}
	return f
}

func cmpID(a, b [20]byte) int { return bytes.Compare(a[:], b[:]) }

// compactIDs removes duplicates from a sorted slice, copying first unless
// owned says the slice may be modified.
func compactIDs(ids [][20]byte, owned bool) [][20]byte {
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			if !owned {
				ids = slices.Clone(ids)
			}
			return slices.Compact(ids)
		}
	}
	return ids
}

// sortedUnique returns s sorted without duplicates: s itself when it
// already is (it may be shared and is never modified), else a copy.
func sortedUnique(s []string) []string {
	ok := true
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			ok = false
			break
		}
	}
	if ok {
		return s[:len(s):len(s)]
	}
	return slices.Clip(slices.Compact(slices.Sorted(slices.Values(s))))
}
