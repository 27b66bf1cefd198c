package netdoc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/onionlite/onionlite/internal/realnet"
)

// addRealSeeds adds realnet files as fuzz seeds; missing data only means
// fewer seeds.
func addRealSeeds(f *testing.F, rels ...string) {
	dir, err := realnet.Dir()
	if err != nil {
		return
	}
	for _, rel := range rels {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			f.Add(b)
		}
	}
}

func FuzzParseConsensus(f *testing.F) {
	as := testAuths(f)
	body := testConsensusBody(as)
	f.Add(signConsensus(body, as, "sha256"))
	f.Add(signConsensus(body, as[:1], ""))
	f.Add([]byte("network-status-version 3 microdesc\nvote-status consensus\n"))
	addRealSeeds(f, artiSample)
	// The full 2026 consensus is 3.4 MB, too big to mutate quickly: seed
	// its header, first 8 relays and footer instead.
	if dir, err := realnet.Dir(); err == nil {
		if doc, err := os.ReadFile(filepath.Join(dir, path2026)); err == nil {
			cut := 0
			for k := 0; k <= 8; k++ {
				cut += bytes.Index(doc[cut+1:], []byte("\nr ")) + 1
			}
			foot := bytes.Index(doc, []byte("\ndirectory-footer\n"))
			f.Add(append(doc[:cut:cut], doc[foot:]...))
		}
	}
	trusted := authoritiesOf(as)
	certs := testCerts(f, as)
	f.Fuzz(func(t *testing.T, in []byte) {
		doc := bytes.Clone(in)
		u, err := ParseConsensus(doc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		c := u.DangerouslyAssumeChecked()
		for i := 1; i < len(c.Relays); i++ {
			if bytes.Compare(c.Relays[i-1].Identity[:], c.Relays[i].Identity[:]) >= 0 {
				t.Fatalf("relays out of order")
			}
		}
		if len(c.Signatures) == 0 || !c.ValidAfter.Before(c.FreshUntil) || !c.FreshUntil.Before(c.ValidUntil) {
			t.Fatalf("accepted a consensus without signatures or ordered times")
		}
		end := bytes.Index(doc, []byte("\ndirectory-signature ")) + len("\ndirectory-signature ")
		if u.Digests().SignedSHA256 != sha256.Sum256(doc[:end]) {
			t.Fatalf("signed part is not through the first directory-signature")
		}
		// Checking must never panic, whatever the result.
		_, _ = u.Check(c.ValidAfter, trusted, certs)
		_ = u.MissingCerts(trusted, certs)
		// Mutating the input afterwards does not change the result.
		nick := ""
		if len(c.Relays) > 0 {
			nick = c.Relays[0].Nickname
		}
		for i := range doc {
			doc[i] = 'x'
		}
		if len(c.Relays) > 0 && c.Relays[0].Nickname != nick {
			t.Fatalf("parsed value aliases the input")
		}
	})
}

func FuzzParseMicrodescs(f *testing.F) {
	f.Add([]byte(ntorA + "family $" + string(bytes.Repeat([]byte("AB"), 20)) + " Bob\np accept 80,443\np6 reject 1-65535\nid ed25519 " + string(bytes.Repeat([]byte("B"), 43)) + "\n"))
	f.Add([]byte("@last-listed 2026-01-02 03:04:05\nonion-key\n-----BEGIN RSA PUBLIC KEY-----\nMIGJAoGBAK47\n-----END RSA PUBLIC KEY-----\n" + ntorB + "family-ids ed25519:VrMuibHMUYh2rLQ70+rmqmyWWgQ1TXnxBCAw0VY/qSI\na [2001:db8::1]:443\n"))
	addRealSeeds(f, mds2026, artiSample+"--desc--d2d4", mds2019New)
	f.Fuzz(func(t *testing.T, batch []byte) {
		mds, err := ParseMicrodescs(batch)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("untyped error %v", err)
		}
		for i := range mds {
			m := &mds[i]
			if m.IPv4Policy == nil || m.IPv6Policy == nil {
				t.Fatalf("nil policy")
			}
			_ = m.IPv4Policy.Allows(443)
			_ = m.IPv6Policy.AllowsAny()
			_ = m.Ed25519FamilyIDs()
		}
		// Parsing is deterministic.
		again, _ := ParseMicrodescs(batch)
		if len(again) != len(mds) {
			t.Fatalf("non-deterministic")
		}
		for i := range mds {
			if again[i].Digest != mds[i].Digest {
				t.Fatalf("non-deterministic digest")
			}
		}
	})
}

func FuzzParseAuthCerts(f *testing.F) {
	as := testAuths(f)
	f.Add([]byte(as[0].cert(fixtureVA, fixtureVA.AddDate(1, 0, 0))))
	f.Add([]byte(as[1].certLabel(fixtureVA, fixtureVA.AddDate(1, 0, 0), "SIGNATURE")))
	addRealSeeds(f, certs2026, artiCertsAll)
	now := mustTime("2026-06-27 04:00:00")
	f.Fuzz(func(t *testing.T, doc []byte) {
		us, err := ParseAuthCerts(doc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, u := range us {
			if !bytes.Contains(doc, u.Raw()) {
				t.Fatalf("Raw is not a part of the input")
			}
			c, err := u.Check(now)
			if err == nil && (c.IdentityKey == nil || c.SigningKey == nil || now.After(c.Expires)) {
				t.Fatalf("bad checked certificate")
			}
		}
	})
}

func FuzzParseDirAuthority(f *testing.F) {
	for _, l := range defaultAuthorityLines {
		f.Add(l)
	}
	f.Add("DirAuthority auth0 orport=24000 no-v2 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF")
	f.Add("Serge orport=9001 bridge 66.111.2.131:9030 BA44 A889 E64B 93FA A2B1 14E0 2C2A 279A 8555 C533")
	f.Fuzz(func(t *testing.T, line string) {
		a, err := ParseDirAuthority(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		b, err := ParseDirAuthority(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %v", a.String(), err)
		}
		_, _ = ParseAuthorityFile(line)
	})
}

func FuzzParseAddresses(f *testing.F) {
	for _, s := range []string{"::1", "2001:db8::1", "::ffff:1.2.3.4", "1.2.3.4", "1:2:3:4:5:6:7:8", "[::1]:443", "1.2.3.4:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := netip.ParseAddr(s)
		got, ok := parseIPv6([]byte(s))
		if wantOK := werr == nil && want.Is6() && want.Zone() == ""; ok != wantOK || ok && got != want {
			t.Fatalf("parseIPv6(%q) = %v %v; netip says %v %v", s, got, ok, want, werr)
		}
		got4, ok4 := parseIPv4([]byte(s))
		if wantOK := werr == nil && want.Is4(); ok4 != wantOK || ok4 && got4 != want {
			t.Fatalf("parseIPv4(%q) = %v %v; netip says %v %v", s, got4, ok4, want, werr)
		}
		if ap, ok := parseAddrPort([]byte(s)); ok {
			if ap2, err := netip.ParseAddrPort(s); err != nil || ap2 != ap {
				t.Fatalf("parseAddrPort(%q) = %v; netip says %v %v", s, ap, ap2, err)
			}
		}
		_, _ = parseTime([]byte(s), []byte(s))
		_, _ = parseProtocols([]byte(s))
		_, _ = parsePortPolicy([]byte(s))
	})
}
