package torcrypto

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testRelay holds the keys of a relay built from the spec, for testing
// certificate checks.
type testRelay struct {
	rsaKey  *rsa.PrivateKey
	idKey   ed25519.PrivateKey
	signKey ed25519.PrivateKey
	tlsCert []byte
}

// testRSAKey is an RSA-1024 key made for these tests only.
const testRSAKey = `-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDFiNSU/7i7n5j1EQNvxirBlBRqWmKwoSakt3d+1zXhI/x/dlYU
/5Yw59xJ5HOgikp0LYbnztE3CsfkdWs/C/kRwpAQfbxejpBiL7nRDzE5ZeUsU2IY
a4qTTWaeQzOiiw50zhbgAg91Crh2q6yLZgSm3QtKP0CBdb7EUMJP3DtGFQIDAQAB
AoGAaHo5reEfbSU5uozYG3tdy+stbR8HSdLCZKahLlZXqg/lkekeGJcichWAXxjU
y1m5jX8y9lJeN9Wc6knsgnkrr3ouh3c/XBvsDz0MYBsWhR2s7oBD7m7e5RqrlQiy
GEtWJ3cesObKmTCwDaUD6noEiwnwY70bfhuWoWirrLm1NSECQQDg8jn2aJ51gUcj
hHNgA7LDJYblIYLcau/Pgy1xNF0U4tPvqghyKORoyuQAYdIowJJnCRQgZSiKDqu5
JolfnC0NAkEA4M3aYqy6HRcWjJd3DLlaJQi3TUfaika+l4wxGrwnJhRydP12dJIs
FAfVO7HEtZazLzG9Iv2uMwDRhxgZIkqLKQJBALoImdcnfqU/XU4KZECrzlOF3aHx
rQANkHbVzecpnzF+xjgXLxT6rKvd3+JRBDWfzXRZFcQU5QoISAy/yizARKECQBS7
Z1SKUW+1XWMB5PzLa0DXGPCLm9/8vj8DstOgXovoftXDOlVt1ZrTThr/PgDxMP09
PRApDROvE6O92TOMZGECQQDIRuI2oSoWzYxYr6GVMhfl+6X8TTU3AYQxasdaomjP
hjr5zBuHs4nHKvf2TAIYjOR0W9qRYS8G3xjCc2zU5bb8
-----END RSA PRIVATE KEY-----`

var (
	relayOnce sync.Once
	relayKeys testRelay
)

func newTestRelay(t testing.TB) testRelay {
	relayOnce.Do(func() {
		// Fixed keys, so fuzz workers in other processes agree with the
		// seed corpus.
		blk, _ := pem.Decode([]byte(testRSAKey))
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		relayKeys.rsaKey = k
		relayKeys.idKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
		relayKeys.signKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
		relayKeys.tlsCert = bytes.Repeat([]byte("not really DER "), 20)
	})
	return relayKeys
}

func rsaIDCert(t testing.TB, key *rsa.PrivateKey, notBefore, notAfter time.Time) []byte {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(12345),
		Subject:      pkix.Name{CommonName: "www.example.net"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type extSpec struct {
	typ, flags uint8
	data       []byte
}

// edCert encodes and signs an Ed25519 certificate (cert-spec 2.1).
func edCert(typ, keyType uint8, key []byte, expires time.Time, signer ed25519.PrivateKey, exts ...extSpec) []byte {
	b := []byte{1, typ}
	b = binary.BigEndian.AppendUint32(b, uint32(expires.Unix()/3600))
	b = append(b, keyType)
	b = append(b, key...)
	b = append(b, byte(len(exts)))
	for _, e := range exts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.data)))
		b = append(b, e.typ, e.flags)
		b = append(b, e.data...)
	}
	return append(b, ed25519.Sign(signer, b)...)
}

func crosscert(t testing.TB, key *rsa.PrivateKey, ed []byte, expires time.Time) []byte {
	b := append([]byte(nil), ed...)
	b = binary.BigEndian.AppendUint32(b, uint32(expires.Unix()/3600))
	h := sha256.Sum256(append([]byte(crosscertPrefix), b...))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.Hash(0), h[:])
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, byte(len(sig)))
	return append(b, sig...)
}

