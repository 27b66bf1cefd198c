package netdoc

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/realnet"
)

// realDoc reads a realnet file, skipping (or failing in CI) when the data
// is missing.
func realDoc(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(realnet.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realConsensus describes a real consensus and the certificates beside it.
type realConsensus struct {
	name                 string
	consensus            string
	certs                string
	relays               int
	method               int
	now                  time.Time // a time inside the validity
	signedSHA3, fullSHA3 string
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

var realConsensuses = []realConsensus{
	{"2019", "2019-12-15-full-md-set/consensus-microdesc-2019-12-15-13-00-00", "2019-12-15-full-md-set/cached-certs",
		6345, 29, mustTime("2019-12-15 13:20:00"),
		"8020C7A1C93616A0ED0B5F8D3908D8BEC62BAA490CA0BF23832956E0CDF8AA3C", "F49B86F1DDB706432D396C99B9D0A6DF83D88B36F98C27795C1439283C459F82"},
	{"2021-08-26", "2021-08-29-consensus-diffs/consensus-microdesc-2021-08-26-19-00-00", "2021-08-29-consensus-diffs/cached-certs",
		6768, 30, mustTime("2021-08-26 19:30:00"),
		"F45CBD0C54ED1A575CA52212CBEF08A5D052C44EC2BDDF00D0B6419A95E53985", ""},
	{"2021-08-29-17", "2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-17-00-00", "2021-08-29-consensus-diffs/cached-certs",
		6733, 0, mustTime("2021-08-29 17:59:59"),
		"ED4942C91560A740AAFC53927A0144A2216CDDBEE4CE41F0C6FCDCC8E86FA1ED", ""},
	{"2021-08-29-19", "2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-19-00-00", "2021-08-29-consensus-diffs/cached-certs",
		6727, 0, mustTime("2021-08-29 21:00:00"),
		"329DFC71E78BCB19FC116B88C169B0AE2C05B6277B97294DBCEA127738A40AFD", "60A8C62783E69EE751C288D37E33D271A842C354818993823E79925603240E80"},
	{"2025", "2025-05-17-modern-md-sample/consensus-microdesc-2025-05-17-22-00-00", "2025-05-17-modern-md-sample/cached-certs",
		8557, 33, mustTime("2025-05-17 22:00:00"),
		"", ""},
	{"2026", "2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00", "2026-06-27-latest-consensus/cached-certs",
		9609, 35, mustTime("2026-06-27 04:30:00"),
		"7BBB862C690B2EE5F5C2B97A9EB3E7DA828A0508E189D511DE366BF57F2A00A4", ""},
}

const (
	path2026      = "2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00"
	certs2026     = "2026-06-27-latest-consensus/cached-certs"
	path2019      = "2019-12-15-full-md-set/consensus-microdesc-2019-12-15-13-00-00"
	certs2019     = "2019-12-15-full-md-set/cached-certs"
	artiSample    = "2026-07-27-arti-trimmed-sample/consensus-microdesc"
	artiCertsAll  = "authority-certs/authcert-all-arti-2026"
	mds2019       = "2019-12-15-full-md-set/cached-microdescs"
	mds2019New    = "2019-12-15-full-md-set/cached-microdescs.new"
	mds2025       = "2025-05-17-modern-md-sample/cached-microdescs.new"
	mds2026       = "2026-06-27-latest-consensus/cached-microdescs.new"
	consensus2025 = "2025-05-17-modern-md-sample/consensus-microdesc-2025-05-17-22-00-00"
)

// checkedCerts parses every certificate in a realnet file, requires all
// of them to be correctly signed, and returns those live at now. (Tor's
// caches hold certificates published ahead of use: the 2021 cached-certs
// has a tor26 certificate published 2021-09-01.)
func checkedCerts(t testing.TB, rel string, now time.Time) []*AuthCert {
	t.Helper()
	us, err := ParseAuthCerts(realDoc(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	var out []*AuthCert
	for _, u := range us {
		if err := u.CheckSignatures(); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		c, err := u.Check(now)
		if err != nil {
			if !errors.Is(err, ErrNotYetValid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("%s: %v", rel, err)
			}
			continue
		}
		out = append(out, c)
	}
	return out
}
