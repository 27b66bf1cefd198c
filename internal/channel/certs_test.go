package channel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

var update = flag.Bool("update", false, "record testdata/tor-certs.json from the test network")

// recordedCerts is a CERTS cell as real tor sent it, with the TLS
// certificate it was bound to.
type recordedCerts struct {
	Tor       string    `json:"tor"`
	Time      time.Time `json:"time"`
	TLSCert   string    `json:"tls_cert"`
	Certs     string    `json:"certs"`
	RSAID     string    `json:"rsa_id"`
	Ed25519ID string    `json:"ed25519_id"`
}

const recordedPath = "testdata/tor-certs.json"

func loadRecorded(t testing.TB) (rec recordedCerts, payload, tlsCert []byte, tg Target) {
	t.Helper()
	b, err := os.ReadFile(recordedPath)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRecordedTorCerts -update with the test network)", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	payload, _ = hex.DecodeString(rec.Certs)
	tlsCert, _ = hex.DecodeString(rec.TLSCert)
	rsa, _ := hex.DecodeString(rec.RSAID)
	ed, _ := hex.DecodeString(rec.Ed25519ID)
	return rec, payload, tlsCert, Target{RSAID: [20]byte(rsa), Ed25519ID: [32]byte(ed)}
}

func record(t *testing.T) {
	n := testnet.Shared(t)
	nd := n.Nodes()[len(n.Nodes())-1]
	fp, _ := hex.DecodeString(nd.Fingerprint)
	var rec recordedCerts
	testHookCerts = func(p, c []byte) {
		rec.Certs, rec.TLSCert = hex.EncodeToString(p), hex.EncodeToString(c)
	}
	defer func() { testHookCerts = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := Dial(ctx, nil, Target{Addr: fmt.Sprintf("127.0.0.1:%d", nd.ORPort), RSAID: [20]byte(fp), Ed25519ID: nd.Ed25519ID})
	if err != nil {
		t.Fatal(err)
	}
	ch.Close()
	rec.Tor = "Debian tor 0.4.9, relay " + nd.Nick
	rec.Time = clock.Real{}.Now().UTC().Truncate(time.Second)
	rec.RSAID = hex.EncodeToString(fp)
	rec.Ed25519ID = hex.EncodeToString(nd.Ed25519ID[:])
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(recordedPath, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecordedTorCerts replays a CERTS cell recorded from real tor: it
// re-encodes byte for byte, verifies at the time it was recorded, and
// fails on any change of identity or time.
func TestRecordedTorCerts(t *testing.T) {
	if *update {
		record(t)
	}
	rec, payload, tlsCert, tg := loadRecorded(t)
	entries, err := cell.ParseCerts(payload)
	if err != nil {
		t.Fatal(err)
	}
	types := []uint8{}
	for _, e := range entries {
		types = append(types, e.Type)
	}
	re, _ := cell.AppendCerts(nil, entries)
	if !bytes.Equal(re, payload) {
		t.Fatal("CERTS does not re-encode byte for byte")
	}
	t.Logf("tor sent certificate types %v", types)

	at := func(tm time.Time) *Channel { return &Channel{cfg: Config{Clock: clock.At(tm)}} }
	if err := at(rec.Time).checkCerts(payload, tg, tlsCert); err != nil {
		t.Fatalf("recorded CERTS does not verify: %v", err)
	}
	other := tg
	other.RSAID[0] ^= 1
	if err := at(rec.Time).checkCerts(payload, other, tlsCert); !errors.Is(err, ErrIdentity) {
		t.Fatalf("wrong expected RSA identity: %v", err)
	}
	if err := at(rec.Time).checkCerts(payload, tg, append(bytes.Clone(tlsCert), 0)); !errors.Is(err, torcrypto.ErrCertificate) {
		t.Fatalf("another TLS certificate: %v", err)
	}
	if err := at(rec.Time.Add(5*365*24*time.Hour)).checkCerts(payload, tg, tlsCert); !errors.Is(err, torcrypto.ErrCertificate) {
		t.Fatalf("five years later: %v", err)
	}
	dup, _ := cell.AppendCerts(nil, append(entries, entries[0]))
	if err := at(rec.Time).checkCerts(dup, tg, tlsCert); !errors.Is(err, ErrProtocol) {
		t.Fatalf("duplicate certificate: %v", err)
	}
}

// FuzzCERTSCell mutates a real tor CERTS cell through the cell parser and
// the Ed25519 half of the checks. Nothing may panic and no forged
// certificate may verify. (The RSA half is left to TestRecordedTorCerts
// and the real-tor tests: under the fuzzer's instrumentation each RSA
// operation takes seconds, which starves the fuzzer.)
func FuzzCERTSCell(f *testing.F) {
	rec, payload, _, tg := loadRecorded(f)
	f.Add(payload)
	now := rec.Time
	var signing ed25519.PublicKey
	seed, _ := cell.ParseCerts(payload)
	var seedLink []byte
	for _, e := range seed {
		switch e.Type {
		case cell.CertTypeEdIDSigning:
			c, err := torcrypto.ParseEd25519Cert(e.Body)
			if err != nil {
				f.Fatal(err)
			}
			signing = ed25519.PublicKey(c.Key[:])
		case cell.CertTypeEdSigningLink:
			seedLink = e.Body
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		entries, err := cell.ParseCerts(p)
		if err != nil {
			return
		}
		for _, e := range entries {
			switch e.Type {
			case cell.CertTypeEdIDSigning:
				c, err := torcrypto.ParseEd25519Cert(e.Body)
				if err == nil && c.Check(nil, now) == nil && !bytes.Equal(c.SignedWith, tg.Ed25519ID[:]) {
					t.Fatal("identity->signing certificate by an unknown key verified")
				}
			case cell.CertTypeEdSigningLink:
				c, err := torcrypto.ParseEd25519Cert(e.Body)
				if err == nil && c.Check(signing, now) == nil && !bytes.Equal(e.Body, seedLink) {
					t.Fatal("forged signing->link certificate verified")
				}
			case cell.CertTypeRSAEdCrosscert:
				_, _ = torcrypto.ParseRSACrosscert(e.Body)
			}
		}
	})
}
