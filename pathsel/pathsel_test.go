package pathsel

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// TestWeightsMatchReference: the Selector's integer weights are
// proportional to the reference float weights for every relay and
// position.
func TestWeightsMatchReference(t *testing.T) {
	for _, load := range []func(testing.TB) dirSet{load2019, load2026} {
		d := load(t)
		s := New(d.nd, Config{})
		for p := Position(0); p < numPositions; p++ {
			var ratio float64
			for i := range d.c.Relays {
				ref, got := d.refWeight(p, i), float64(s.Weight(p, netdir.RelayIndex(i)))
				if (ref == 0) != (got == 0) {
					t.Fatalf("%v relay %d (%v): weight %v, reference %v", p, i, d.nd.Flags(netdir.RelayIndex(i)), got, ref)
				}
				if ref == 0 {
					continue
				}
				if ratio == 0 {
					ratio = got / ref
				}
				if r := got / ref; r/ratio > 1+1e-9 || r/ratio < 1-1e-9 {
					t.Fatalf("%v relay %d: weight %v not proportional to reference %v", p, i, got, ref)
				}
			}
			if ratio == 0 {
				t.Fatalf("%v: no candidates", p)
			}
		}
	}
}

const draws = 100_000

// TestChiSquareReal2026: on the 9,609-relay 2026 consensus, 100,000
// choices per position follow the bandwidth-weighted distribution (chi-
// square goodness of fit at p = 0.001, fixed seed).
func TestChiSquareReal2026(t *testing.T) {
	d := load2026(t)
	s := New(d.nd, Config{})
	n := d.nd.Len()
	for _, tc := range []struct {
		name  string
		pos   Position
		opt   Options
		draws int
	}{
		{"guard", PosGuard, Options{}, draws},
		{"middle", PosMiddle, Options{}, draws},
		{"exit", PosExit, Options{}, draws},
		{"dir", PosDir, Options{}, draws},
		{"exit port 443 fast", PosExit, Options{Port: 443, NeedFast: true}, draws},
		{"exit port 6667 stable", PosExit, Options{Port: 6667, NeedFast: true, NeedStable: true}, draws},
		// A filter keeping 2% of the relays: found by redrawing.
		{"guard 1 in 50", PosGuard, Options{Filter: func(i netdir.RelayIndex) bool { return i%50 == 7 }}, 20000},
		// A filter keeping 0.1%: nearly always the scan of the
		// restricted set (fewer draws: each costs a scan).
		{"middle 1 in 1000", PosMiddle, Options{Filter: func(i netdir.RelayIndex) bool { return i%1000 == 7 }}, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := seeded(uint64(len(tc.name)) + uint64(tc.pos)*1000)
			counts := make([]int, n)
			for range tc.draws {
				i, err := s.Select(tc.pos, tc.opt, r)
				if err != nil {
					t.Fatal(err)
				}
				counts[i]++
			}
			weights := make([]float64, n)
			candidates := 0
			for i := range weights {
				w := d.refWeight(tc.pos, i)
				rs, md := &d.c.Relays[i], d.mds[i]
				if (tc.opt.NeedFast && rs.Flags&netdoc.FlagFast == 0) || (tc.opt.NeedStable && rs.Flags&netdoc.FlagStable == 0) ||
					(tc.opt.Port != 0 && (md == nil || !md.IPv4Policy.Allows(tc.opt.Port))) ||
					(tc.opt.Filter != nil && !tc.opt.Filter(netdir.RelayIndex(i))) {
					w = 0
				}
				weights[i] = w
				if w > 0 {
					candidates++
				}
			}
			stat, df, crit := chiSquare(t, counts, weights, 20)
			t.Logf("%s: %d candidates, chi2 = %.1f, df = %d, critical(0.001) = %.1f", tc.name, candidates, stat, df, crit)
			if df < 5 {
				t.Fatalf("only %d degrees of freedom: the test would be weak", df)
			}
			if stat > crit {
				t.Errorf("chi2 %.1f > %.1f: choices do not follow the weights", stat, crit)
			}
		})
	}
}

// TestChiSquareDetectsWrongWeights is the control: the same statistic
// rejects middle choices judged against guard weights and against plain
// bandwidth, so the test above can fail.
func TestChiSquareDetectsWrongWeights(t *testing.T) {
	d := load2026(t)
	s := New(d.nd, Config{})
	n := d.nd.Len()
	r := seeded(99)
	counts := make([]int, n)
	for range draws {
		i, err := s.Select(PosMiddle, Options{}, r)
		if err != nil {
			t.Fatal(err)
		}
		counts[i]++
	}
	// Plain bandwidth over the middle candidates: ignores Wmg/Wme/Wmd.
	plain := make([]float64, n)
	for i := range plain {
		if d.refWeight(PosMiddle, i) > 0 || d.refWeight(PosExit, i) > 0 {
			plain[i] = float64(d.c.Relays[i].Bandwidth) + 1
		}
	}
	if stat, df, crit := chiSquare(t, counts, plain, 20); stat <= crit {
		t.Errorf("plain bandwidth: chi2 %.1f <= %.1f (df %d): the test cannot tell the weights apart", stat, crit, df)
	}
}

// TestChiSquareConditional: middle choices that exclude a guard and an
// exit (their families and subnets) follow the weights restricted to the
// remaining relays. Uses the complete real 2019 set and its families.
func TestChiSquareConditional(t *testing.T) {
	d := load2019(t)
	s := New(d.nd, Config{})
	n := d.nd.Len()
	// A guard and an exit from large families.
	var guard, exit netdir.RelayIndex = netdir.NoRelay, netdir.NoRelay
	bestG, bestE := 0, 0
	for i := 0; i < n; i++ {
		ri := netdir.RelayIndex(i)
		size := len(d.nd.FamilyListed(d.nd.FamilyIndex(ri)))
		if s.Eligible(PosGuard, ri) && size > bestG && !d.nd.Flags(ri).Has(netdir.FlagExit) {
			guard, bestG = ri, size
		}
	}
	for i := 0; i < n; i++ {
		ri := netdir.RelayIndex(i)
		size := len(d.nd.FamilyListed(d.nd.FamilyIndex(ri)))
		if s.Eligible(PosExit, ri) && d.nd.ExitPolicy(ri).Allows(443) && size > bestE &&
			!d.nd.InSameFamily(ri, guard) && !d.nd.SameSubnet(ri, guard) {
			exit, bestE = ri, size
		}
	}
	if d.nd.InSameFamily(guard, exit) || bestG < 5 || bestE < 5 {
		t.Fatalf("test setup: guard %d (family %d), exit %d (family %d)", guard, bestG, exit, bestE)
	}
	opt := Options{Exclude: []netdir.RelayIndex{guard, exit}, NeedFast: true}
	r := seeded(2019)
	counts := make([]int, n)
	for range draws {
		i, err := s.Select(PosMiddle, opt, r)
		if err != nil {
			t.Fatal(err)
		}
		counts[i]++
	}
	weights := make([]float64, n)
	excluded := 0
	for i := range weights {
		ri := netdir.RelayIndex(i)
		w := d.refWeight(PosMiddle, i)
		if d.c.Relays[i].Flags&netdoc.FlagFast == 0 {
			w = 0
		}
		for _, x := range opt.Exclude {
			if ri == x || d.nd.InSameFamily(ri, x) || d.nd.SameSubnet(ri, x) {
				if w > 0 {
					excluded++
				}
				w = 0
			}
		}
		weights[i] = w
	}
	stat, df, crit := chiSquare(t, counts, weights, 20)
	t.Logf("middle excluding %d relays: chi2 = %.1f, df = %d, critical = %.1f", excluded, stat, df, crit)
	if excluded < 10 {
		t.Errorf("only %d candidates excluded: setup too weak", excluded)
	}
	if stat > crit {
		t.Errorf("chi2 %.1f > %.1f", stat, crit)
	}
}

// samePrefix16 and sameFamilyRaw are independent checks from the raw
// documents.
func samePrefix16(d dirSet, a, b int) bool {
	x, y := d.c.Relays[a].Addr.Addr().As4(), d.c.Relays[b].Addr.Addr().As4()
	if x[0] == y[0] && x[1] == y[1] {
		return true
	}
	v6a, v6b := d.c.Relays[a].IPv6, d.c.Relays[b].IPv6
	if v6a.IsValid() && v6b.IsValid() {
		p, q := v6a.Addr().As16(), v6b.Addr().As16()
		return [4]byte(p[:4]) == [4]byte(q[:4])
	}
	return false
}

func listsRaw(d dirSet, a, b int) bool {
	f := d.mds[a].Family
	return f != nil && f.Contains(d.c.Relays[b].Identity)
}

