package dircache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/onionlite/onionlite/internal/consdiff"
	"github.com/onionlite/onionlite/internal/realnet"
)

// consFileBytes is what consFiles.store writes for text.
func consFileBytes(t testing.TB, cf *consFiles, flavor string, text []byte) []byte {
	t.Helper()
	sp, err := consdiff.SignedPartDigest(text)
	if err != nil {
		t.Fatal(err)
	}
	c := &Consensus{Flavor: flavor, Text: text, SignedDigest: sp, FullDigest: consdiff.FullDigest(text)}
	c.ValidAfter, c.FreshUntil, c.ValidUntil = t0, t0.Add(3600e9), t0.Add(3*3600e9)
	enc, err := newEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(text, encodeConsHeader(c))
}

// FuzzConsFile decodes arbitrary bytes as a stored consensus file, as a
// damaged or tampered data directory holds them, and arbitrary bytes as a
// sealed badger value. Nothing panics; a consensus file decodes only to
// text of the length and SHA3-256 its header records, for the flavor
// asked; a value unseals only if it is the seal of what comes out. Seeds:
// our encoder over synthetic consensuses and a real (trimmed) one, cut
// and header-only files.
func FuzzConsFile(f *testing.F) {
	cf := &consFiles{dir: f.TempDir()}
	defer cf.close()
	texts := [][]byte{synthConsensus("fuzz", 2<<10)}
	if dir, err := realnet.Dir(); err == nil {
		if b, err := os.ReadFile(filepath.Join(dir, "2026-07-27-arti-trimmed-sample", "consensus-microdesc")); err == nil {
			texts = append(texts, b)
		}
	}
	for _, text := range texts {
		file := consFileBytes(f, cf, "microdesc", text)
		f.Add(file, seal(text[:64]))
		f.Add(file[:len(file)/2], seal(nil))
		f.Add(file[:len(consMagic)+1+len("microdesc")+3*8+8+64+32], []byte{})
	}
	f.Fuzz(func(t *testing.T, file, sealed []byte) {
		c, err := cf.decode("microdesc", file)
		if err == nil {
			if c.Flavor != "microdesc" || consdiff.FullDigest(c.Text) != c.FullDigest {
				t.Fatal("decoded a consensus that does not match its header")
			}
			if !bytes.HasPrefix(file, []byte(consMagic)) {
				t.Fatal("decoded a file without the magic")
			}
		}
		if v, ok := unseal(sealed); ok && !bytes.Equal(seal(v), sealed) {
			t.Fatal("unsealed a value that is not the seal of its contents")
		}
	})
}
