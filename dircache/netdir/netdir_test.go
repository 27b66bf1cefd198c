package netdir

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// full2019 builds the only complete real set: 6345 relays, every
// microdescriptor present.
func full2019(t testing.TB) (*netdoc.Consensus, []netdoc.Microdesc, *NetDir) {
	c := checkedConsensus(t, cons2019)
	mds := append(parseMDs(t, mds2019), parseMDs(t, mds2019New)...)
	return c, mds, build(t, c, nil, mds)
}

// mdByRelay maps consensus indices to their microdescriptors.
func mdByRelay(c *netdoc.Consensus, mds []netdoc.Microdesc) []*netdoc.Microdesc {
	rel, _ := netdoc.MatchMicrodescs(c, mds)
	out := make([]*netdoc.Microdesc, len(c.Relays))
	for k, i := range rel {
		if i >= 0 {
			out[i] = &mds[k]
		}
	}
	return out
}

func TestBuildReal2019(t *testing.T) {
	c, mds, nd := full2019(t)
	if nd.Len() != 6345 || nd.NumMicrodescs() != 6345 {
		t.Fatalf("relays %d, with md %d; want 6345, 6345", nd.Len(), nd.NumMicrodescs())
	}
	if !nd.ValidAfter().Equal(c.ValidAfter) || !nd.ValidUntil().Equal(c.ValidUntil) || nd.ConsensusDigests() != c.Digests {
		t.Error("consensus metadata not kept")
	}
	byRelay := mdByRelay(c, mds)
	var v6, eds, exits int
	for i := range c.Relays {
		rs, md, ri := &c.Relays[i], byRelay[i], RelayIndex(i)
		r := nd.Relay(ri)
		if r.ID != rs.Identity || r.MicrodescDigest != rs.MicrodescDigest || r.Addr != rs.Addr {
			t.Fatalf("relay %d: identity/digest/address differ", i)
		}
		if r.NtorKey != md.NtorKey || !r.Flags.Has(FlagHasMicrodesc) {
			t.Fatalf("relay %d: ntor key", i)
		}
		if got, ok := nd.ByID(rs.Identity); !ok || got != ri {
			t.Fatalf("ByID(relay %d) = %d, %v", i, got, ok)
		}
		wantEd := md.Ed25519ID != [32]byte{} && rs.Flags&netdoc.FlagNoEdConsensus == 0
		if ed, ok := nd.Ed25519(ri); ok != wantEd || (ok && ed != md.Ed25519ID) {
			t.Fatalf("relay %d: ed25519 %x %v", i, ed, ok)
		}
		if wantEd {
			eds++
			if got, ok := nd.ByEd25519(md.Ed25519ID); !ok || got != ri {
				t.Fatalf("ByEd25519(relay %d) = %d, %v", i, got, ok)
			}
		}
		if nd.ExitPolicy(ri).String() != md.IPv4Policy.String() || nd.ExitPolicy6(ri).String() != md.IPv6Policy.String() {
			t.Fatalf("relay %d: policies %v %v, want %v %v", i, nd.ExitPolicy(ri), nd.ExitPolicy6(ri), md.IPv4Policy, md.IPv6Policy)
		}
		if nd.RejectsAll(ri) != (!md.IPv4Policy.AllowsAny() && !md.IPv6Policy.AllowsAny()) {
			t.Fatalf("relay %d: RejectsAll", i)
		}
		if a, ok := nd.IPv6(ri); ok != rs.IPv6.IsValid() || a != rs.IPv6 {
			t.Fatalf("relay %d: IPv6 %v %v, want %v", i, a, ok, rs.IPv6)
		} else if ok {
			v6++
		}
		for _, fl := range []struct {
			in  netdoc.RelayFlags
			out Flags
		}{{netdoc.FlagRunning, FlagRunning}, {netdoc.FlagValid, FlagValid}, {netdoc.FlagFast, FlagFast},
			{netdoc.FlagStable, FlagStable}, {netdoc.FlagGuard, FlagGuard}, {netdoc.FlagExit, FlagExit},
			{netdoc.FlagBadExit, FlagBadExit}, {netdoc.FlagV2Dir, FlagV2Dir}, {netdoc.FlagHSDir, FlagHSDir}} {
			if (rs.Flags&fl.in != 0) != r.Flags.Has(fl.out) {
				t.Fatalf("relay %d: flag %v: consensus %v, netdir %v", i, fl.out, rs.Flags, r.Flags)
			}
		}
		if r.Flags.Has(FlagExit) {
			exits++
		}
		if r.Bandwidth != rs.Bandwidth && !rs.Unmeasured {
			t.Fatalf("relay %d: bandwidth %d, want %d", i, r.Bandwidth, rs.Bandwidth)
		}
	}
	if v6 != 1206 || exits != 991 || eds < 6000 {
		t.Errorf("IPv6 %d (want 1206), Exit %d (want 991), ed25519 %d", v6, exits, eds)
	}
	if _, ok := nd.ByID([20]byte{1, 2, 3}); ok {
		t.Error("ByID found a made-up identity")
	}
	if i, ok := nd.ByEd25519([32]byte{1, 2, 3}); ok || i != NoRelay {
		t.Error("ByEd25519 found a made-up identity")
	}
	if m := nd.MissingMicrodescs(); len(m) != 0 {
		t.Errorf("MissingMicrodescs = %d digests, want 0", len(m))
	}
}

