package netdir

import (
	"math/bits"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// Role is the position a relay is weighted for (path-spec 2.2, dir-spec
// 3.8.3).
type Role uint8

const (
	// RoleGuard weights for the first hop: Wgg, Wgm, Wgd, and 0 for
	// non-guard exits; times Wgb/Wmb/Web/Wdb for directory caches.
	RoleGuard Role = iota
	// RoleMiddle weights for a middle hop: Wmg, Wmm, Wme, Wmd (times the
	// directory-cache weights).
	RoleMiddle
	// RoleExit weights for the last hop: Weg, Wem, Wee, Wed (times the
	// directory-cache weights).
	RoleExit
	// RoleBeginDir weights for a one-hop directory request: Wbg, Wbm,
	// Wbe, Wbd.
	RoleBeginDir
	// RoleUnweighted weights by consensus bandwidth alone.
	RoleUnweighted

	numRoles = iota
)

var roleNames = [numRoles]string{"guard", "middle", "exit", "begindir", "unweighted"}

func (r Role) String() string {
	if int(r) < numRoles {
		return roleNames[r]
	}
	return "role(?)"
}

// Relay kinds for weighting: a bitmask of guard, exit (Exit without
// BadExit) and directory cache (V2Dir).
const (
	kindGuard = 1 << iota
	kindExit
	kindDir
	numKinds = 8
)

func kindOf(f Flags) int {
	k := 0
	if f&FlagGuard != 0 {
		k |= kindGuard
	}
	if f&(FlagExit|FlagBadExit) == FlagExit {
		k |= kindExit
	}
	if f&FlagV2Dir != 0 {
		k |= kindDir
	}
	return k
}

// weightTable holds, per role and relay kind, the integer factor a
// relay's bandwidth is multiplied by. Factors are products of two
// bandwidth-weights (position weight times directory weight), so they are
// in units of weight_scale²; only their ratios matter.
type weightTable struct {
	factor [numRoles][numKinds]uint64
	// naive[r] is set when role r fell back to weighting by bandwidth
	// alone because the consensus lacks (or has negative) weights.
	naive [numRoles]bool
}

// noBandwidthKB is the bandwidth C tor assumes for a consensus entry
// without a "w Bandwidth=" (30000 bytes/s).
const noBandwidthKB = 30

// newWeightTable computes the factors as C tor's
// compute_weighted_bandwidths does. n is the number of relays and maxBW
// the largest bandwidth; factors are scaled down if needed so that
// n × maxBW × factor stays below 2^62 and sums of weights cannot
// overflow.
func newWeightTable(bw netdoc.Params, p Params, n int, maxBW uint32) weightTable {
	scale := int64(p.Get(ParamBwWeightScale))
	get := func(name string) int64 {
		if bw == nil {
			return -1
		}
		v, ok := bw.Lookup(name)
		if !ok {
			return -1
		}
		return min(int64(v), scale) // C tor caps weights at the scale
	}
	var t weightTable
	dirW := [4]int64{get("Wmb"), get("Wgb"), get("Web"), get("Wdb")} // by kind&3: middle, guard, exit, guard+exit
	for r := Role(0); r < numRoles; r++ {
		var w [4]int64 // by kind&3
		db := dirW
		switch r {
		case RoleGuard:
			w = [4]int64{get("Wgm"), get("Wgg"), 0, get("Wgd")}
		case RoleMiddle:
			w = [4]int64{get("Wmm"), get("Wmg"), get("Wme"), get("Wmd")}
		case RoleExit:
			w = [4]int64{get("Wem"), get("Weg"), get("Wee"), get("Wed")}
		case RoleBeginDir:
			w = [4]int64{get("Wbm"), get("Wbg"), get("Wbe"), get("Wbd")}
			db = [4]int64{scale, scale, scale, scale}
		case RoleUnweighted:
			w = [4]int64{scale, scale, scale, scale}
			db = w
		}
		if min(w[0], w[1], w[2], w[3], db[0], db[1], db[2], db[3]) < 0 {
			t.naive[r] = true
			w = [4]int64{scale, scale, scale, scale}
			db = w
		}
		for k := 0; k < numKinds; k++ {
			d := scale
			if k&kindDir != 0 {
				d = db[k&3]
			}
			t.factor[r][k] = uint64(w[k&3]) * uint64(d)
		}
	}
	// Keep every weight, and every sum of n weights, below 2^62.
	var maxF uint64
	for r := range t.factor {
		for _, f := range t.factor[r] {
			maxF = max(maxF, f)
		}
	}
	if excess := bits.Len64(maxF) + bits.Len32(maxBW) + bits.Len(uint(n)) - 62; excess > 0 {
		for r := range t.factor {
			for k, f := range t.factor[r] {
				if f != 0 {
					t.factor[r][k] = max(f>>excess, 1)
				}
			}
		}
	}
	return t
}

// Weight returns the selection weight of relay i for role r: its
// consensus bandwidth times the bandwidth-weights for its kind. Weights
// of one NetDir and role are proportional to C tor's and sum to less
// than 2^62. Eligibility (flags, descriptors, policies) is not
// considered here; see pathsel.
func (nd *NetDir) Weight(r Role, i RelayIndex) uint64 {
	f := nd.flags[i]
	return uint64(nd.bw[i]) * nd.weights.factor[r][kindOf(f)]
}

// NaiveWeights reports whether role r weights by bandwidth alone because
// the consensus has no usable bandwidth-weights.
func (nd *NetDir) NaiveWeights(r Role) bool { return nd.weights.naive[r] }

// DirInfo reports how much of the network a client can use with the
// microdescriptors it has, as C tor's compute_frac_paths_available does:
// the fractions of guard, middle and exit bandwidth (weighted for their
// positions) whose relays have microdescriptors, and their product, the
// fraction of paths that can be built.
type DirInfo struct {
	Guard, Middle, Exit float64
	// Paths is Guard × Middle × Exit. When no exit can be used yet,
	// Exit is replaced by Middle (only internal paths can be built).
	Paths float64
	// Threshold is the consensus min_paths_for_circs_pct as a fraction.
	Threshold float64
	// Relays is the size of the consensus, Usable the relays a client
	// would use (Running, EXTEND2), Present those of them with a
	// microdescriptor.
	Relays, Usable, Present int
	// Exits counts usable Exit-flagged relays whose microdescriptor
	// allows some port; zero means only internal paths are possible.
	Exits int
}

// Enough reports whether Paths reaches threshold; a threshold of 0 or
// less means the consensus value (Threshold).
func (d DirInfo) Enough(threshold float64) bool {
	if threshold <= 0 {
		threshold = d.Threshold
	}
	return d.Paths >= threshold
}

// dirInfo computes DirInfo over nd's arrays; rejectsAll(i) tells whether
// relay i's microdescriptor exit policies reject every port.
func dirInfo(nd *NetDir, rejectsAll func(i int) bool) DirInfo {
	d := DirInfo{Relays: len(nd.flags), Threshold: float64(nd.params.Get(ParamMinPathsForCircsPct)) / 100}
	var tot, have [3]float64 // guard, middle, exit
	var cnt, cntHave [3]int
	for i, f := range nd.flags {
		if !f.Has(FlagRunning | FlagExtend2) {
			continue
		}
		d.Usable++
		md := f&FlagHasMicrodesc != 0
		if md {
			d.Present++
		}
		add := func(pos int, r Role, present bool) {
			w := float64(nd.Weight(r, RelayIndex(i)))
			tot[pos] += w
			cnt[pos]++
			if present {
				have[pos] += w
				cntHave[pos]++
			}
		}
		add(1, RoleMiddle, md)
		if f&FlagGuard != 0 {
			add(0, RoleGuard, md)
		}
		if f&FlagExit != 0 {
			ok := md && !rejectsAll(i)
			if ok {
				d.Exits++
			}
			add(2, RoleExit, ok)
		}
	}
	frac := func(pos int) float64 {
		switch {
		case cnt[pos] == 0:
			return 0
		case tot[pos] <= 0:
			return float64(cntHave[pos]) / float64(cnt[pos])
		}
		return have[pos] / tot[pos]
	}
	d.Guard, d.Middle, d.Exit = frac(0), frac(1), frac(2)
	pathExit := d.Exit
	if d.Exits == 0 && pathExit <= 0 {
		pathExit = d.Middle
	}
	d.Paths = d.Guard * d.Middle * pathExit
	return d
}
