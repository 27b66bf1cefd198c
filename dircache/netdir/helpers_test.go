package netdir

import (
	"os"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/realnet"
)

// Real documents (../shared/testdata/realnet).
const (
	set2019      = "2019-12-15-full-md-set/"
	cons2019     = set2019 + "consensus-microdesc-2019-12-15-13-00-00"
	mds2019      = set2019 + "cached-microdescs"
	mds2019New   = set2019 + "cached-microdescs.new"
	set2021      = "2021-08-29-consensus-diffs/"
	cons2021at17 = set2021 + "consensus-microdesc-2021-08-29-17-00-00"
	cons2021at19 = set2021 + "consensus-microdesc-2021-08-29-19-00-00"
	mds2021      = set2021 + "cached-microdescs.new"
	set2026      = "2026-06-27-latest-consensus/"
	cons2026     = set2026 + "consensus-microdesc-2026-06-27-04-00-00"
	mds2026      = set2026 + "cached-microdescs.new"
)

// oldAuthorities are the pre-2025 identities of moria1, tor26 and
// Faravahar, which signed the 2019 and 2021 consensuses.
var oldAuthorities = map[string]string{
	"moria1":    "moria1 orport=9101 v3ident=D586D18309DED4CD6D57C18FDB97EFA96D330566 128.31.0.34:9131 9695DFC35FFEB861329B9F1AB04C46397020CE31",
	"tor26":     "tor26 orport=443 v3ident=14C131DFC5C6F93646BE72FA1401C02A8DF2E8B4 86.59.21.38:80 847B1F850344D7876491A54892F904934E4EB85D",
	"faravahar": "Faravahar orport=443 v3ident=EFCBE720AB3A82B99F9E953CD5BF50F7EEFC7B97 154.35.175.225:80 CF6D0AAFB385BE71B8E111FC5CFF4B47923733BC",
}

func authoritiesAt(t testing.TB, now time.Time) []netdoc.Authority {
	as := netdoc.DefaultAuthorities()
	if now.Year() >= 2025 {
		return as
	}
	for i, a := range as {
		if l, ok := oldAuthorities[a.Nickname]; ok {
			o, err := netdoc.ParseDirAuthority(l)
			if err != nil {
				t.Fatal(err)
			}
			as[i] = o
		}
	}
	return as
}

func readReal(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(realnet.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkedConsensus parses and checks a real consensus (with the certs
// beside it) at valid-after + 10 minutes.
func checkedConsensus(t testing.TB, rel string) *netdoc.Consensus {
	t.Helper()
	u, err := netdoc.ParseConsensus(readReal(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	now := u.ValidAfter().Add(10 * time.Minute)
	dir := rel[:len(rel)-len("consensus-microdesc-2019-12-15-13-00-00")]
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
	c, err := u.Check(now, authoritiesAt(t, now), acs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseMDs(t testing.TB, rel string) []netdoc.Microdesc {
	t.Helper()
	mds, err := netdoc.ParseMicrodescs(readReal(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return mds
}

// build makes a NetDir from c, prev and md batches.
func build(t testing.TB, c *netdoc.Consensus, prev *NetDir, batches ...[]netdoc.Microdesc) *NetDir {
	t.Helper()
	b, err := NewBuilder(c, prev)
	if err != nil {
		t.Fatal(err)
	}
	for _, mds := range batches {
		if _, err := b.AddMicrodescs(mds); err != nil {
			t.Fatal(err)
		}
	}
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// rng is a small deterministic generator (splitmix64) for tests.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