func sameFamilyRaw(d dirSet, a, b int) bool {
	for _, x := range d.mds[a].FamilyIDs {
		if slices.Contains(d.mds[b].FamilyIDs, x) {
			return true
		}
	}
	return listsRaw(d, a, b) && listsRaw(d, b, a)
}

// TestPathsRespectConstraints builds many paths on the real 2019 set (real
// families) and on the 2026 consensus, with and without a given guard,
// for several ports, and checks every constraint against the raw
// documents.
func TestPathsRespectConstraints(t *testing.T) {
	for _, tc := range []struct {
		name string
		load func(testing.TB) dirSet
	}{{"2019", load2019}, {"2026", load2026}} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.load(t)
			s := New(d.nd, Config{})
			r := seeded(5)
			wouldConflict := 0
			for k := 0; k < 20000; k++ {
				tg := Target{Port: []uint16{443, 80, 22, 6667, 0, 8080}[k%6]}
				guard := netdir.NoRelay
				if k%2 == 0 {
					g, err := s.Select(PosGuard, Options{}, r)
					if err != nil {
						t.Fatal(err)
					}
					guard = g
				}
				path, err := s.BuildPath(guard, tg, r)
				if err != nil {
					t.Fatalf("path %d (port %d): %v", k, tg.Port, err)
				}
				if guard != netdir.NoRelay && path[HopGuard] != guard {
					t.Fatalf("guard %d replaced by %d", guard, path[HopGuard])
				}
				for a := 0; a < 3; a++ {
					for b := a + 1; b < 3; b++ {
						x, y := int(path[a]), int(path[b])
						if x == y || sameFamilyRaw(d, x, y) || samePrefix16(d, x, y) {
							t.Fatalf("path %v: hops %d and %d share relay, family or subnet", path, a, b)
						}
					}
				}
				g, m, e := path[HopGuard], path[HopMiddle], path[HopExit]
				if !d.nd.Flags(g).Has(netdir.FlagGuard) || d.nd.Flags(e).Has(netdir.FlagBadExit) {
					t.Fatalf("path %v: guard without Guard or BadExit exit", path)
				}
				pol := d.mds[e].IPv4Policy
				if tg.Port != 0 && !pol.Allows(tg.Port) {
					t.Fatalf("path %v: exit does not allow port %d (%v)", path, tg.Port, pol)
				}
				if tg.Port == 0 && !pol.Allows(80) && !pol.Allows(443) {
					t.Fatalf("preemptive path %v: exit allows neither 80 nor 443 (%v)", path, pol)
				}
				for _, h := range path {
					f := d.c.Relays[h].Flags
					if f&netdoc.FlagFast == 0 || (slices.Contains(LongLivedPorts, tg.Port) && f&netdoc.FlagStable == 0) {
						t.Fatalf("path %v: hop without Fast (or Stable for port %d)", path, tg.Port)
					}
				}
				// How often would an unconstrained middle have broken a
				// rule? Shows the constraints are exercised.
				if x, err := s.Select(PosMiddle, Options{}, r); err == nil && x != m {
					for _, h := range []netdir.RelayIndex{g, e} {
						if x == h || sameFamilyRaw(d, int(x), int(h)) || samePrefix16(d, int(x), int(h)) {
							wouldConflict++
						}
					}
				}
			}
			t.Logf("%s: 20000 paths; unconstrained middles would have conflicted %d times", tc.name, wouldConflict)
			if wouldConflict < 50 {
				t.Errorf("only %d conflicts avoided: constraints barely exercised", wouldConflict)
			}
		})
	}
}

// tinyDir builds a NetDir from hand-made relays.
type tinyRelay struct {
	addr   string
	flags  netdoc.RelayFlags
	bw     uint32
	policy string // "accept 80,443" etc.; "" rejects all
	family []byte // listed identities (first byte)
	noMD   bool
}