func validCerts(t testing.TB, r testRelay, now time.Time) ResponderCerts {
	later := now.Add(48 * time.Hour)
	idPub := r.idKey.Public().(ed25519.PublicKey)
	signPub := r.signKey.Public().(ed25519.PublicKey)
	tlsDigest := sha256.Sum256(r.tlsCert)
	return ResponderCerts{
		RSAIdentity:   rsaIDCert(t, r.rsaKey, now.Add(-time.Hour), later),
		IDToSigning:   edCert(CertEdIDSigning, KeyTypeEd25519, signPub, later, r.idKey, extSpec{typ: 4, data: idPub}),
		SigningToLink: edCert(CertEdSigningLink, KeyTypeX509Digest, tlsDigest[:], later, r.signKey),
		Crosscert:     crosscert(t, r.rsaKey, idPub, later),
	}
}

func TestResponderCertsVerify(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	r := newTestRelay(t)
	rc := validCerts(t, r, now)
	id, err := rc.Verify(r.tlsCert, now)
	if err != nil {
		t.Fatal(err)
	}
	if id.RSA != RSAIdentityDigest(&r.rsaKey.PublicKey) || !bytes.Equal(id.Ed25519[:], r.idKey.Public().(ed25519.PublicKey)) {
		t.Fatal("wrong identities")
	}
	// Tor before 0.4.5.1 labelled the link key as an Ed25519 key.
	tlsDigest := sha256.Sum256(r.tlsCert)
	old := rc
	old.SigningToLink = edCert(CertEdSigningLink, KeyTypeEd25519, tlsDigest[:], now.Add(time.Hour), r.signKey)
	if _, err := old.Verify(r.tlsCert, now); err != nil {
		t.Fatalf("key type 1 link cert: %v", err)
	}
}

func TestResponderCertsRejects(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	r := newTestRelay(t)
	idPub := r.idKey.Public().(ed25519.PublicKey)
	signPub := r.signKey.Public().(ed25519.PublicKey)
	tlsDigest := sha256.Sum256(r.tlsCert)
	later := now.Add(time.Hour)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	otherPub := otherEd.Public().(ed25519.PublicKey)
	other2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string]func(rc *ResponderCerts) ([]byte, time.Time){
		"missing RSA ID":     func(rc *ResponderCerts) ([]byte, time.Time) { rc.RSAIdentity = nil; return r.tlsCert, now },
		"missing id->sign":   func(rc *ResponderCerts) ([]byte, time.Time) { rc.IDToSigning = nil; return r.tlsCert, now },
		"missing sign->link": func(rc *ResponderCerts) ([]byte, time.Time) { rc.SigningToLink = nil; return r.tlsCert, now },
		"missing crosscert":  func(rc *ResponderCerts) ([]byte, time.Time) { rc.Crosscert = nil; return r.tlsCert, now },
		"other TLS cert": func(rc *ResponderCerts) ([]byte, time.Time) {
			return append(bytes.Clone(r.tlsCert), 0), now
		},
		"expired Ed certs": func(rc *ResponderCerts) ([]byte, time.Time) { return r.tlsCert, now.Add(72 * time.Hour) },
		"RSA cert not yet valid": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.RSAIdentity = rsaIDCert(t, r.rsaKey, now.Add(time.Hour), now.Add(2*time.Hour))
			return r.tlsCert, now
		},
		"2048-bit RSA identity": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.RSAIdentity = rsaIDCert(t, other2048, now.Add(-time.Hour), later)
			rc.Crosscert = crosscert(t, other2048, idPub, later)
			return r.tlsCert, now
		},
		"crosscert for another Ed key": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.Crosscert = crosscert(t, r.rsaKey, otherPub, later)
			return r.tlsCert, now
		},
		"crosscert by another RSA key": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.Crosscert = crosscert(t, other2048, idPub, later)
			return r.tlsCert, now
		},
		"expired crosscert": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.Crosscert = crosscert(t, r.rsaKey, idPub, now.Add(-2*time.Hour))
			return r.tlsCert, now
		},
		"id->sign signed by another key": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.IDToSigning = edCert(CertEdIDSigning, KeyTypeEd25519, signPub, later, otherEd, extSpec{typ: 4, data: idPub})
			return r.tlsCert, now
		},
		"id->sign without identity extension": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.IDToSigning = edCert(CertEdIDSigning, KeyTypeEd25519, signPub, later, r.idKey)
			return r.tlsCert, now
		},
		"id->sign with unknown critical extension": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.IDToSigning = edCert(CertEdIDSigning, KeyTypeEd25519, signPub, later, r.idKey,
				extSpec{typ: 4, data: idPub}, extSpec{typ: 9, flags: 1, data: []byte{1}})
			return r.tlsCert, now
		},
		"sign->link signed by identity key": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.SigningToLink = edCert(CertEdSigningLink, KeyTypeX509Digest, tlsDigest[:], later, r.idKey)
			return r.tlsCert, now
		},
		"certificate types swapped": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.IDToSigning, rc.SigningToLink = rc.SigningToLink, rc.IDToSigning
			return r.tlsCert, now
		},
		"flipped signature bit": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.SigningToLink = bytes.Clone(rc.SigningToLink)
			rc.SigningToLink[len(rc.SigningToLink)-1] ^= 1
			return r.tlsCert, now
		},
		"garbage RSA cert": func(rc *ResponderCerts) ([]byte, time.Time) {
			rc.RSAIdentity = []byte{0x30, 0x03, 1, 2, 3}
			return r.tlsCert, now
		},
	}
	for name, mutate := range cases {
		rc := validCerts(t, r, now)
		tls, at := mutate(&rc)
		if _, err := rc.Verify(tls, at); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: got %v, want a certificate error", name, err)
		}
	}
}