// refLists is the family rule written directly from C tor's
// nodefamily_contains_node: a's family line lists b by identity or (old
// style) by nickname, case-insensitively.
func refLists(c *netdoc.Consensus, byRelay []*netdoc.Microdesc, a, b int) bool {
	md := byRelay[a]
	if md == nil || md.Family == nil {
		return false
	}
	if md.Family.Contains(c.Relays[b].Identity) {
		return true
	}
	for _, n := range md.Family.Nicknames {
		if strings.EqualFold(n, c.Relays[b].Nickname) {
			return true
		}
	}
	return false
}

func refSameFamily(c *netdoc.Consensus, byRelay []*netdoc.Microdesc, a, b int) bool {
	ma, mb := byRelay[a], byRelay[b]
	if ma != nil && mb != nil {
		for _, x := range ma.FamilyIDs {
			if slices.Contains(mb.FamilyIDs, x) {
				return true
			}
		}
	}
	return refLists(c, byRelay, a, b) && refLists(c, byRelay, b, a)
}

// checkFamilies compares InSameFamily with the reference for every pair a
// family line names, and for many random pairs.
func checkFamilies(t *testing.T, c *netdoc.Consensus, byRelay []*netdoc.Microdesc, nd *NetDir) (same, oneWay int) {
	t.Helper()
	check := func(a, b int) {
		if a == b {
			return
		}
		want := refSameFamily(c, byRelay, a, b)
		if got := nd.InSameFamily(RelayIndex(a), RelayIndex(b)); got != want {
			t.Fatalf("InSameFamily(%X, %X) = %v, want %v", c.Relays[a].Identity, c.Relays[b].Identity, got, want)
		}
		if want {
			same++
		} else if refLists(c, byRelay, a, b) {
			oneWay++
		}
	}
	byNick := map[string][]int{}
	for i := range c.Relays {
		n := strings.ToLower(c.Relays[i].Nickname)
		byNick[n] = append(byNick[n], i)
	}
	for a, md := range byRelay {
		if md == nil || md.Family == nil {
			continue
		}
		for _, id := range md.Family.IDs {
			if b, ok := c.RelayByIdentity(id); ok {
				check(a, b)
			}
		}
		for _, n := range md.Family.Nicknames {
			for _, b := range byNick[strings.ToLower(n)] {
				check(a, b)
			}
		}
	}
	r := rng(1)
	for k := 0; k < 50000; k++ {
		check(r.intn(len(c.Relays)), r.intn(len(c.Relays)))
	}
	return same, oneWay
}

func TestFamiliesReal2019(t *testing.T) {
	c, mds, nd := full2019(t)
	same, oneWay := checkFamilies(t, c, mdByRelay(c, mds), nd)
	t.Logf("family pairs: %d mutual, %d one-way; %d distinct declarations", same, oneWay, nd.Stats().Families)
	if same < 1000 || oneWay == 0 {
		t.Errorf("test data too thin: %d mutual, %d one-way pairs", same, oneWay)
	}
	// Every relay with a family line has an interned declaration, and
	// relays with the same line share it.
	byRelay := mdByRelay(c, mds)
	byKey := map[[32]byte]int{}
	for i, md := range byRelay {
		k := nd.FamilyIndex(RelayIndex(i))
		if (md.Family != nil) != (k != 0) {
			t.Fatalf("relay %d: family index %d, line %v", i, k, md.Family != nil)
		}
		if md.Family == nil {
			continue
		}
		if prev, ok := byKey[md.Family.Key]; ok && prev != k {
			t.Fatalf("relay %d: same family line, different declarations %d and %d", i, prev, k)
		}
		byKey[md.Family.Key] = k
	}
	if nd.Stats().Families != len(byKey) {
		t.Errorf("%d declarations for %d distinct lines", nd.Stats().Families, len(byKey))
	}
}

