package netdoc

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRealAuthCerts(t *testing.T) {
	for _, tt := range []struct {
		rel   string
		count int
	}{
		{certs2019, 9}, {"2021-08-29-consensus-diffs/cached-certs", 10}, {"2025-05-17-modern-md-sample/cached-certs", 9},
		{certs2026, 9}, {artiCertsAll, 17},
	} {
		t.Run(tt.rel, func(t *testing.T) {
			doc := realDoc(t, tt.rel)
			us, err := ParseAuthCerts(doc)
			if err != nil {
				t.Fatal(err)
			}
			if len(us) != tt.count {
				t.Fatalf("%d certs, want %d", len(us), tt.count)
			}
			var raw []byte
			for _, u := range us {
				if err := u.CheckSignatures(); err != nil {
					t.Error(err)
				}
				// Every certificate is valid in the middle of its lifetime.
				mid := u.Published().Add(u.Expires().Sub(u.Published()) / 2)
				c, err := u.Check(mid)
				if err != nil {
					t.Fatal(err)
				}
				if c.Key() != u.Key() || c.IdentityKey.N.BitLen() < 1024 || c.SigningKey.N.BitLen() < 1024 {
					t.Errorf("cert %X", c.Fingerprint)
				}
				if fp := sha1.Sum(x509.MarshalPKCS1PublicKey(c.IdentityKey)); fp != c.Fingerprint {
					t.Errorf("fingerprint %X is not SHA-1 of the re-encoded identity key", c.Fingerprint)
				}
				if _, err := u.Check(u.Expires().Add(time.Second)); !errors.Is(err, ErrExpired) {
					t.Errorf("after expiry: err = %v", err)
				}
				raw = append(raw, u.Raw()...)
			}
			if !bytes.Equal(raw, bytes.TrimRight(doc, "\n")) && !bytes.Equal(raw, doc) {
				t.Errorf("Raw texts do not concatenate to the document")
			}
		})
	}
}

func TestAuthCert2026Fields(t *testing.T) {
	us, err := ParseAuthCerts(realDoc(t, certs2026))
	if err != nil {
		t.Fatal(err)
	}
	u := us[0]
	if fmt.Sprintf("%X", u.Key().Identity) != "0232AF901C31A04EE9848595AF9BB7620D4C5B2E" ||
		fmt.Sprintf("%X", u.Key().SigningKeyDigest) != "79ABAEE942F8F0F6E5FEB989D2539B05AB86DD8B" ||
		!u.Published().Equal(mustTime("2026-02-15 22:39:01")) || !u.Expires().Equal(mustTime("2027-02-15 22:39:01")) {
		t.Errorf("dannenberg cert %X %X %v %v", u.Key().Identity, u.Key().SigningKeyDigest, u.Published(), u.Expires())
	}
	c, err := u.Check(mustTime("2026-06-27 04:00:00"))
	if err != nil {
		t.Fatal(err)
	}
	if c.IdentityKey.N.BitLen() != 3072 || c.SigningKey.N.BitLen() != 2048 || c.Address.IsValid() {
		t.Errorf("key sizes %d %d, address %v", c.IdentityKey.N.BitLen(), c.SigningKey.N.BitLen(), c.Address)
	}
}