func TestParseEd25519CertRejects(t *testing.T) {
	r := newTestRelay(t)
	good := edCert(CertEdIDSigning, KeyTypeEd25519, make([]byte, 32), time.Now().Add(time.Hour), r.idKey,
		extSpec{typ: 4, data: r.idKey.Public().(ed25519.PublicKey)})
	if _, err := ParseEd25519Cert(good); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"short":         good[:100],
		"version 2":     append([]byte{2}, good[1:]...),
		"trailing byte": append(bytes.Clone(good), 0),
		"bad ext len": func() []byte {
			b := bytes.Clone(good)
			b[41] = 31 // signed-with-key extension of 31 bytes
			return b
		}(),
	} {
		if _, err := ParseEd25519Cert(b); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseRSACrosscert(make([]byte, 36)); err == nil {
		t.Error("short crosscert accepted")
	}
	cc := make([]byte, 40)
	cc[36] = 5
	if _, err := ParseRSACrosscert(cc); err == nil {
		t.Error("crosscert with wrong SIGLEN accepted")
	}
}

// FuzzCerts feeds arbitrary bytes to the certificate parsers and checks.
// Nothing may panic and nothing random may verify. (The RSA checks are
// left to the unit tests above: under the fuzzer's coverage
// instrumentation each RSA operation takes seconds.)
func FuzzCerts(f *testing.F) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	r := newTestRelay(f)
	rc := validCerts(f, r, now)
	f.Add(rc.IDToSigning, rc.SigningToLink, rc.Crosscert)
	idPub := r.idKey.Public().(ed25519.PublicKey)
	signPub := r.signKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, idSign, signLink, cross []byte) {
		if c, err := ParseEd25519Cert(idSign); err == nil {
			if c.Check(nil, now) == nil && !bytes.Equal(c.SignedWith, idPub) && !bytes.Equal(c.SignedWith, signPub) {
				t.Fatalf("certificate signed by an unknown key verified")
			}
		}
		if c, err := ParseEd25519Cert(signLink); err == nil {
			if c.Check(signPub, now) == nil && !bytes.Equal(c.signed, rc.SigningToLink[:len(rc.SigningToLink)-64]) {
				t.Fatalf("forged signing->link certificate verified")
			}
		}
		if c, err := ParseRSACrosscert(cross); err == nil && len(c.Signature) != int(cross[36]) {
			t.Fatal("crosscert signature length")
		}
	})
}
