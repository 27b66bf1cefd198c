package netdoc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// A tiny test network of three authorities with freshly generated keys,
// for what real documents cannot show: sha1 signatures, expired and
// wrong certificates, thresholds over a configured set other than 9.

type testAuth struct {
	name     string
	id, sign *rsa.PrivateKey
	v3       [20]byte
	relayFP  [20]byte
}

var (
	fixtureOnce  sync.Once
	fixtureAuths []*testAuth
)

func testAuths(t testing.TB) []*testAuth {
	t.Helper()
	fixtureOnce.Do(func() {
		for i := 0; i < 3; i++ {
			id, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				panic(err)
			}
			sign, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				panic(err)
			}
			a := &testAuth{name: fmt.Sprintf("auth%d", i), id: id, sign: sign}
			a.v3 = sha1.Sum(x509.MarshalPKCS1PublicKey(&id.PublicKey))
			a.relayFP[0] = byte(i + 1)
			fixtureAuths = append(fixtureAuths, a)
		}
	})
	return fixtureAuths
}

func (a *testAuth) authority() Authority {
	l := fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%X 127.0.0.1:%d %X", a.name, 5000, a.v3, 7000, a.relayFP)
	au, err := ParseDirAuthority(l)
	if err != nil {
		panic(err)
	}
	return au
}

func authoritiesOf(as []*testAuth) []Authority {
	var out []Authority
	for _, a := range as {
		out = append(out, a.authority())
	}
	return out
}

func pemBlock(label string, b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	sb.WriteString("-----BEGIN " + label + "-----\n")
	for len(s) > 64 {
		sb.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	sb.WriteString(s + "\n-----END " + label + "-----\n")
	return sb.String()
}

func signRaw(k *rsa.PrivateKey, digest []byte) []byte {
	s, err := rsa.SignPKCS1v15(nil, k, crypto.Hash(0), digest)
	if err != nil {
		panic(err)
	}
	return s
}

const tfmt = "2006-01-02 15:04:05"

// cert returns a key certificate for a, signed correctly.
func (a *testAuth) cert(published, expires time.Time) string {
	return a.certLabel(published, expires, "ID SIGNATURE")
}

// certLabel is cert with a given crosscert object label.
func (a *testAuth) certLabel(published, expires time.Time, crossLabel string) string {
	idDER := x509.MarshalPKCS1PublicKey(&a.id.PublicKey)
	fp := sha1.Sum(idDER)
	s := "dir-key-certificate-version 3\n" +
		"dir-address 127.0.0.1:7000\n" +
		fmt.Sprintf("fingerprint %X\n", a.v3) +
		"dir-key-published " + published.UTC().Format(tfmt) + "\n" +
		"dir-key-expires " + expires.UTC().Format(tfmt) + "\n" +
		"dir-identity-key\n" + pemBlock("RSA PUBLIC KEY", idDER) +
		"dir-signing-key\n" + pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&a.sign.PublicKey)) +
		"dir-key-crosscert\n" + pemBlock(crossLabel, signRaw(a.sign, fp[:])) +
		"dir-key-certification\n"
	d := sha1.Sum([]byte(s))
	return s + pemBlock("SIGNATURE", signRaw(a.id, d[:]))
}

func (a *testAuth) signingDigest() [20]byte {
	return sha1.Sum(x509.MarshalPKCS1PublicKey(&a.sign.PublicKey))
}