func TestFamilyIDsReal2026(t *testing.T) {
	c := checkedConsensus(t, cons2026)
	mds := parseMDs(t, mds2026)
	nd := build(t, c, nil, mds)
	byRelay := mdByRelay(c, mds)
	withIDs := 0
	for _, md := range byRelay {
		if md != nil && len(md.FamilyIDs) > 0 {
			withIDs++
		}
	}
	if withIDs != 12 {
		t.Fatalf("%d relays with family-ids, want 12", withIDs)
	}
	same, _ := checkFamilies(t, c, byRelay, nd)
	// All pairs among the 51 relays with microdescriptors.
	var have []int
	for i, md := range byRelay {
		if md != nil {
			have = append(have, i)
		}
	}
	n := 0
	for _, a := range have {
		for _, b := range have {
			if a != b && nd.InSameFamily(RelayIndex(a), RelayIndex(b)) != refSameFamily(c, byRelay, a, b) {
				t.Fatalf("InSameFamily(%d, %d) disagrees", a, b)
			}
			if a != b && nd.InSameFamily(RelayIndex(a), RelayIndex(b)) {
				n++
			}
		}
	}
	if same == 0 || n == 0 {
		t.Errorf("no family pairs found (%d, %d)", same, n)
	}
}

// TestFamilySynthetic covers the rules the real data cannot: one-way
// lines, nickname entries, family-ids without family lines, unknown
// microdescriptors, and rebuilding against a consensus where a listed
// relay appears, disappears or is renamed.
func TestFamilySynthetic(t *testing.T) {
	id := func(b byte) [20]byte { return [20]byte{b} }
	fam := func(key string, ids []byte, nicks ...string) *netdoc.Family {
		f := &netdoc.Family{Nicknames: nicks}
		for _, b := range ids {
			f.IDs = append(f.IDs, id(b))
		}
		f.Key = [32]byte([]byte(fmt.Sprintf("%-32s", key)))
		return f
	}
	cons := func(names map[byte]string) *netdoc.Consensus {
		c := &netdoc.Consensus{}
		for b := byte(1); b <= 9; b++ {
			n, ok := names[b]
			if !ok {
				continue
			}
			c.Relays = append(c.Relays, netdoc.RouterStatus{
				Identity: id(b), MicrodescDigest: [32]byte{b}, Nickname: n,
				Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, b, 0, 1}), 9001),
				Flags: netdoc.FlagRunning | netdoc.FlagValid, Bandwidth: 100, HasWeight: true,
			})
		}
		return c
	}
	md := func(b byte, f *netdoc.Family, fids ...string) netdoc.Microdesc {
		return netdoc.Microdesc{Digest: [32]byte{b}, NtorKey: [32]byte{b}, Family: f, FamilyIDs: fids,
			IPv4Policy: netdoc.RejectAllPolicy(), IPv6Policy: netdoc.RejectAllPolicy()}
	}
	fAB := fam("ab", []byte{1, 2})   // 1 and 2 list each other
	fC := fam("c", []byte{3, 4})     // 3 lists 4 ...
	fD := fam("d", []byte{4, 5})     // ... but 4 does not list 3
	fE := fam("e", []byte{5}, "Fox") // 5 lists "fox" by nickname
	fF := fam("f", []byte{6, 5})     // 6 lists 5 (unsorted line)
	fG := fam("g", []byte{7, 9})     // 7 lists 9, absent from the first consensus
	fI := fam("i", []byte{9, 7})
	mds := []netdoc.Microdesc{
		md(1, fAB), md(2, fAB), md(3, fC), md(4, fD), md(5, fE), md(6, fF),
		md(7, fG, "ed25519:x", "rsa:y"), md(8, nil, "ed25519:x"), md(9, fI),
	}
	names := map[byte]string{1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "FOX", 7: "g", 8: "h"}
	c1 := cons(names)
	nd1 := build(t, c1, nil, mds)
	r := func(nd *NetDir, b byte) RelayIndex {
		i, ok := nd.ByID(id(b))
		if !ok {
			t.Fatalf("relay %d missing", b)
		}
		return i
	}
	for _, tc := range []struct {
		a, b byte
		want bool
	}{
		{1, 2, true}, {2, 1, true}, {1, 3, false}, {3, 4, false}, {4, 5, false}, {5, 6, true},
		{6, 4, false}, {7, 8, true}, {7, 1, false}, {8, 2, false},
	} {
		if got := nd1.InSameFamily(r(nd1, tc.a), r(nd1, tc.b)); got != tc.want {
			t.Errorf("consensus 1: InSameFamily(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	// Consensus 2: relay 9 appears, relay 6 renames itself, relay 3 has
	// no microdescriptor any more (its digest changed).
	names2 := map[byte]string{1: "a", 2: "b", 3: "c", 4: "d", 5: "e", 6: "six", 7: "g", 8: "h", 9: "i"}
	c2 := cons(names2)
	c2.Relays[2].MicrodescDigest = [32]byte{3, 3}
	nd2 := build(t, c2, nd1, []netdoc.Microdesc{md(9, fI)})
	if nd2.NumMicrodescs() != 8 {
		t.Fatalf("reused microdescriptors: %d, want 8", nd2.NumMicrodescs())
	}
	for _, tc := range []struct {
		a, b byte
		want bool
	}{
		{1, 2, true}, {7, 9, true}, {5, 6, false}, {4, 5, false}, {3, 4, false}, {7, 8, true},
	} {
		if got := nd2.InSameFamily(r(nd2, tc.a), r(nd2, tc.b)); got != tc.want {
			t.Errorf("consensus 2: InSameFamily(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	// Back to consensus 1's relays: 9 is absent again, 6 is FOX again.
	nd3 := build(t, c1, nd2, mds[2:3])
	if got := nd3.InSameFamily(r(nd3, 5), r(nd3, 6)); !got {
		t.Error("consensus 3: the nickname entry no longer matches FOX")
	}
	if got := nd3.InSameFamily(r(nd3, 7), r(nd3, 8)); !got {
		t.Error("consensus 3: family-ids lost")
	}
	st := nd3.Stats()
	if st.Families != 7 {
		t.Errorf("consensus 3: %d declarations, want 7", st.Families)
	}
}

func TestDirInfoProgress(t *testing.T) {
	c := checkedConsensus(t, cons2019)
	b, err := NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	d0 := b.DirInfo()
	if d0.Paths != 0 || d0.Present != 0 || d0.Relays != 6345 || d0.Usable == 0 || d0.Enough(0) {
		t.Fatalf("no microdescriptors: %+v", d0)
	}
	if d0.Threshold != 0.6 {
		t.Errorf("threshold %v, want the default 0.6", d0.Threshold)
	}
	if m := b.MissingMicrodescs(); len(m) != d0.Usable {
		t.Errorf("missing %d, want %d", len(m), d0.Usable)
	}
	first := parseMDs(t, mds2019)
	if _, err := b.AddMicrodescs(first); err != nil {
		t.Fatal(err)
	}
	wantPresent := 0
	for i, md := range mdByRelay(c, first) {
		rs := &c.Relays[i]
		if md != nil && rs.Flags&netdoc.FlagRunning != 0 && (rs.Protocols == nil || rs.Protocols.Supports(netdoc.ProtoRelay, 2)) {
			wantPresent++
		}
	}
	d1 := b.DirInfo()
	if !(d1.Paths > 0.5 && d1.Paths < 1) || d1.Present != wantPresent {
		t.Fatalf("after cached-microdescs: %+v", d1)
	}
	if got := d1.Guard * d1.Middle * d1.Exit; math.Abs(got-d1.Paths) > 1e-12 {
		t.Errorf("Paths %v != product %v", d1.Paths, got)
	}
	if d1.Enough(0.999) || !d1.Enough(d1.Paths) {
		t.Errorf("Enough: %+v", d1)
	}
	if m := b.MissingMicrodescs(); len(m) != d1.Usable-d1.Present {
		t.Errorf("missing %d, want %d", len(m), d1.Usable-d1.Present)
	}
	if _, err := b.AddMicrodescs(parseMDs(t, mds2019New)); err != nil {
		t.Fatal(err)
	}
	d2 := b.DirInfo()
	// Guard and middle are complete; a few Exit-flagged relays reject
	// every port, and C tor does not count them as usable exits.
	if d2.Guard != 1 || d2.Middle != 1 || d2.Exit < 0.9999 || d2.Exit == 1 || d2.Present != d2.Usable || !d2.Enough(0) {
		t.Fatalf("complete set: %+v", d2)
	}
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := nd.DirInfo(); got != d2 {
		t.Errorf("NetDir.DirInfo %+v != Builder.DirInfo %+v", got, d2)
	}
	if _, err := b.AddMicrodescs(nil); !errors.Is(err, ErrBuilt) {
		t.Errorf("AddMicrodescs after Build: %v", err)
	}
	if _, err := b.Build(); !errors.Is(err, ErrBuilt) {
		t.Errorf("Build twice: %v", err)
	}
}

// TestDirInfoReference recomputes the guard/middle/exit fractions of a
// partial real set independently, with C tor's float weights.
func TestDirInfoReference(t *testing.T) {
	c := checkedConsensus(t, cons2021at19)
	mds := parseMDs(t, mds2021)
	nd := build(t, c, nil, mds)
	byRelay := mdByRelay(c, mds)
	bw := func(n string) float64 { return float64(c.BandwidthWeights.Get(n, -1)) / 10000 }
	var tot, have [3]float64
	for i := range c.Relays {
		rs := &c.Relays[i]
		if rs.Flags&netdoc.FlagRunning == 0 || (rs.Protocols != nil && !rs.Protocols.Supports(netdoc.ProtoRelay, 2)) {
			continue
		}
		g := rs.Flags&netdoc.FlagGuard != 0
		e := rs.Flags&netdoc.FlagExit != 0 && rs.Flags&netdoc.FlagBadExit == 0
		d := rs.Flags&netdoc.FlagV2Dir != 0
		pick := func(pos string) float64 {
			var w, db float64
			switch {
			case g && e:
				w, db = bw("W"+pos+"d"), bw("Wdb")
			case g:
				w, db = bw("W"+pos+"g"), bw("Wgb")
			case e:
				w, db = bw("W"+pos+"e"), bw("Web")
			default:
				w, db = bw("W"+pos+"m"), bw("Wmb")
			}
			if pos == "g" && e && !g {
				w = 0
			}
			if d {
				w *= db
			}
			return w * float64(rs.Bandwidth)
		}
		md := byRelay[i] != nil
		add := func(k int, w float64, ok bool) {
			tot[k] += w
			if ok {
				have[k] += w
			}
		}
		add(1, pick("m"), md)
		if g {
			add(0, pick("g"), md)
		}
		if rs.Flags&netdoc.FlagExit != 0 {
			add(2, pick("e"), md && (byRelay[i].IPv4Policy.AllowsAny() || byRelay[i].IPv6Policy.AllowsAny()))
		}
	}
	d := nd.DirInfo()
	for k, got := range []float64{d.Guard, d.Middle, d.Exit} {
		if want := have[k] / tot[k]; math.Abs(got-want) > 1e-9 {
			t.Errorf("fraction %d = %v, want %v", k, got, want)
		}
	}
	if d.Paths <= 0 || d.Paths >= 0.01 {
		t.Errorf("Paths %v for 857 of 6727 microdescriptors", d.Paths)
	}
}

// sameContent fails unless two NetDirs hold the same relays, keys,
// policies and family relations.
func sameContent(t *testing.T, a, b *NetDir) {
	t.Helper()
	if a.Len() != b.Len() || a.NumMicrodescs() != b.NumMicrodescs() {
		t.Fatalf("sizes %d/%d vs %d/%d", a.Len(), a.NumMicrodescs(), b.Len(), b.NumMicrodescs())
	}
	for i := 0; i < a.Len(); i++ {
		ra, rb := a.Relay(RelayIndex(i)), b.Relay(RelayIndex(i))
		if ra.ExitPolicy.String() != rb.ExitPolicy.String() || ra.ExitPolicy6.String() != rb.ExitPolicy6.String() {
			t.Fatalf("relay %d: policies differ", i)
		}
		ra.ExitPolicy, rb.ExitPolicy, ra.ExitPolicy6, rb.ExitPolicy6 = nil, nil, nil, nil
		if ra != rb {
			t.Fatalf("relay %d differs:\n%+v\n%+v", i, ra, rb)
		}
		for _, r := range []Role{RoleGuard, RoleMiddle, RoleExit, RoleBeginDir} {
			if a.Weight(r, RelayIndex(i)) != b.Weight(r, RelayIndex(i)) {
				t.Fatalf("relay %d: %v weight differs", i, r)
			}
		}
		fa, fb := a.FamilyListed(a.FamilyIndex(RelayIndex(i))), b.FamilyListed(b.FamilyIndex(RelayIndex(i)))
		if !slices.Equal(fa, fb) {
			t.Fatalf("relay %d: family lists %v vs %v", i, fa, fb)
		}
	}
	r := rng(7)
	for k := 0; k < 20000; k++ {
		x, y := RelayIndex(r.intn(a.Len())), RelayIndex(r.intn(a.Len()))
		if a.InSameFamily(x, y) != b.InSameFamily(x, y) {
			t.Fatalf("InSameFamily(%d, %d) differs", x, y)
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Families != sb.Families || sa.Policies != sb.Policies || sa.FamilyMembers != sb.FamilyMembers {
		t.Fatalf("stats differ: %+v vs %+v", sa, sb)
	}
}

// TestReuseSameConsensus: continuing a partial build (new Builder with
// the partial NetDir as prev) gives the same NetDir as one build.
func TestReuseSameConsensus(t *testing.T) {
	c, mds, full := full2019(t)
	first := parseMDs(t, mds2019)
	part := build(t, c, nil, first)
	if part.NumMicrodescs() != 5963 {
		t.Fatalf("partial: %d", part.NumMicrodescs())
	}
	again := build(t, c, part, parseMDs(t, mds2019New))
	sameContent(t, full, again)
	// A rebuild with nothing new is the same as its source.
	sameContent(t, full, build(t, c, full))
	_ = mds
}

// TestReuseNextConsensus: building the 19:00 consensus from the 17:00
// NetDir plus only the microdescriptors it lacks gives the same NetDir as
// building 19:00 from scratch.
func TestReuseNextConsensus(t *testing.T) {
	c17 := checkedConsensus(t, cons2021at17)
	c19 := checkedConsensus(t, cons2021at19)
	mds := parseMDs(t, mds2021)
	nd17 := build(t, c17, nil, mds)
	direct := build(t, c19, nil, mds)

	b, err := NewBuilder(c19, nd17)
	if err != nil {
		t.Fatal(err)
	}
	reused := b.DirInfo().Present
	// Only the microdescriptors the 17:00 directory did not have.
	var fresh []netdoc.Microdesc
	have := map[[32]byte]bool{}
	for i := 0; i < nd17.Len(); i++ {
		if nd17.Flags(RelayIndex(i)).Has(FlagHasMicrodesc) {
			have[nd17.MicrodescDigest(RelayIndex(i))] = true
		}
	}
	for _, m := range mds {
		if !have[m.Digest] {
			fresh = append(fresh, m)
		}
	}
	if _, err := b.AddMicrodescs(fresh); err != nil {
		t.Fatal(err)
	}
	nd19, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("19:00: %d microdescriptors reused from 17:00, %d fresh batch entries", reused, len(fresh))
	if reused < 800 {
		t.Errorf("only %d reused", reused)
	}
	sameContent(t, direct, nd19)
}

func TestBuilderErrors(t *testing.T) {
	if _, err := NewBuilder(nil, nil); !errors.Is(err, ErrBadConsensus) {
		t.Errorf("nil consensus: %v", err)
	}
	if _, err := NewBuilder(&netdoc.Consensus{}, nil); !errors.Is(err, ErrBadConsensus) {
		t.Errorf("empty consensus: %v", err)
	}
	c := &netdoc.Consensus{Relays: []netdoc.RouterStatus{{Identity: [20]byte{2}}, {Identity: [20]byte{1}}}}
	if _, err := NewBuilder(c, nil); !errors.Is(err, ErrBadConsensus) {
		t.Errorf("unsorted consensus: %v", err)
	}
	c.Relays[1].Identity = [20]byte{2}
	if _, err := NewBuilder(c, nil); !errors.Is(err, ErrBadConsensus) {
		t.Errorf("duplicate identity: %v", err)
	}
}

func TestSameSubnetAndFlags(t *testing.T) {
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	c := &netdoc.Consensus{Relays: []netdoc.RouterStatus{
		{Identity: [20]byte{1}, Addr: ap("10.1.2.3:9001"), IPv6: ap("[2001:db8:1::1]:9001"), Flags: netdoc.FlagMiddleOnly | netdoc.FlagGuard | netdoc.FlagExit | netdoc.FlagRunning},
		{Identity: [20]byte{2}, Addr: ap("10.1.200.3:9001")},
		{Identity: [20]byte{3}, Addr: ap("10.2.2.3:9001"), IPv6: ap("[2001:db8:ffff::1]:443")},
		{Identity: [20]byte{4}, Addr: ap("10.3.2.3:9001"), IPv6: ap("[2001:db9::1]:443")},
		{Identity: [20]byte{5}, Addr: ap("10.4.2.3:9001")},
	}}
	nd := build(t, c, nil)
	for _, tc := range []struct {
		a, b RelayIndex
		want bool
	}{{0, 1, true}, {0, 2, true}, {0, 3, false}, {2, 3, false}, {3, 4, false}, {1, 4, false}} {
		if got := nd.SameSubnet(tc.a, tc.b); got != tc.want {
			t.Errorf("SameSubnet(%d, %d) = %v", tc.a, tc.b, got)
		}
	}
	if a, ok := nd.IPv6(2); !ok || a != ap("[2001:db8:ffff::1]:443") {
		t.Errorf("IPv6(2) = %v %v", a, ok)
	}
	if _, ok := nd.IPv6(1); ok {
		t.Error("IPv6(1) present")
	}
	f := nd.Flags(0)
	if f.Has(FlagGuard) || f.Has(FlagExit) || !f.Has(FlagBadExit|FlagMiddleOnly|FlagRunning|FlagExtend2) {
		t.Errorf("MiddleOnly relay flags: %v", f)
	}
	if nd.Bandwidth(1) != noBandwidthKB {
		t.Errorf("no w line: bandwidth %d", nd.Bandwidth(1))
	}
	if _, ok := nd.NtorKey(0); ok || nd.Flags(0).Has(FlagHasMicrodesc) || !nd.RejectsAll(0) {
		t.Error("relay without microdescriptor looks usable")
	}
}

func TestParams(t *testing.T) {
	p := newParams(netdoc.Params{{Name: "circwindow", Value: 50}, {Name: "cc_alg", Value: 2}, {Name: "bwweightscale", Value: 1 << 30},
		{Name: "guard-n-primary-guards", Value: 5}, {Name: "cc_alg", Value: 0}, {Name: "min_paths_for_circs_pct", Value: 99}})
	for _, tc := range []struct {
		q    Param
		want int32
	}{
		{ParamCircWindow, 100},         // clamped up
		{ParamMinPathsForCircsPct, 95}, // clamped down
		{ParamCCAlg, 2},                // first of duplicates
		{ParamGuardNPrimary, 5},        // in range
		{ParamGuardMaxSampleSize, 60},  // absent: default
		{ParamSendmeEmitMinVersion, 0}, // absent
		{ParamBwWeightScale, 1 << 30},  // in range
		{ParamCCSendmeInc, 31},         // absent
	} {
		if got := p.Get(tc.q); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.q.Name, got, tc.want)
		}
	}
	if v, ok := p.Lookup("circwindow"); !ok || v != 50 {
		t.Errorf("Lookup(circwindow) = %d %v", v, ok)
	}
	if _, ok := p.Lookup("nope"); ok || p.Len() != 5 {
		t.Errorf("Lookup(nope) found, or Len %d", p.Len())
	}
	if (Params{}).Get(ParamCircWindow) != 1000 {
		t.Error("zero Params does not give defaults")
	}
	c := checkedConsensus(t, cons2026)
	nd := build(t, c, nil)
	if nd.Params().Get(ParamCCAlg) != 2 || nd.Params().Get(ParamSendmeAcceptMinVersion) != 1 || nd.Params().Get(ParamGuardNPrimaryToUse) != 2 {
		t.Errorf("2026 params: cc_alg %d sendme_accept %d", nd.Params().Get(ParamCCAlg), nd.Params().Get(ParamSendmeAcceptMinVersion))
	}
}

// TestBuilderKeepsNoConsensus: a bootstrap drops the parsed consensus
// (over a megabyte at full scale) once its Builder exists, so the Builder
// must not hold it; the NetDir it builds is the same as before.
func TestBuilderKeepsNoConsensus(t *testing.T) {
	c, mds, want := full2019(t)
	c2 := checkedConsensus(t, cons2019)
	bld, err := NewBuilder(c2, nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan struct{})
	runtime.AddCleanup(&c2.Relays[0], func(ch chan struct{}) { close(ch) }, gone)
	c2 = nil
	collected := false
	for i := 0; i < 20 && !collected; i++ {
		runtime.GC()
		select {
		case <-gone:
			collected = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !collected {
		t.Fatal("the Builder keeps the consensus's relay list alive")
	}
	if _, err := bld.AddMicrodescs(mds); err != nil {
		t.Fatal(err)
	}
	nd, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Relays {
		ri := RelayIndex(i)
		a, aok := nd.IPv6(ri)
		b, bok := want.IPv6(ri)
		ea, eaok := nd.Ed25519(ri)
		eb, ebok := want.Ed25519(ri)
		if a != b || aok != bok || ea != eb || eaok != ebok || nd.Flags(ri) != want.Flags(ri) {
			t.Fatalf("relay %d differs from a NetDir built with the consensus held", i)
		}
		fa, fb := nd.FamilyListed(nd.FamilyIndex(ri)), want.FamilyListed(want.FamilyIndex(ri))
		if !slices.Equal(fa, fb) {
			t.Fatalf("relay %d: family %v, want %v", i, fa, fb)
		}
	}
	runtime.KeepAlive(c)
}

// TestProvisional: a Builder's Provisional view, taken after
// microdescriptors were added, is the NetDir of the consensus alone, and
// the Builder goes on to build the full one.
func TestProvisional(t *testing.T) {
	c, mds, full := full2019(t)
	bare := build(t, c, nil)
	bld, err := NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bld.AddMicrodescs(mds[:len(mds)/2]); err != nil {
		t.Fatal(err)
	}
	p, err := bld.Provisional()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bld.AddMicrodescs(mds[len(mds)/2:]); err != nil {
		t.Fatal(err)
	}
	nd, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	if p.NumMicrodescs() != 0 || p.Len() != bare.Len() || nd.NumMicrodescs() != full.NumMicrodescs() {
		t.Fatalf("provisional %d/%d relays with md, full %d, want 0/%d and %d",
			p.NumMicrodescs(), p.Len(), nd.NumMicrodescs(), bare.Len(), full.NumMicrodescs())
	}
	for i := range c.Relays {
		ri := RelayIndex(i)
		if p.Relay(ri) != bare.Relay(ri) || p.Weight(RoleGuard, ri) != bare.Weight(RoleGuard, ri) ||
			p.Weight(RoleBeginDir, ri) != bare.Weight(RoleBeginDir, ri) {
			t.Fatalf("relay %d: provisional %+v, want %+v", i, p.Relay(ri), bare.Relay(ri))
		}
		if nd.Relay(ri) != full.Relay(ri) {
			t.Fatalf("relay %d: built after Provisional %+v, want %+v", i, nd.Relay(ri), full.Relay(ri))
		}
	}
	if _, err := bld.Provisional(); !errors.Is(err, ErrBuilt) {
		t.Errorf("Provisional after Build: %v, want ErrBuilt", err)
	}
}

// TestSnapshotInBandwidthOrder: microdescriptors fetched in the order
// MissingMicrodescs gives (highest bandwidth first) make the view Enough
// long before all have arrived; a Snapshot taken then is the view Build
// would make from what was added, and adding the rest changes neither the
// snapshot nor the final view.
func TestSnapshotInBandwidthOrder(t *testing.T) {
	c := checkedConsensus(t, cons2019)
	b, err := NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := b.Provisional()
	if err != nil {
		t.Fatal(err)
	}
	bwOf := map[[32]byte]uint32{}
	for i := range prov.Len() {
		r := prov.Relay(RelayIndex(i))
		bwOf[r.MicrodescDigest] = max(bwOf[r.MicrodescDigest], r.Bandwidth)
	}
	missing := b.MissingMicrodescs()
	for k := 1; k < len(missing); k++ {
		if bwOf[missing[k]] > bwOf[missing[k-1]] {
			t.Fatalf("MissingMicrodescs[%d] has more bandwidth (%d) than the one before (%d)", k, bwOf[missing[k]], bwOf[missing[k-1]])
		}
	}
	all := map[[32]byte]netdoc.Microdesc{}
	for _, set := range [][]netdoc.Microdesc{parseMDs(t, mds2019), parseMDs(t, mds2019New)} {
		for _, md := range set {
			all[md.Digest] = md
		}
	}
	const batch = 500
	added := 0
	for !b.DirInfo().Enough(0) {
		if added >= len(missing) {
			t.Fatal("never Enough")
		}
		var mds []netdoc.Microdesc
		for _, d := range missing[added:min(added+batch, len(missing))] {
			mds = append(mds, all[d])
		}
		if _, err := b.AddMicrodescs(mds); err != nil {
			t.Fatal(err)
		}
		added += len(mds)
	}
	t.Logf("Enough after %d of %d microdescriptors: %+v", added, len(missing), b.DirInfo())
	// Identity order needs nearly all of them (paths 0.6 takes about 85 %
	// of each role's weight); bandwidth order far fewer.
	if added > len(missing)/2 {
		t.Errorf("Enough only after %d of %d microdescriptors", added, len(missing))
	}
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	atSnap := b.DirInfo()
	if got := snap.DirInfo(); got != atSnap {
		t.Fatalf("snapshot DirInfo %+v, builder %+v", got, atSnap)
	}
	var rest []netdoc.Microdesc
	for _, d := range missing[added:] {
		rest = append(rest, all[d])
	}
	if _, err := b.AddMicrodescs(rest); err != nil {
		t.Fatal(err)
	}
	full, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.DirInfo(); got != atSnap {
		t.Fatalf("adding the rest changed the snapshot: %+v, was %+v", got, atSnap)
	}
	if d := full.DirInfo(); d.Present != d.Usable {
		t.Fatalf("final view: %+v", d)
	}
	if ref := build(t, c, nil, parseMDs(t, mds2019), parseMDs(t, mds2019New)); ref.DirInfo() != full.DirInfo() {
		t.Fatalf("final view %+v, built at once %+v", full.DirInfo(), ref.DirInfo())
	}
	for i := range snap.Len() {
		ri := RelayIndex(i)
		s, f := snap.Relay(ri), full.Relay(ri)
		if !s.Flags.Has(FlagHasMicrodesc) {
			continue
		}
		if fmt.Sprintf("%+v", s) != fmt.Sprintf("%+v", f) || snap.RejectsAll(ri) != full.RejectsAll(ri) {
			t.Fatalf("relay %d differs between the snapshot and the final view:\n%+v\n%+v", i, s, f)
		}
	}
}