func tinyDir(t *testing.T, relays []tinyRelay) *netdir.NetDir {
	t.Helper()
	c := &netdoc.Consensus{BandwidthWeights: netdoc.Params{}}
	for _, n := range []string{"Wbd", "Wbe", "Wbg", "Wbm", "Wdb", "Web", "Wed", "Wee", "Weg", "Wem", "Wgb", "Wgd", "Wgg", "Wgm", "Wmb", "Wmd", "Wme", "Wmg", "Wmm"} {
		c.BandwidthWeights = append(c.BandwidthWeights, netdoc.Param{Name: n, Value: 10000})
	}
	var mds []netdoc.Microdesc
	for k, tr := range relays {
		id := [20]byte{byte(k + 1)}
		c.Relays = append(c.Relays, netdoc.RouterStatus{
			Identity: id, MicrodescDigest: [32]byte{byte(k + 1)}, Addr: netip.MustParseAddrPort(tr.addr),
			Flags: tr.flags | netdoc.FlagRunning | netdoc.FlagValid, Bandwidth: tr.bw, HasWeight: true,
		})
		if tr.noMD {
			continue
		}
		md := netdoc.Microdesc{Digest: [32]byte{byte(k + 1)}, NtorKey: [32]byte{9, byte(k)},
			IPv4Policy: netdoc.RejectAllPolicy(), IPv6Policy: netdoc.RejectAllPolicy()}
		if tr.policy != "" {
			md.IPv4Policy = parsePolicy(t, tr.policy)
		}
		if tr.family != nil {
			f := &netdoc.Family{}
			for _, b := range tr.family {
				f.IDs = append(f.IDs, [20]byte{b})
			}
			f.Key[0] = byte(k + 1)
			md.Family = f
		}
		mds = append(mds, md)
	}
	return buildND(t, c, mds)
}

// parsePolicy parses "accept 80,443" via a one-microdescriptor batch.
func parsePolicy(t *testing.T, s string) *netdoc.PortPolicy {
	t.Helper()
	mds, err := netdoc.ParseMicrodescs([]byte("onion-key\nntor-onion-key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\np " + s + "\n"))
	if err != nil || len(mds) != 1 {
		t.Fatalf("policy %q: %v", s, err)
	}
	return mds[0].IPv4Policy
}

func TestTestNetworkSubnets(t *testing.T) {
	// A test network: every relay on 127.0.0.1.
	var rs []tinyRelay
	for k := 0; k < 6; k++ {
		rs = append(rs, tinyRelay{addr: fmt.Sprintf("127.0.0.1:%d", 9000+k), flags: netdoc.FlagGuard | netdoc.FlagExit | netdoc.FlagFast | netdoc.FlagStable, bw: 100, policy: "accept 1-65535"})
	}
	nd := tinyDir(t, rs)
	r := seeded(1)
	if _, err := New(nd, Config{}).BuildPath(netdir.NoRelay, Target{Port: 80}, r); !errors.Is(err, ErrNoCandidate) {
		t.Errorf("distinct subnets enforced: %v, want ErrNoCandidate", err)
	}
	s := New(nd, Config{AllowSameSubnet: true})
	for k := 0; k < 200; k++ {
		p, err := s.BuildPath(netdir.NoRelay, Target{Port: 80}, r)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] == p[1] || p[1] == p[2] || p[0] == p[2] {
			t.Fatalf("path %v repeats a relay", p)
		}
	}
}

