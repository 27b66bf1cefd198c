package dircache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"

	"github.com/onionlite/onionlite/dircache/internal/fixture"
	"github.com/onionlite/onionlite/internal/realnet"
)

func openT(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fill stores a realnet set and returns its microdescriptors.
func fill(t testing.TB, s Store, set *fixture.Set) []Microdesc {
	t.Helper()
	va, fu, vu, err := fixture.Times(set.Consensus)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutConsensus("microdesc", set.Consensus, ConsensusMeta{va, fu, vu}); err != nil {
		t.Fatal(err)
	}
	for _, c := range set.Certs {
		if err := s.PutCert(Cert(c)); err != nil {
			t.Fatal(err)
		}
	}
	mds := make([]Microdesc, len(set.MDs))
	for i, text := range set.MDs {
		mds[i] = Microdesc{Digest: sha256.Sum256(text), Text: text}
	}
	if err := s.PutMicrodescs(va, mds); err != nil {
		t.Fatal(err)
	}
	return mds
}

func load2019(t testing.TB) *fixture.Set {
	t.Helper()
	dir := filepath.Dir(realnet.Path(t, "2019-12-15-full-md-set/cached-certs"))
	set, err := fixture.Load(dir, "consensus-microdesc-2019-12-15-13-00-00")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// checkSet verifies that s holds exactly set, as fill stored it.
func checkSet(t *testing.T, s Store, set *fixture.Set, mds []Microdesc) {
	t.Helper()
	c, err := s.Consensus("microdesc")
	if err != nil || !bytes.Equal(c.Text, set.Consensus) {
		t.Fatalf("consensus: %v", err)
	}
	certs, dropped, err := s.Certs()
	if err != nil || dropped != 0 || len(certs) != len(set.Certs) {
		t.Fatalf("certs: %d, dropped %d, %v", len(certs), dropped, err)
	}
	got := collect(t, s)
	uniq := map[[32]byte]bool{}
	for _, md := range mds {
		uniq[md.Digest] = true
		if got[md.Digest] != string(md.Text) {
			t.Fatalf("md %x missing or wrong", md.Digest)
		}
	}
	if len(got) != len(uniq) {
		t.Fatalf("%d mds, want %d", len(got), len(uniq))
	}
}

func TestReopen(t *testing.T) {
	set := load2019(t)
	dir := t.TempDir()
	db := openT(t, dir)
	mds := fill(t, db, set)
	if err := db.PutState("guards", []byte("g1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		db = openT(t, dir)
		if db.Recovery() != nil {
			t.Fatalf("round %d: clean reopen reported %v", round, db.Recovery())
		}
		checkSet(t, db, set, mds)
		if v, err := db.GetState("guards"); err != nil || string(v) != "g1" {
			t.Fatalf("state %q %v", v, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{openingName, badgerName + asideSuffix} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", name, err)
		}
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir)
	defer db.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
}

func TestBadgerHookChecked(t *testing.T) {
	_, err := Open(t.TempDir(), Options{Badger: func(o badger.Options) badger.Options {
		return o.WithInMemory(true)
	}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("in-memory badger accepted: %v", err)
	}
}

// TestReadOnlyDir: a directory the process cannot write gives a clear
// ErrReadOnly, and the client keeps working from a MemStore. As root,
// permission bits do not stop writes, so the check runs in a child
// process that drops to nobody.
func TestReadOnlyDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("directory permissions do not stop writes on Windows")
	}
	if d := os.Getenv("DIRCACHE_RO_CHILD"); d != "" {
		_, err := Open(d, Options{})
		if !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Open in a read-only dir: %v", err)
		}
		t.Logf("error: %v", err)
		return
	}
	// Not t.TempDir: the child (nobody) must be able to reach the
	// directories and run a copy of the test binary.
	parent, err := os.MkdirTemp("", "dircache-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(parent, 0o755); os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(parent, "dircache.test")
	if os.Geteuid() == 0 {
		exe, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, exe, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	existing := filepath.Join(parent, "existing")
	db := openT(t, existing)
	if err := db.PutState("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	fresh := filepath.Join(parent, "fresh")
	for _, d := range []string{parent, existing} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{existing, fresh} {
		if os.Geteuid() != 0 {
			if _, err := Open(d, Options{}); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("%s: %v", d, err)
			}
			continue
		}
		cmd := exec.Command(bin, "-test.run=^TestReadOnlyDir$", "-test.v")
		cmd.Env = append(os.Environ(), "DIRCACHE_RO_CHILD="+d)
		asNobody(cmd)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: child: %v\n%s", d, err, out)
		}
		i := bytes.Index(out, []byte("error: "))
		if i < 0 || !bytes.Contains(out, []byte("not writable")) {
			t.Fatalf("child output lacks the error:\n%s", out)
		}
		t.Logf("%s: %s", filepath.Base(d), out[i:i+bytes.IndexByte(out[i:], '\n')])
	}
	// The fallback keeps working.
	var s Store = NewMemStore()
	if err := s.PutState("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestConsensusFileFrame: the stored file is the header and one zstd
// frame that records the text's size (the layout in consfile.go), also
// now that the frame is written as a stream.
func TestConsensusFileFrame(t *testing.T) {
	text := synthConsensus("frame", 700<<10)
	dir := t.TempDir()
	db := openT(t, dir)
	defer db.Close()
	if err := db.PutConsensus("microdesc", text, meta(t0)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, consPrefix+"microdesc"+consSuffix))
	if err != nil {
		t.Fatal(err)
	}
	_, size, payload, err := decodeConsHeader(b)
	if err != nil || size != len(text) {
		t.Fatalf("header: size %d, %v; want %d", size, err, len(text))
	}
	var h zstd.Header
	if err := h.Decode(payload); err != nil || !h.HasFCS || h.FrameContentSize != uint64(len(text)) || !h.HasCheckSum {
		t.Fatalf("frame header %+v, %v: want content size %d and a checksum", h, err, len(text))
	}
	c, err := db.Consensus("microdesc")
	if err != nil || !bytes.Equal(c.Text, text) {
		t.Fatalf("read back: %v", err)
	}
}

func TestConsensusFileDamage(t *testing.T) {
	text := synthConsensus("dmg", 200<<10)
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"payload byte", func(b []byte) []byte { b[len(b)-100] ^= 0x40; return b }},
		{"header time", func(b []byte) []byte { b[len(consMagic)+1+len("microdesc")+3] ^= 1; return b }},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"header only", func(b []byte) []byte { return b[:60] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"other flavor's file", func(b []byte) []byte {
			c, _ := newConsensus("ns", text, ConsensusMeta{})
			enc, _ := newEncoder(nil)
			return enc.EncodeAll(c.Text, encodeConsHeader(c))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openT(t, dir)
			defer db.Close()
			if err := db.PutConsensus("microdesc", text, meta(t0)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, consPrefix+"microdesc"+consSuffix)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Consensus("microdesc"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("damaged file: %v", err)
			}
			if _, err := db.Consensus("microdesc"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("damaged file not removed: %v", err)
			}
		})
	}
}