func TestAuthCertTampered(t *testing.T) {
	doc := realDoc(t, certs2026)
	first := doc[:bytes.Index(doc[1:], []byte("dir-key-certificate-version"))+1]
	for _, tt := range []struct{ name, old, new string }{
		{"published", "dir-key-published 2026-02-15 22:39:01", "dir-key-published 2026-02-15 22:39:02"},
		{"expires", "dir-key-expires 2027-02-15 22:39:01", "dir-key-expires 2028-02-15 22:39:01"},
		{"fingerprint", "fingerprint 0232AF901C31A04EE9848595AF9BB7620D4C5B2E", "fingerprint 0232AF901C31A04EE9848595AF9BB7620D4C5B2F"},
		{"signing key", "DBO7AIIDDQ4H9c0Yo1v59BgdfufuNblVoQIDAQAB", "DBO7AIIDDQ4H9c0Yo1v59BgdfufuNblVoQIDAQAD"},
		{"crosscert", "k6u5cJPnZzuCQVjwClAbGzr0KANd0c", "k6u5cJPnZzuCQVjwClAbGzr0KANd0d"},
		{"certification", "mfg7/OWp2Byojnau7m02qSnbtTYKvRnMrFOw6n8e", "mfg7/OWp2Byojnau7m02qSnbtTYKvRnMrFOw6n8f"},
		{"extra item", "dir-key-expires", "x-extra 1\ndir-key-expires"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(first, []byte(tt.old)) {
				t.Fatalf("no %q", tt.old)
			}
			us, err := ParseAuthCerts(bytes.Replace(first, []byte(tt.old), []byte(tt.new), 1))
			if err != nil {
				t.Fatal(err)
			}
			if err := us[0].CheckSignatures(); !errors.Is(err, ErrBadSignature) {
				t.Errorf("err = %v, want ErrBadSignature", err)
			}
			if _, err := us[0].Check(mustTime("2026-06-27 04:00:00")); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Check: err = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestAuthCertMalformed(t *testing.T) {
	as := testAuths(t)
	good := as[0].cert(fixtureVA, fixtureVA.AddDate(1, 0, 0))
	if us, err := ParseAuthCerts([]byte(good + good)); err != nil || len(us) != 2 {
		t.Fatalf("two certs: %v", err)
	}
	for _, tt := range []struct {
		name, old, new string
		unsupported    bool
	}{
		{"version 4", "dir-key-certificate-version 3", "dir-key-certificate-version 4", true},
		{"not a cert", "dir-key-certificate-version 3\n", "network-status-version 3\n", false},
		{"missing fingerprint", "fingerprint", "x-fingerprint", false},
		{"duplicate fingerprint", "dir-key-published", "fingerprint " + strings.Repeat("00", 20) + "\ndir-key-published", false},
		{"bad fingerprint", "fingerprint ", "fingerprint 0", false},
		{"bad published", "dir-key-published 2026", "dir-key-published 1926x", false},
		{"expires before published", "dir-key-expires 2027", "dir-key-expires 2025", false},
		{"bad address", "dir-address 127.0.0.1:7000", "dir-address 127.0.0.1", false},
		{"identity key label", "dir-identity-key\n-----BEGIN RSA PUBLIC KEY-----", "dir-identity-key\n-----BEGIN PUBLIC KEY-----", false},
		{"identity key args", "dir-identity-key\n", "dir-identity-key x\n", false},
		{"identity key garbage", "dir-identity-key\n-----BEGIN RSA PUBLIC KEY-----\n", "dir-identity-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n", false},
		{"crosscert label", "-----BEGIN ID SIGNATURE-----", "-----BEGIN OTHER-----", false},
		{"certification args", "dir-key-certification\n", "dir-key-certification x\n", false},
		{"object on fingerprint", "dir-key-published", "-----BEGIN X-----\nAA==\n-----END X-----\ndir-key-published", false},
		{"truncated", "-----END SIGNATURE-----\n", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("no %q", tt.old)
			}
			_, err := ParseAuthCerts([]byte(strings.Replace(good, tt.old, tt.new, 1)))
			want := ErrMalformed
			if tt.unsupported {
				want = ErrUnsupported
			}
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
		})
	}
	// "SIGNATURE" instead of "ID SIGNATURE" is allowed (dir-spec 3.1).
	alt := as[0].certLabel(fixtureVA, fixtureVA.AddDate(1, 0, 0), "SIGNATURE")
	if us, err := ParseAuthCerts([]byte(alt)); err != nil || us[0].CheckSignatures() != nil {
		t.Errorf("crosscert without ID: %v", err)
	}
	// Truncation anywhere fails.
	for n := 0; n < len(good); n += 97 {
		if _, err := ParseAuthCerts([]byte(good[:n])); !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated at %d: err = %v", n, err)
		}
	}
}

func TestRSAKeyParsing(t *testing.T) {
	a := testAuths(t)[0]
	der := derOf(a.id)
	if k, msg := parseRSAPublicKey(der); k.pub == nil || k.digest != sha1.Sum(der) {
		t.Fatalf("good key: %s", msg)
	}
	// Non-minimal DER (a long-form length) is rejected, so SHA-1 of the
	// bytes is always the canonical key digest.
	longForm := append([]byte{0x30, 0x82, 0x00, byte(len(der) - 3)}, der[3:]...)
	if der[1] == 0x81 {
		if k, _ := parseRSAPublicKey(longForm); k.pub != nil {
			t.Errorf("non-minimal length accepted")
		}
	}
	for _, bad := range [][]byte{nil, {0x30, 0x00}, append(bytes.Clone(der), 0), der[:len(der)-1]} {
		if k, _ := parseRSAPublicKey(bad); k.pub != nil {
			t.Errorf("accepted %x", bad)
		}
	}
}