func TestErrorsAndFallbacks(t *testing.T) {
	nd := tinyDir(t, []tinyRelay{
		{addr: "10.1.0.1:1", flags: netdoc.FlagGuard | netdoc.FlagFast, bw: 100},                                                         // 0
		{addr: "10.2.0.1:1", flags: netdoc.FlagFast, bw: 100},                                                                            // 1
		{addr: "10.3.0.1:1", flags: netdoc.FlagExit | netdoc.FlagFast, bw: 100, policy: "accept 80"},                                     // 2
		{addr: "10.4.0.1:1", flags: netdoc.FlagExit | netdoc.FlagBadExit | netdoc.FlagFast, bw: 900, policy: "accept 1-65535"},           // 3
		{addr: "10.5.0.1:1", flags: netdoc.FlagExit | netdoc.FlagMiddleOnly | netdoc.FlagFast, bw: 900, policy: "accept 1-65535"},        // 4
		{addr: "10.6.0.1:1", flags: netdoc.FlagGuard | netdoc.FlagExit | netdoc.FlagFast, bw: 900, policy: "accept 1-65535", noMD: true}, // 5
		{addr: "10.7.0.1:1", flags: netdoc.FlagExit, bw: 100, policy: "accept 25"},                                                       // 6: not Fast
	})
	s := New(nd, Config{})
	r := seeded(3)
	// Port 443: only BadExit, MiddleOnly and md-less relays allow it.
	_, err := s.BuildPath(netdir.NoRelay, Target{Port: 443}, r)
	var se *SelectError
	if !errors.Is(err, ErrNoExitForPort) || !errors.Is(err, ErrNoCandidate) || !errors.As(err, &se) || se.Port != 443 || se.Position != PosExit {
		t.Errorf("port 443: %v", err)
	}
	for k := 0; k < 100; k++ {
		// Guard 0 is the only guard and 2 the only exit for 80; BadExit
		// (3) and MiddleOnly (4) relays may be middles.
		p, err := s.BuildPath(netdir.NoRelay, Target{Port: 80}, r)
		if err != nil || p[HopGuard] != 0 || p[HopExit] != 2 || !slices.Contains([]netdir.RelayIndex{1, 3, 4}, p[HopMiddle]) {
			t.Fatalf("port 80: %v %v", p, err)
		}
		// Port 25: the only exit lacks Fast; C tor retries without it.
		p, err = s.BuildPath(0, Target{Port: 25}, r)
		if err != nil || p[HopExit] != 6 {
			t.Fatalf("port 25: %v %v", p, err)
		}
		// Preemptive, no exit for 80/443 needed: falls back to any exit.
		p, err = s.BuildPath(0, Target{Ports: []uint16{443}}, r)
		if err != nil || (p[HopExit] != 2 && p[HopExit] != 6) {
			t.Fatalf("preemptive: %v %v", p, err)
		}
	}
	if _, err := s.BuildPath(5, Target{Port: 80}, r); !errors.Is(err, ErrGuardUnusable) {
		t.Errorf("guard without microdescriptor: %v", err)
	}
	if _, err := s.BuildPath(99, Target{Port: 80}, r); !errors.Is(err, ErrGuardUnusable) {
		t.Errorf("guard out of range: %v", err)
	}
	if _, err := s.Select(numPositions, Options{}, r); !errors.Is(err, ErrBadArgument) {
		t.Errorf("bad position: %v", err)
	}
	if _, err := s.Select(PosMiddle, Options{Exclude: []netdir.RelayIndex{42}}, r); !errors.Is(err, ErrBadArgument) {
		t.Errorf("bad exclude: %v", err)
	}
	for _, i := range []netdir.RelayIndex{3, 4, 5} {
		if s.Eligible(PosExit, i) || s.Weight(PosExit, i) != 0 {
			t.Errorf("relay %d eligible as exit", i)
		}
	}
	if !s.Eligible(PosMiddle, 4) || s.Eligible(PosGuard, 4) {
		t.Error("MiddleOnly relay: middle only")
	}
	if _, err := s.Select(PosGuard, Options{Filter: func(netdir.RelayIndex) bool { return false }}, r); !errors.Is(err, ErrNoCandidate) {
		t.Errorf("filter excluding all: %v", err)
	}
}

// TestZeroWeights: when every candidate weighs 0, choices are uniform
// (C tor's choose_array_element_by_weight).
func TestZeroWeights(t *testing.T) {
	nd := tinyDir(t, []tinyRelay{
		{addr: "10.1.0.1:1", bw: 0}, {addr: "10.2.0.1:1", bw: 0}, {addr: "10.3.0.1:1", bw: 0}, {addr: "10.4.0.1:1", bw: 0},
	})
	s := New(nd, Config{})
	r := seeded(4)
	counts := make([]int, 4)
	for range 40000 {
		i, err := s.Select(PosMiddle, Options{}, r)
		if err != nil {
			t.Fatal(err)
		}
		counts[i]++
	}
	stat, _, _ := chiSquare(t, counts, []float64{1, 1, 1, 1}, 5)
	if stat > 16.27 { // chi2(3) at p = 0.001
		t.Errorf("counts %v: chi2 %.1f", counts, stat)
	}
}

// fixedRand replays values.
type fixedRand struct{ v []uint64 }

func (f *fixedRand) Uint64() uint64 { x := f.v[0]; f.v = f.v[1:]; return x }

func TestUniform(t *testing.T) {
	// n = 3: 2^64 mod 3 = 1, so a draw whose low product is 0 is
	// rejected. 0 * 3 = 0 → low 0 < thresh 1: redraw.
	r := &fixedRand{v: []uint64{0, 1 << 63}}
	if got := Uniform(r, 3); got != 1 || len(r.v) != 0 {
		t.Errorf("Uniform = %d, left %d", got, len(r.v))
	}
	rr := seeded(8)
	for _, n := range []uint64{1, 2, 7, 1 << 40, 1<<64 - 1} {
		for range 1000 {
			if x := Uniform(rr, n); x >= n {
				t.Fatalf("Uniform(%d) = %d", n, x)
			}
		}
	}
}
