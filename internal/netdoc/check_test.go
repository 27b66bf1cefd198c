package netdoc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSyntheticConsensusThresholds(t *testing.T) {
	as := testAuths(t)
	trusted := authoritiesOf(as)
	certs := testCerts(t, as)
	now := fixtureVA.Add(5 * time.Minute)
	body := testConsensusBody(as)
	for _, tt := range []struct {
		name    string
		signers []*testAuth
		alg     string
		ok      bool
		valid   int
	}{
		{"3 of 3 sha256", as, "sha256", true, 3},
		{"2 of 3 sha1", as[:2], "sha1", true, 2},
		{"2 of 3 implicit sha1", as[1:], "", true, 2},
		{"1 of 3", as[:1], "sha256", false, 1},
		{"same authority twice counts once", []*testAuth{as[0], as[0]}, "sha256", false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseConsensus(signConsensus(body, tt.signers, tt.alg))
			if err != nil {
				t.Fatal(err)
			}
			c, err := u.Check(now, trusted, certs)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(c.SignedBy()) != tt.valid {
					t.Errorf("signed by %v", c.SignedBy())
				}
				return
			}
			var se *SignatureError
			if !errors.As(err, &se) || !errors.Is(err, ErrTooFewSignatures) {
				t.Fatalf("err = %v, want *SignatureError", err)
			}
			if se.Valid != tt.valid || se.Needed != 2 || se.Configured != 3 {
				t.Errorf("valid %d needed %d configured %d", se.Valid, se.Needed, se.Configured)
			}
			if errors.Is(err, ErrBadSignature) || errors.Is(err, ErrMissingCerts) {
				t.Errorf("unexpected sentinel in %v", err)
			}
		})
	}

	// The threshold follows the configured set, never a fixed 9: with one
	// configured authority, its signature alone is enough; with five (two
	// of which never sign), three signatures are needed.
	u, err := ParseConsensus(signConsensus(body, as[:1], "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, trusted[:1], certs); err != nil {
		t.Errorf("1 of 1 configured: %v", err)
	}
	extra := append(append([]Authority{}, trusted...), DefaultAuthorities()[:2]...)
	u, err = ParseConsensus(signConsensus(body, as, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, extra, certs); err != nil {
		t.Errorf("3 of 5 configured: %v", err)
	}
	u, err = ParseConsensus(signConsensus(body, as[:2], "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, extra, certs); !errors.Is(err, ErrTooFewSignatures) {
		t.Errorf("2 of 5 configured: err = %v", err)
	}
	// Bridge authorities and duplicates do not count.
	bridge, err := ParseDirAuthority("Serge orport=9001 bridge 66.111.2.131:9030 BA44 A889 E64B 93FA A2B1 14E0 2C2A 279A 8555 C533")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, append([]Authority{bridge, trusted[0], trusted[0]}, trusted...), certs); err != nil {
		t.Errorf("2 of 3 with a bridge authority and duplicates: %v", err)
	}
	if _, err := u.Check(now, []Authority{bridge}, certs); !errors.Is(err, ErrNoAuthorities) {
		t.Errorf("bridge only: err = %v", err)
	}
}

func TestSyntheticCertificateFailures(t *testing.T) {
	as := testAuths(t)
	trusted := authoritiesOf(as)
	now := fixtureVA.Add(5 * time.Minute)
	u, err := ParseConsensus(signConsensus(testConsensusBody(as), as, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	good := testCerts(t, as)

	t.Run("expired certificate", func(t *testing.T) {
		// as[0]'s certificate expired a minute before now; as[1]'s is fine.
		exp := checkedTestCert(t, as[0].cert(now.AddDate(-1, 0, 0), now.Add(-time.Minute)), now.Add(-time.Hour))
		_, err := u.Check(now, trusted[:2], []*AuthCert{exp, good[1]})
		if !errors.Is(err, ErrTooFewSignatures) || !errors.Is(err, ErrCertExpired) {
			t.Fatalf("err = %v, want too few signatures with an expired certificate", err)
		}
		// And the certificate itself no longer checks.
		us, _ := ParseAuthCerts([]byte(as[0].cert(now.AddDate(-1, 0, 0), now.Add(-time.Minute))))
		if _, err := us[0].Check(now); !errors.Is(err, ErrExpired) {
			t.Errorf("cert Check: err = %v, want ErrExpired", err)
		}
	})
	t.Run("certificate from the far future", func(t *testing.T) {
		us, _ := ParseAuthCerts([]byte(as[0].cert(now.AddDate(0, 2, 0), now.AddDate(1, 0, 0))))
		if _, err := us[0].Check(now); !errors.Is(err, ErrNotYetValid) {
			t.Errorf("cert Check: err = %v, want ErrNotYetValid", err)
		}
	})
	t.Run("wrong certificate", func(t *testing.T) {
		// Certificates of other authorities, and as[0]'s identity with
		// as[1]'s signing key, do not stand in for the real ones.
		mixed := &testAuth{name: "mixed", id: as[0].id, sign: as[1].sign, v3: as[0].v3}
		wrong := checkedTestCert(t, mixed.cert(fixtureVA.AddDate(0, -1, 0), fixtureVA.AddDate(1, 0, 0)), now)
		_, err := u.Check(now, trusted, []*AuthCert{wrong, good[2]})
		if !errors.Is(err, ErrTooFewSignatures) || !errors.Is(err, ErrMissingCerts) {
			t.Fatalf("err = %v, want missing certificates", err)
		}
		missing := u.MissingCerts(trusted, []*AuthCert{wrong, good[2]})
		if len(missing) != 2 || missing[0].Identity != as[0].v3 || missing[0].SigningKeyDigest != as[0].signingDigest() || missing[1].Identity != as[1].v3 {
			t.Errorf("MissingCerts = %X", missing)
		}
		if m := u.MissingCerts(trusted[:1], nil); len(m) != 1 {
			t.Errorf("MissingCerts counts untrusted signers: %X", m)
		}
	})
	t.Run("signature by a signing key under a foreign certificate", func(t *testing.T) {
		// A certificate for as[2]'s identity claiming as[0]'s signing key
		// cannot be made without as[2]'s identity key: the certification
		// fails.
		text := as[2].cert(fixtureVA.AddDate(0, -1, 0), fixtureVA.AddDate(1, 0, 0))
		text = strings.Replace(text, pemBlock("RSA PUBLIC KEY", derOf(as[2].sign)), pemBlock("RSA PUBLIC KEY", derOf(as[0].sign)), 1)
		us, err := ParseAuthCerts([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := us[0].CheckSignatures(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("err = %v, want ErrBadSignature", err)
		}
	})
}

func TestRealConsensusTamperedSignedPart(t *testing.T) {
	doc := realDoc(t, path2026)
	now := mustTime("2026-06-27 04:30:00")
	certs := checkedCerts(t, certs2026, now)
	sigStart := bytes.Index(doc, []byte("\ndirectory-signature "))
	for _, tt := range []struct {
		name, old, new string
	}{
		{"header param", "cc_alg=2", "cc_alg=3"},
		{"first relay bandwidth", "w Bandwidth=59000", "w Bandwidth=59001"},
		{"relay flag", "s Fast Guard Running Stable V2Dir Valid\nv Tor 0.4.9.9\npr Conflux=1 Cons=1-2 Desc=1-4 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=3-5 LinkAuth=3 Microdesc=1-3 Padding=2 Relay=2-6\nw Bandwidth=59000",
			"s Exit Fast Guard Running Stable V2Dir Valid\nv Tor 0.4.9.9\npr Conflux=1 Cons=1-2 Desc=1-4 DirCache=2 FlowCtrl=1-2 HSDir=2 HSIntro=4-5 HSRend=1-2 Link=3-5 LinkAuth=3 Microdesc=1-3 Padding=2 Relay=2-6\nw Bandwidth=59000"},
		{"microdesc digest", "m MZjFbMLLC+a+LTqejOFlnJWdO6bIPXr0vWWPZQQVihY", "m NZjFbMLLC+a+LTqejOFlnJWdO6bIPXr0vWWPZQQVihY"},
		{"bandwidth weights", "Wgg=5671", "Wgg=5672"},
		{"valid-until", "valid-until 2026-06-27 07:00:00", "valid-until 2026-06-27 08:00:00"},
		{"contact", "contact Peter Palfrader", "contact Peter Palfradeq"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := bytes.Index(doc, []byte(tt.old))
			if i < 0 || i > sigStart {
				t.Fatalf("%q not in the signed part", tt.old)
			}
			mod := append(append(append([]byte{}, doc[:i]...), tt.new...), doc[i+len(tt.old):]...)
			u, err := ParseConsensus(mod)
			if err != nil {
				t.Fatal(err)
			}
			_, err = u.Check(now, DefaultAuthorities(), certs)
			if !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrTooFewSignatures) {
				t.Fatalf("err = %v, want bad signatures", err)
			}
			var se *SignatureError
			errors.As(err, &se)
			if se.Valid != 0 || se.count(SigBad) != 9 {
				t.Errorf("%d valid, %d bad", se.Valid, se.count(SigBad))
			}
		})
	}
	// Every single byte of the signed part matters: flip bytes spread
	// over the signed part (each keeping the document parseable or not)
	// and require that the document never verifies.
	for k := 0; k < 16; k++ {
		i := k * sigStart / 16
		mod := bytes.Clone(doc)
		mod[i] ^= 0x01
		u, err := ParseConsensus(mod)
		if err != nil {
			continue // rejected by the parser: also fine
		}
		if _, err := u.Check(now, DefaultAuthorities(), certs); err == nil {
			t.Errorf("byte %d flipped: consensus still verifies", i)
		}
	}
}

func TestRealConsensusUnsignedPartChanges(t *testing.T) {
	doc := realDoc(t, path2026)
	now := mustTime("2026-06-27 04:30:00")
	certs := checkedCerts(t, certs2026, now)
	// Corrupt one signature object: that signature is bad, 8 remain.
	i := bytes.Index(doc, []byte("QFR50ZMezPr8oFVQ1sz50kLUOFAMoxuU2"))
	mod := bytes.Clone(doc)
	mod[i] = 'R'
	u, err := ParseConsensus(mod)
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Check(now, DefaultAuthorities(), certs)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SignedBy()) != 8 || c.Verified[0].Status != SigBad || c.Verified[0].Authority != "dannenberg" {
		t.Errorf("signed by %v; first %+v", c.SignedBy(), c.Verified[0])
	}
	if u.Digests().SignedSHA256 != sha256.Sum256(doc[:bytes.Index(doc, []byte("\ndirectory-signature "))+len("\ndirectory-signature ")]) {
		t.Errorf("signed-part digest changed with the signature")
	}
	// Keep only five signatures: still more than half of nine.
	cut := 0
	for k := 0; k < 5; k++ {
		cut += bytes.Index(doc[cut:], []byte("-----END SIGNATURE-----\n")) + len("-----END SIGNATURE-----\n")
	}
	u, err = ParseConsensus(doc[:cut])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, DefaultAuthorities(), certs); err != nil {
		t.Errorf("5 of 9 signatures: %v", err)
	}
	cut = bytes.LastIndex(doc[:cut-1], []byte("-----END SIGNATURE-----\n")) + len("-----END SIGNATURE-----\n")
	u, err = ParseConsensus(doc[:cut])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(now, DefaultAuthorities(), certs); !errors.Is(err, ErrTooFewSignatures) {
		t.Errorf("4 of 9 signatures: err = %v", err)
	}
	// Only four certificates for nine signatures.
	if _, err := ParseConsensus(doc); err != nil {
		t.Fatal(err)
	}
	u, _ = ParseConsensus(doc)
	_, err = u.Check(now, DefaultAuthorities(), certs[:4])
	var se *SignatureError
	if !errors.As(err, &se) || se.Valid != 4 || !errors.Is(err, ErrMissingCerts) || len(u.MissingCerts(DefaultAuthorities(), certs[:4])) != 5 {
		t.Errorf("4 certs: err = %v", err)
	}
}

func TestConsensusTimeWindow(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, path2026))
	if err != nil {
		t.Fatal(err)
	}
	va, vu := u.ValidAfter(), u.ValidUntil()
	certs := checkedCerts(t, certs2026, va)
	for _, tt := range []struct {
		name string
		now  time.Time
		tol  Tolerance
		want error
	}{
		{"at valid-after", va, Tolerance{}, nil},
		{"at valid-until", vu, Tolerance{}, nil},
		{"fresh", u.FreshUntil().Add(-time.Second), Tolerance{}, nil},
		{"one second early", va.Add(-time.Second), Tolerance{}, ErrNotYetValid},
		{"one second late", vu.Add(time.Second), Tolerance{}, ErrExpired},
		{"a year late", vu.AddDate(1, 0, 0), Tolerance{}, ErrExpired},
		{"23h late, reasonably live", vu.Add(23 * time.Hour), ReasonablyLive, nil},
		{"25h late, reasonably live", vu.Add(25 * time.Hour), ReasonablyLive, ErrExpired},
		{"23h early, reasonably live", va.Add(-23 * time.Hour), ReasonablyLive, nil},
		{"25h early, reasonably live", va.Add(-25 * time.Hour), ReasonablyLive, ErrNotYetValid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := u.CheckWithTolerance(tt.now, DefaultAuthorities(), certs, tt.tol)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWrongEraCertificates(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, path2026))
	if err != nil {
		t.Fatal(err)
	}
	now := mustTime("2026-06-27 04:30:00")
	old := checkedCerts(t, certs2019, mustTime("2019-12-15 13:00:00"))
	_, err = u.Check(now, DefaultAuthorities(), old)
	if !errors.Is(err, ErrTooFewSignatures) || !errors.Is(err, ErrMissingCerts) {
		t.Fatalf("err = %v", err)
	}
	if m := u.MissingCerts(DefaultAuthorities(), old); len(m) != 9 {
		t.Errorf("MissingCerts = %d, want 9", len(m))
	}
	// 2019's authority list (old moria1/tor26/Faravahar identities)
	// trusts only six of 2026's signers: still enough with the right
	// certificates, because six of nine is more than half.
	certs := checkedCerts(t, certs2026, now)
	c, err := u.Check(now, authoritiesAt(mustTime("2019-12-15 13:00:00")), certs)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := 0
	for _, r := range c.Verified {
		if r.Status == SigUntrusted {
			untrusted++
		}
	}
	if len(c.SignedBy()) != 6 || untrusted != 3 {
		t.Errorf("signed by %v, %d untrusted", c.SignedBy(), untrusted)
	}
}

func TestVerifyRawShortSignature(t *testing.T) {
	a := testAuths(t)[0]
	pub := &a.sign.PublicKey
	for i := 0; i < 4096; i++ {
		d := sha256.Sum256([]byte(fmt.Sprint(i)))
		sig := signRaw(a.sign, d[:])
		if sig[0] != 0 {
			continue
		}
		if !verifyRaw(pub, d[:], sig) || !verifyRaw(pub, d[:], sig[1:]) {
			t.Fatalf("signature with leading zero byte dropped does not verify")
		}
		if verifyRaw(pub, d[:], append([]byte{0}, sig...)) {
			t.Fatalf("over-long signature verifies")
		}
		return
	}
	t.Fatal("no signature with a leading zero byte in 4096 tries")
}
