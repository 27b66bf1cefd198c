//go:build linux

package faulttest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// withStore opens the cache of dataDir for the test to tamper with.
func withStore(t *testing.T, dataDir string, f func(db *dircache.DB)) {
	t.Helper()
	db, err := dircache.Open(filepath.Join(dataDir, "cache"), dircache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipEvery XORs every stride-th byte (from a random offset) of the files
// under dir whose names contain one of kinds.
func flipEvery(t *testing.T, dir string, stride int, kinds ...string) int {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(stride), 7))
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, k := range kinds {
			if strings.Contains(d.Name(), k) {
				b, err := os.ReadFile(p)
				if err != nil || len(b) == 0 {
					return err
				}
				for i := r.IntN(min(stride, len(b))); i < len(b); i += stride {
					b[i] ^= byte(1 + r.IntN(255))
					n++
				}
				return os.WriteFile(p, b, 0o600)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCacheDamagedOnDisk damages copies of a complete data directory in
// different ways and starts a client on each. Damage the store can see
// (its checksums) and forgeries it cannot (a consensus or certificates
// changed and stored with valid checksums, caught only by signatures)
// must be detected, never used, and refetched; the client then works and
// leaves a cache that verifies whole. An undamaged copy is the control:
// it starts from the cache alone.
func TestCacheDamagedOnDisk(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	auths := trustedAuthorities(t, n)
	ctx := ctxFor(t, 10*time.Minute)
	base := t.TempDir()
	c := newClient(t, n, base, nil)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	fetchSum(t, ctx, c, n, "hello.txt")
	c.Close()
	full := inspectStore(t, base, auths)
	if full.validAfter.IsZero() || len(full.mds) != full.relays || full.certs == 0 {
		t.Fatalf("base cache incomplete: %+v", full)
	}

	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// check the stats of the client started on the damaged copy.
		check func(t *testing.T, st sdk.Stats)
	}{
		{"control", func(*testing.T, string) {}, func(t *testing.T, st sdk.Stats) {
			if st.ConsensusSource != "cache" || st.DirBytesRead != 0 {
				t.Errorf("undamaged cache: source %q, %d directory bytes read", st.ConsensusSource, st.DirBytesRead)
			}
		}},
		{"consensus file bytes flipped", func(t *testing.T, dir string) {
			flipEvery(t, dir, 4096, "consensus-")
		}, wantConsensus("full")},
		{"consensus file truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "cache", "consensus-microdesc.cons")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, wantConsensus("full")},
		{"consensus file garbage", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "cache", "consensus-microdesc.cons")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			junk := bytes.Repeat([]byte("not a consensus "), int(fi.Size())/16+1)
			if err := os.WriteFile(p, junk, 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantConsensus("full")},
		{"consensus forged with valid store checksums", func(t *testing.T, dir string) {
			withStore(t, dir, func(db *dircache.DB) {
				cons, err := db.Consensus("microdesc")
				if err != nil {
					t.Fatal(err)
				}
				// Move the first relay's ORPort: a change in the signed
				// part that parses fine.
				text := bytes.Clone(cons.Text)
				i := bytes.Index(text, []byte("\nr "))
				line := text[i+1 : i+1+bytes.IndexByte(text[i+1:], '\n')]
				f := bytes.Fields(line)
				port := f[len(f)-2]
				port[0] = "12345678"[int(port[0]-'0')%8]
				if err := db.PutConsensus("microdesc", text, dircache.ConsensusMeta{ValidAfter: cons.ValidAfter, FreshUntil: cons.FreshUntil, ValidUntil: cons.ValidUntil}); err != nil {
					t.Fatal(err)
				}
			})
		}, func(t *testing.T, st sdk.Stats) {
			if st.ConsensusSource == "cache" || st.DirBytesByKind["consensus"]+st.DirBytesByKind["consensus_diff"] == 0 {
				t.Errorf("forged consensus: source %q, bytes %v; want it refetched", st.ConsensusSource, st.DirBytesByKind)
			}
		}},
		{"certificates forged with valid store checksums", func(t *testing.T, dir string) {
			withStore(t, dir, func(db *dircache.DB) {
				certs, _, err := db.Certs()
				if err != nil || len(certs) == 0 {
					t.Fatalf("%d certificates: %v", len(certs), err)
				}
				for _, c := range certs {
					// One base64 character of the certification.
					text := bytes.Clone(c.Text)
					i := bytes.LastIndex(text, []byte("-----END SIGNATURE-----")) - 10
					text[i] = "AB"[bytes.IndexByte([]byte("A"), text[i])+1]
					c.Text = text
					if err := db.PutCert(c); err != nil {
						t.Fatal(err)
					}
				}
			})
		}, func(t *testing.T, st sdk.Stats) {
			if st.DirBytesByKind["certificates"] == 0 {
				t.Errorf("forged certificates: none fetched (%v)", st.DirBytesByKind)
			}
		}},
		{"badger files damaged", func(t *testing.T, dir string) {
			if flipEvery(t, filepath.Join(dir, "cache", "badger"), 97, ".mem", ".vlog", ".sst", "MANIFEST") == 0 {
				t.Fatal("no badger file to damage")
			}
		}, func(t *testing.T, st sdk.Stats) {
			if st.MicrodescsFetched == 0 {
				t.Errorf("damaged microdescriptor store: nothing refetched (%+v)", st)
			}
		}},
		{"guard state garbage", func(t *testing.T, dir string) {
			withStore(t, dir, func(db *dircache.DB) {
				if err := db.PutState("guards", []byte("onionlite-guards 1\nguard rsa_id=zz\n\x00\xff")); err != nil {
					t.Fatal(err)
				}
			})
		}, func(*testing.T, sdk.Stats) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			tc.damage(t, dir)
			c := newClient(t, n, dir, nil)
			if err := c.Bootstrap(ctx); err != nil {
				t.Fatalf("bootstrap on the damaged cache: %v", err)
			}
			st := c.Stats()
			tc.check(t, st)
			fetchSum(t, ctx, c, n, "hello.txt")
			c.Close()
			after := inspectStore(t, dir, auths)
			if after.validAfter.IsZero() || len(after.mds) != after.relays || after.certs == 0 {
				t.Fatalf("cache after the restart: consensus %v, %d of %d microdescriptors, %d certificates", after.validAfter, len(after.mds), after.relays, after.certs)
			}
			t.Logf("source %s, directory bytes %v, %d microdescriptors fetched", st.ConsensusSource, st.DirBytesByKind, st.MicrodescsFetched)
		})
	}
}

func wantConsensus(source string) func(t *testing.T, st sdk.Stats) {
	return func(t *testing.T, st sdk.Stats) {
		if st.ConsensusSource != source {
			t.Errorf("consensus source %q, want %q (the damaged one dropped)", st.ConsensusSource, source)
		}
	}
}