func checkedTestCert(t testing.TB, text string, now time.Time) *AuthCert {
	t.Helper()
	us, err := ParseAuthCerts([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c, err := us[0].Check(now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var fixtureVA = mustTime("2026-03-01 12:00:00")

// testConsensusBody is the signed part of a small consensus, up to (not
// including) the first "directory-signature".
func testConsensusBody(as []*testAuth) string {
	var sb strings.Builder
	sb.WriteString("network-status-version 3 microdesc\n" +
		"vote-status consensus\n" +
		"consensus-method 35\n" +
		"valid-after 2026-03-01 12:00:00\n" +
		"fresh-until 2026-03-01 12:10:00\n" +
		"valid-until 2026-03-01 12:30:00\n" +
		"voting-delay 20 20\n" +
		"client-versions 0.4.9.1\n" +
		"server-versions \n" +
		"known-flags Authority Exit Fast Guard HSDir Running Stable V2Dir Valid FutureFlag\n" +
		"recommended-client-protocols Cons=2 Link=4-5 Microdesc=2 Relay=2-4 FutureProto=1\n" +
		"required-client-protocols Cons=2 Link=4 Microdesc=2 Relay=2\n" +
		"params CircuitPriorityHalflifeMsec=30000 bwweightscale=10000 cc_alg=2 neg=-5\n" +
		"shared-rand-previous-value 3 cRaZH0sx1J1BKO2hWyJsGpi/KvY3GEdhNCKTK09Sl4A=\n" +
		"shared-rand-current-value 3 Mnl1G9mRukQT5Lq8BBH1syWvB/D4i4kYOf2urCZqZIQ=\n" +
		"x-future-header with args\n")
	for _, a := range as {
		fmt.Fprintf(&sb, "dir-source %s %X 127.0.0.1 127.0.0.1 7000 5000\ncontact test\nvote-digest %040X\n", a.name, a.v3, 0)
	}
	sb.WriteString("r test000 AAEAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 127.0.0.1 5000 7000\n" +
		"a [::1]:5000\n" +
		"m MZjFbMLLC+a+LTqejOFlnJWdO6bIPXr0vWWPZQQVihY\n" +
		"s Authority Fast Guard Running Stable V2Dir Valid FutureFlag\n" +
		"v Tor 0.4.9.1\n" +
		"pr Cons=1-2 Desc=1-4 Link=3-5 Microdesc=1-3 Relay=2-6\n" +
		"w Bandwidth=30 Unmeasured=1\n" +
		"x-future-entry 1\n" +
		"r test001 AAIAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 127.0.0.2 5001 0\n" +
		"m KoMvR0kTFTMsDDrYnH+OlkJKovaGYnJrwBqhlI6YlSs\n" +
		"s Exit Fast Running Valid\n" +
		"w Bandwidth=1000\n" +
		"directory-footer\n" +
		"bandwidth-weights Wbd=0 Wee=10000 Wgg=10000\n")
	return sb.String()
}

// signConsensus appends directory signatures by signers with digest alg
// ("sha1" or "sha256", or "" for the implicit sha1 form).
func signConsensus(body string, signers []*testAuth, alg string) []byte {
	signed := body + "directory-signature "
	var sb strings.Builder
	sb.WriteString(body)
	for _, a := range signers {
		var d []byte
		switch alg {
		case "sha256":
			h := sha256.Sum256([]byte(signed))
			d = h[:]
		default:
			h := sha1.Sum([]byte(signed))
			d = h[:]
		}
		prefix := alg + " "
		if alg == "" {
			prefix = ""
		}
		fmt.Fprintf(&sb, "directory-signature %s%X %X\n", prefix, a.v3, a.signingDigest())
		sb.WriteString(pemBlock("SIGNATURE", signRaw(a.sign, d)))
	}
	return []byte(sb.String())
}

// testCerts returns checked certificates for every authority, live at
// fixtureVA.
func testCerts(t testing.TB, as []*testAuth) []*AuthCert {
	var out []*AuthCert
	for _, a := range as {
		out = append(out, checkedTestCert(t, a.cert(fixtureVA.AddDate(0, -1, 0), fixtureVA.AddDate(1, 0, 0)), fixtureVA))
	}
	return out
}

func derOf(k *rsa.PrivateKey) []byte { return x509.MarshalPKCS1PublicKey(&k.PublicKey) }
