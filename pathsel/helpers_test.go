package pathsel

import (
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/realnet"
)

const (
	set2019  = "2019-12-15-full-md-set/"
	cons2019 = set2019 + "consensus-microdesc-2019-12-15-13-00-00"
	set2026  = "2026-06-27-latest-consensus/"
	cons2026 = set2026 + "consensus-microdesc-2026-06-27-04-00-00"
)

func readReal(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(realnet.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkedConsensus checks a real consensus with the certificates beside
// it, at valid-after + 10 minutes, trusting the authorities of its era.
func checkedConsensus(t testing.TB, dir, rel string) *netdoc.Consensus {
	t.Helper()
	u, err := netdoc.ParseConsensus(readReal(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	now := u.ValidAfter().Add(10 * time.Minute)
	certs, err := netdoc.ParseAuthCerts(readReal(t, dir+"cached-certs"))
	if err != nil {
		t.Fatal(err)
	}
	var acs []*netdoc.AuthCert
	for _, c := range certs {
		if ac, err := c.Check(now); err == nil {
			acs = append(acs, ac)
		}
	}
	auths := netdoc.DefaultAuthorities()
	if now.Year() < 2025 {
		old := map[string]string{
			"moria1":    "moria1 orport=9101 v3ident=D586D18309DED4CD6D57C18FDB97EFA96D330566 128.31.0.34:9131 9695DFC35FFEB861329B9F1AB04C46397020CE31",
			"tor26":     "tor26 orport=443 v3ident=14C131DFC5C6F93646BE72FA1401C02A8DF2E8B4 86.59.21.38:80 847B1F850344D7876491A54892F904934E4EB85D",
			"faravahar": "Faravahar orport=443 v3ident=EFCBE720AB3A82B99F9E953CD5BF50F7EEFC7B97 154.35.175.225:80 CF6D0AAFB385BE71B8E111FC5CFF4B47923733BC",
		}
		for i, a := range auths {
			if l, ok := old[a.Nickname]; ok {
				if auths[i], err = netdoc.ParseDirAuthority(l); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	c, err := u.Check(now, auths, acs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseMDs(t testing.TB, rel string) []netdoc.Microdesc {
	t.Helper()
	mds, err := netdoc.ParseMicrodescs(readReal(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return mds
}

func buildND(t testing.TB, c *netdoc.Consensus, mds []netdoc.Microdesc) *netdir.NetDir {
	t.Helper()
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMicrodescs(mds); err != nil {
		t.Fatal(err)
	}
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// real2019 is the complete real 2019 set: every microdescriptor, real
// family lines.
type dirSet struct {
	c   *netdoc.Consensus
	mds []*netdoc.Microdesc // by consensus index
	nd  *netdir.NetDir
}

func load2019(t testing.TB) dirSet {
	c := checkedConsensus(t, set2019, cons2019)
	mds := append(parseMDs(t, set2019+"cached-microdescs"), parseMDs(t, set2019+"cached-microdescs.new")...)
	return newDirSet(t, c, mds)
}

// load2026 is the real 9,609-relay 2026 consensus with its 51 real
// microdescriptors and SYNTHETIC ones for every other relay
// (netdirtest.Microdescs: random keys, real policies for Exit relays,
// real family lines from the 2025 and 2026 samples).
func load2026(t testing.TB) dirSet {
	c := checkedConsensus(t, set2026, cons2026)
	real := append(parseMDs(t, set2026+"cached-microdescs.new"), parseMDs(t, "2025-05-17-modern-md-sample/cached-microdescs.new")...)
	return newDirSet(t, c, netdirtest.Microdescs(c, real, 2026))
}

func newDirSet(t testing.TB, c *netdoc.Consensus, mds []netdoc.Microdesc) dirSet {
	rel, _ := netdoc.MatchMicrodescs(c, mds)
	by := make([]*netdoc.Microdesc, len(c.Relays))
	for k, i := range rel {
		if i >= 0 {
			by[i] = &mds[k]
		}
	}
	return dirSet{c: c, mds: by, nd: buildND(t, c, mds)}
}

// refWeight is the selection weight of relay i for position p written
// from the specs and C tor's compute_weighted_bandwidths, in floating
// point, straight from the consensus and microdescriptors: candidates
// are Running, Valid, EXTEND2, with a microdescriptor; guards have Guard
// (not MiddleOnly), exits are not BadExit/MiddleOnly and accept some
// port, directory caches have V2Dir.
func (d dirSet) refWeight(p Position, i int) float64 {
	rs, md := &d.c.Relays[i], d.mds[i]
	if rs.Flags&(netdoc.FlagRunning|netdoc.FlagValid) != netdoc.FlagRunning|netdoc.FlagValid || md == nil ||
		(rs.Protocols != nil && !rs.Protocols.Supports(netdoc.ProtoRelay, 2)) {
		return 0
	}
	mo := rs.Flags&netdoc.FlagMiddleOnly != 0
	guard := rs.Flags&netdoc.FlagGuard != 0 && !mo
	exit := rs.Flags&netdoc.FlagExit != 0 && rs.Flags&netdoc.FlagBadExit == 0 && !mo
	dir := rs.Flags&netdoc.FlagV2Dir != 0 && !mo
	var prefix string
	switch p {
	case PosGuard:
		if !guard {
			return 0
		}
		prefix = "Wg"
	case PosMiddle:
		prefix = "Wm"
	case PosExit:
		if rs.Flags&netdoc.FlagBadExit != 0 || mo || (!md.IPv4Policy.AllowsAny() && !md.IPv6Policy.AllowsAny()) {
			return 0
		}
		prefix = "We"
	case PosDir:
		if !dir {
			return 0
		}
		prefix = "Wb"
	}
	bw := d.c.BandwidthWeights
	w := func(n string) float64 { return float64(bw.Get(n, -1)) / 10000 }
	var pos, db float64
	switch {
	case guard && exit:
		pos, db = w(prefix+"d"), w("Wdb")
	case guard:
		pos, db = w(prefix+"g"), w("Wgb")
	case exit:
		pos, db = w(prefix+"e"), w("Web")
		if p == PosGuard {
			pos = 0
		}
	default:
		pos, db = w(prefix+"m"), w("Wmb")
	}
	if dir && p != PosDir {
		pos *= db
	}
	return pos * float64(rs.Bandwidth)
}

// chiSquare compares observed counts per relay with expected weights.
// Relays are sorted by expected count and grouped into bins of at least
// minExpected expected draws; a draw of a relay with expected weight 0
// is an immediate failure. It returns the statistic, the degrees of
// freedom and the critical value at p = 0.001.
func chiSquare(t *testing.T, counts []int, weights []float64, minExpected float64) (stat float64, df int, crit float64) {
	t.Helper()
	var total float64
	draws := 0
	for i, w := range weights {
		total += w
		draws += counts[i]
		if w == 0 && counts[i] > 0 {
			t.Fatalf("relay %d has weight 0 but was chosen %d times", i, counts[i])
		}
	}
	idx := make([]int, 0, len(weights))
	for i, w := range weights {
		if w > 0 {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return weights[idx[a]] > weights[idx[b]] })
	var bins [][2]float64 // observed, expected
	var o, e float64
	for _, i := range idx {
		o += float64(counts[i])
		e += float64(draws) * weights[i] / total
		if e >= minExpected {
			bins = append(bins, [2]float64{o, e})
			o, e = 0, 0
		}
	}
	if e > 0 { // fold the remainder into the last bin
		bins[len(bins)-1][0] += o
		bins[len(bins)-1][1] += e
	}
	for _, b := range bins {
		stat += (b[0] - b[1]) * (b[0] - b[1]) / b[1]
	}
	df = len(bins) - 1
	// Wilson–Hilferty: the chi-square quantile from the normal quantile
	// z(0.999) = 3.0902; accurate to well under 1% for df >= 30.
	k := float64(df)
	crit = k * math.Pow(1-2/(9*k)+3.090232*math.Sqrt(2/(9*k)), 3)
	return stat, df, crit
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }
