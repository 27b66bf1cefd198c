package netdoc

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRealConsensusesVerify(t *testing.T) {
	for _, rc := range realConsensuses {
		t.Run(rc.name, func(t *testing.T) {
			doc := realDoc(t, rc.consensus)
			u, err := ParseConsensus(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.NumRelays(); got != rc.relays {
				t.Errorf("relays = %d, want %d", got, rc.relays)
			}
			d := u.Digests()
			if rc.signedSHA3 != "" && fmt.Sprintf("%X", d.SignedSHA3) != rc.signedSHA3 {
				t.Errorf("signed SHA3 = %X, want %s", d.SignedSHA3, rc.signedSHA3)
			}
			if rc.fullSHA3 != "" && fmt.Sprintf("%X", d.FullSHA3) != rc.fullSHA3 {
				t.Errorf("full SHA3 = %X, want %s", d.FullSHA3, rc.fullSHA3)
			}
			certs := checkedCerts(t, rc.certs, rc.now)
			if m := u.MissingCerts(authoritiesAt(rc.now), certs); len(m) != 0 {
				t.Errorf("MissingCerts = %X, want none", m)
			}
			c, err := u.Check(rc.now, authoritiesAt(rc.now), certs)
			if err != nil {
				t.Fatal(err)
			}
			if rc.method != 0 && c.ConsensusMethod != rc.method {
				t.Errorf("consensus-method = %d, want %d", c.ConsensusMethod, rc.method)
			}
			if n := len(c.SignedBy()); n != 9 {
				t.Errorf("valid signatures from %d authorities, want 9", n)
			}
			for _, r := range c.Verified {
				if r.Status != SigValid {
					t.Errorf("signature %X: %v", r.Key.Identity, r.Status)
				}
			}
			if len(c.Authorities) < 9 {
				t.Errorf("%d dir-sources", len(c.Authorities))
			}
		})
	}
}

// authoritiesAt gives the authorities that signed the consensuses
// of a given era: the 2026 list, plus the pre-rotation identities of
// moria1, tor26 and Faravahar for older documents.
func authoritiesAt(now time.Time) []Authority {
	as := DefaultAuthorities()
	if now.Year() >= 2025 {
		return as
	}
	old := map[string]string{
		"moria1":    "moria1 orport=9101 v3ident=D586D18309DED4CD6D57C18FDB97EFA96D330566 128.31.0.34:9131 9695DFC35FFEB861329B9F1AB04C46397020CE31",
		"tor26":     "tor26 orport=443 v3ident=14C131DFC5C6F93646BE72FA1401C02A8DF2E8B4 86.59.21.38:80 847B1F850344D7876491A54892F904934E4EB85D",
		"faravahar": "Faravahar orport=443 v3ident=EFCBE720AB3A82B99F9E953CD5BF50F7EEFC7B97 154.35.175.225:80 CF6D0AAFB385BE71B8E111FC5CFF4B47923733BC",
	}
	for i, a := range as {
		if l, ok := old[a.Nickname]; ok {
			o, err := ParseDirAuthority(l)
			if err != nil {
				panic(err)
			}
			as[i] = o
		}
	}
	return as
}

func TestConsensus2026Fields(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, path2026))
	if err != nil {
		t.Fatal(err)
	}
	c := u.DangerouslyAssumeChecked()
	if c.Flavor != "microdesc" || c.ConsensusMethod != 35 {
		t.Errorf("flavor %q method %d", c.Flavor, c.ConsensusMethod)
	}
	if !c.ValidAfter.Equal(mustTime("2026-06-27 04:00:00")) || !c.FreshUntil.Equal(mustTime("2026-06-27 05:00:00")) || !c.ValidUntil.Equal(mustTime("2026-06-27 07:00:00")) {
		t.Errorf("times %v %v %v", c.ValidAfter, c.FreshUntil, c.ValidUntil)
	}
	if c.VoteDelay != 300*time.Second || c.DistDelay != 300*time.Second {
		t.Errorf("voting-delay %v %v", c.VoteDelay, c.DistDelay)
	}
	if len(c.ClientVersions) != 8 || c.ClientVersions[0] != "0.4.9.4-rc" {
		t.Errorf("client-versions %q", c.ClientVersions)
	}
	if strings.Join(c.KnownFlags, " ") != "Authority BadExit Exit Fast Guard HSDir MiddleOnly NoEdConsensus Running Stable StaleDesc Sybil V2Dir Valid" {
		t.Errorf("known-flags %q", c.KnownFlags)
	}
	if got := c.RequiredClientProtocols.String(); got != "Cons=2 Desc=2 FlowCtrl=1 Link=4 Microdesc=2 Relay=2" {
		t.Errorf("required-client-protocols %q", got)
	}
	if got := c.RecommendedRelayProtocols.String(); got != "Cons=2 Desc=2 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=2 Link=4-5 LinkAuth=3 Microdesc=2 Relay=2-4" {
		t.Errorf("recommended-relay-protocols %q", got)
	}
	if c.Params.Get("cc_alg", -1) != 2 || c.Params.Get("circ_max_cell_queue_size", -1) != 1750 || c.Params.Get("nope", -7) != -7 {
		t.Errorf("params %v", c.Params)
	}
	if c.SharedRandCur == nil || c.SharedRandCur.NumReveals != 9 || c.SharedRandPrev == nil {
		t.Errorf("shared rand %+v %+v", c.SharedRandPrev, c.SharedRandCur)
	}
	if c.BandwidthWeights.Get("Wgg", 0) != 5671 || c.BandwidthWeights.Get("Wmd", 0) != 228 || len(c.BandwidthWeights) != 19 {
		t.Errorf("bandwidth-weights %v", c.BandwidthWeights)
	}
	if len(c.Authorities) != 9 {
		t.Fatalf("%d dir-sources", len(c.Authorities))
	}
	m := c.Authorities[8]
	if m.Nickname != "moria1" || fmt.Sprintf("%X", m.Identity) != "F533C81CEF0BC0267857C99B2F471ADF249FA232" ||
		m.IP.String() != "128.31.0.39" || m.DirPort != 9231 || m.ORPort != 9201 || m.Contact != "1024D/EB5A896A28988BF5 arma mit edu" ||
		fmt.Sprintf("%X", m.VoteDigest) != "4E4A658874F741B466830FB40C8904187398477B" {
		t.Errorf("moria1 dir-source %+v", m)
	}
	if len(c.Signatures) != 9 || c.Signatures[0].Algorithm != DigestSHA256 {
		t.Errorf("signatures %d", len(c.Signatures))
	}

	var guard, exit, badexit, middle, ipv6 int
	for _, r := range c.Relays {
		if r.Flags.Has(FlagGuard) {
			guard++
		}
		if r.Flags.Has(FlagExit) {
			exit++
		}
		if r.Flags.Has(FlagBadExit) {
			badexit++
		}
		if r.Flags.Has(FlagMiddleOnly) {
			middle++
		}
		if r.IPv6.IsValid() {
			ipv6++
		}
		if !r.Flags.Has(FlagRunning | FlagValid) {
			t.Errorf("%s lacks Running Valid", r.Nickname)
		}
	}
	// Counts from the realnet README (its 2685 "Exit" counted the
	// substring, BadExit included; 2614 relays have the Exit flag).
	if guard != 5627 || exit != 2614 || badexit != 76 || middle != 70 || ipv6 != 4854 {
		t.Errorf("guard %d exit %d badexit %d middleonly %d ipv6 %d", guard, exit, badexit, middle, ipv6)
	}

	r0 := c.Relays[0]
	if r0.Nickname != "lisdex" || fmt.Sprintf("%X", r0.Identity[:3]) != "000004" ||
		r0.Addr.String() != "152.53.144.50:8443" || r0.DirPort != 0 ||
		r0.IPv6.String() != "[2a0a:4cc0:c1:2aac::1]:8443" || r0.Bandwidth != 59000 || !r0.HasWeight || r0.Unmeasured ||
		r0.Version != "Tor 0.4.9.9" || r0.Flags != FlagFast|FlagGuard|FlagRunning|FlagStable|FlagV2Dir|FlagValid ||
		!r0.Published().Equal(mustTime("2038-01-01 00:00:00")) {
		t.Errorf("first relay %+v", r0)
	}
	if !r0.Protocols.Supports(ProtoRelay, 6) || r0.Protocols.Supports(ProtoRelay, 7) || !r0.Protocols.Supports(ProtoConflux, 1) ||
		r0.Protocols.Mask(ProtoLink) != 0b111000 {
		t.Errorf("protocols %v", r0.Protocols)
	}
	if c.Relays[1].Protocols != r0.Protocols {
		t.Errorf("identical pr lines are not interned")
	}
	if !c.RequiredClientProtocols.Covers(c.RequiredClientProtocols) || c.RequiredClientProtocols.Covers(c.RecommendedRelayProtocols) {
		t.Errorf("Covers")
	}
	md := mustB64(t, "MZjFbMLLC+a+LTqejOFlnJWdO6bIPXr0vWWPZQQVihY")
	if !bytes.Equal(r0.MicrodescDigest[:], md) {
		t.Errorf("m digest %X", r0.MicrodescDigest)
	}
	if i, ok := c.RelayByIdentity(c.Relays[4321].Identity); !ok || i != 4321 {
		t.Errorf("RelayByIdentity = %d %v", i, ok)
	}
	if _, ok := c.RelayByIdentity([20]byte{1}); ok {
		t.Errorf("RelayByIdentity found a missing relay")
	}
}

func TestConsensus2021PublishedTimes(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, "2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-19-00-00"))
	if err != nil {
		t.Fatal(err)
	}
	r := u.DangerouslyAssumeChecked().Relays[0]
	if r.Nickname != "lyesn" || !r.Published().Equal(mustTime("2021-08-29 18:37:03")) {
		t.Errorf("first relay %s published %v", r.Nickname, r.Published())
	}
}

func TestArtiSampleParsesButFailsVerification(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, artiSample))
	if err != nil {
		t.Fatal(err)
	}
	if u.NumRelays() != 5 {
		t.Errorf("relays = %d", u.NumRelays())
	}
	now := mustTime("2026-07-27 10:30:00")
	us, err := ParseAuthCerts(realDoc(t, artiCertsAll))
	if err != nil {
		t.Fatal(err)
	}
	var certs []*AuthCert
	for _, uc := range us {
		if err := uc.CheckSignatures(); err != nil {
			t.Fatal(err)
		}
		if c, err := uc.Check(now); err == nil {
			certs = append(certs, c)
		}
	}
	// Also offer the 2026 cached-certs, which hold the signing keys of
	// that period.
	certs = append(certs, checkedCerts(t, certs2026, mustTime("2026-06-27 04:30:00"))...)
	_, err = u.Check(now, DefaultAuthorities(), certs)
	if !errors.Is(err, ErrTooFewSignatures) {
		t.Fatalf("trimmed sample: err = %v, want ErrTooFewSignatures", err)
	}
	var se *SignatureError
	if !errors.As(err, &se) || se.Valid != 0 || se.Configured != 9 || se.Needed != 5 {
		t.Errorf("SignatureError %+v", se)
	}
}

func mustB64(t testing.TB, s string) []byte {
	var b [32]byte
	if !parseB64Fixed(b[:], []byte(s)) {
		t.Fatalf("bad base64 %q", s)
	}
	return b[:]
}
