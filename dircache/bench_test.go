package dircache

import (
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/internal/fixture"
	"github.com/onionlite/onionlite/internal/realnet"
)

func loadSet(b *testing.B, sub, consensus string) *fixture.Set {
	b.Helper()
	dir := filepath.Dir(realnet.Path(b, sub+"/cached-certs"))
	set, err := fixture.Load(dir, consensus)
	if err != nil {
		b.Fatal(err)
	}
	return set
}

var benchSets = []struct{ name, sub, consensus string }{
	{"2019-full-set", "2019-12-15-full-md-set", "consensus-microdesc-2019-12-15-13-00-00"},
	{"2026-consensus", "2026-06-27-latest-consensus", "consensus-microdesc-2026-06-27-04-00-00"},
}

// BenchmarkWarmLoad is a client start: open the cache, load and verify the
// consensus, the certificates and every microdescriptor, close.
func BenchmarkWarmLoad(b *testing.B) {
	for _, bs := range benchSets {
		b.Run(bs.name, func(b *testing.B) {
			set := loadSet(b, bs.sub, bs.consensus)
			dir := b.TempDir()
			db := openT(b, dir)
			fill(b, db, set)
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			mds := 0
			for b.Loop() {
				db, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.Consensus("microdesc"); err != nil {
					b.Fatal(err)
				}
				if _, _, err := db.Certs(); err != nil {
					b.Fatal(err)
				}
				mds = 0
				if _, err := db.ForEachMicrodesc(func([32]byte, []byte) error { mds++; return nil }); err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(mds), "mds")
		})
	}
}

// BenchmarkOpenClose is Open and Close of a full cache, loading nothing.
func BenchmarkOpenClose(b *testing.B) {
	set := loadSet(b, benchSets[0].sub, benchSets[0].consensus)
	dir := b.TempDir()
	db := openT(b, dir)
	fill(b, db, set)
	db.Close()
	b.ReportAllocs()
	for b.Loop() {
		db, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}

func BenchmarkConsensus(b *testing.B) {
	set := loadSet(b, benchSets[1].sub, benchSets[1].consensus)
	db := openT(b, b.TempDir())
	defer db.Close()
	b.Run("put", func(b *testing.B) {
		b.SetBytes(int64(len(set.Consensus)))
		b.ReportAllocs()
		for b.Loop() {
			if err := db.PutConsensus("microdesc", set.Consensus, ConsensusMeta{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		b.SetBytes(int64(len(set.Consensus)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.Consensus("microdesc"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMicrodescs: the hourly work on a full 2019-size cache.
func BenchmarkMicrodescs(b *testing.B) {
	set := loadSet(b, benchSets[0].sub, benchSets[0].consensus)
	digests, err := fixture.MDigests(set.Consensus)
	if err != nil {
		b.Fatal(err)
	}
	mds := make([]Microdesc, len(set.MDs))
	for i, text := range set.MDs {
		mds[i] = Microdesc{Digest: sha256.Sum256(text), Text: text}
	}
	b.Run("put-all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			db := openT(b, b.TempDir())
			b.StartTimer()
			if err := db.PutMicrodescs(t0, mds); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
	})
	db := openT(b, b.TempDir())
	defer db.Close()
	if err := db.PutMicrodescs(t0, mds); err != nil {
		b.Fatal(err)
	}
	b.Run("missing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if m, err := db.MissingMicrodescs(digests); err != nil || len(m) != 0 {
				b.Fatal(len(m), err)
			}
		}
	})
	b.Run("mark-listed", func(b *testing.B) {
		b.ReportAllocs()
		at := t0
		for b.Loop() {
			at = at.Add(time.Hour)
			if err := db.MarkListed(at, digests); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prune-none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.PruneMicrodescs(func([32]byte) bool { return true }, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
