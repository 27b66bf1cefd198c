package dircache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// pristine builds a closed cache holding the 2019 set, a small and a
// large (value-log) state value, and returns its directory.
func pristine(t *testing.T) (dir string, mds []Microdesc) {
	t.Helper()
	set := load2019(t)
	dir = t.TempDir()
	db := openT(t, dir)
	mds = fill(t, db, set)
	if err := db.PutState("small", []byte("guard state")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutState("big", bytes.Repeat([]byte("g"), 700<<10)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, mds
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// damagePoint is one byte to flip in one badger file.
type damagePoint struct {
	file string
	off  int64
	why  string
}

// damagePoints picks, for every file in the badger directory, the bytes
// whose damage is most dangerous (table footers, block trailers, headers)
// plus a few seeded random ones.
func damagePoints(t *testing.T, bdir string, random int) []damagePoint {
	t.Helper()
	ents, err := os.ReadDir(bdir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var pts []damagePoint
	for _, e := range ents {
		name := e.Name()
		if name == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(bdir, name))
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(b))
		if n == 0 {
			continue
		}
		add := func(off int64, why string) {
			if off >= 0 && off < n {
				pts = append(pts, damagePoint{name, off, why})
			}
		}
		add(0, "first byte")
		if strings.HasSuffix(name, ".sst") {
			ck := int64(binary.BigEndian.Uint32(b[n-4:]))
			add(n-1, "footer checksum length")
			add(n-4-ck-1, "footer index length")
			add(n-4-ck-4-10, "index")
			add(4096-1, "near the first block's end")
		}
		if strings.HasSuffix(name, ".vlog") {
			if i := bytes.Index(b, []byte("sbig")); i > 0 {
				add(int64(i)-3, "value-log entry header")
				add(int64(i)+100_000, "value-log value")
			}
		}
		for range random {
			add(rng.Int64N(n), "random")
		}
	}
	sort.Slice(pts, func(i, j int) bool {
		return pts[i].file+string(rune(pts[i].off)) < pts[j].file+string(rune(pts[j].off))
	})
	return pts
}

// TestDamagedFiles flips bytes all over a closed cache. Open must not
// crash or fail; every entry it then returns must verify; what damage
// destroys is dropped (and reported), and the consensus file, which lives
// outside badger, is never lost to badger damage.
func TestDamagedFiles(t *testing.T) {
	src, mds := pristine(t)
	random := 1
	if testing.Short() {
		random = 0
	}
	want := map[[32]byte]string{}
	for _, md := range mds {
		want[md.Digest] = string(md.Text)
	}
	pts := damagePoints(t, filepath.Join(src, badgerName), random)
	for _, p := range pts {
		t.Run(p.file+"/"+p.why, func(t *testing.T) {
			dir := copyDir(t, src)
			flipByte(t, filepath.Join(dir, badgerName, p.file), p.off)
			db, err := Open(dir, Options{Logf: t.Logf})
			if err != nil {
				t.Fatalf("Open after damage at %s+%d: %v", p.file, p.off, err)
			}
			defer db.Close()
			if c, err := db.Consensus("microdesc"); err != nil || len(c.Text) == 0 {
				t.Fatalf("consensus lost to badger damage: %v", err)
			}
			survived := 0
			dropped, err := db.ForEachMicrodesc(func(d [32]byte, text []byte) error {
				if want[d] != string(text) {
					t.Fatalf("returned a microdescriptor that is not the stored one")
				}
				survived++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			certs, cdropped, err := db.Certs()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range certs {
				if !strings.HasPrefix(string(c.Text), "dir-key-certificate-version") {
					t.Fatal("returned a damaged certificate")
				}
			}
			var states []string
			for _, k := range []string{"small", "big"} {
				v, err := db.GetState(k)
				states = append(states, k+": "+errString(err))
				if err == nil && !(k == "small" && string(v) == "guard state" || k == "big" && bytes.Equal(v, bytes.Repeat([]byte("g"), 700<<10))) {
					t.Fatalf("state %q returned damaged", k)
				}
				if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("state %q: %v", k, err)
				}
			}
			t.Logf("%s+%d (%s): recovery %v; %d/%d mds survive, %d dropped on load; %d certs (%d dropped); state %v",
				p.file, p.off, p.why, db.Recovery(), survived, len(want), dropped, len(certs), cdropped, states)
			// Whatever is gone can be stored again (checked once per
			// file, to keep the test short).
			if p.why != "first byte" {
				return
			}
			if err := db.PutMicrodescs(t0, mds); err != nil {
				t.Fatal(err)
			}
			if got := collect(t, db); len(got) != len(want) {
				t.Fatalf("%d after refill, want %d", len(got), len(want))
			}
		})
	}
}

// TestDamagedTableKeepsTheRest: a damaged table costs only its own
// entries; the other table's survive, and the report names the table.
func TestDamagedTableKeepsTheRest(t *testing.T) {
	src, mds := pristine(t)
	ents, _ := os.ReadDir(filepath.Join(src, badgerName))
	var tables []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") {
			tables = append(tables, e.Name())
		}
	}
	if len(tables) < 2 {
		t.Fatalf("only %d table(s): the fixture no longer spans several", len(tables))
	}
	counts := map[string]int{}
	for _, tb := range tables {
		dir := copyDir(t, src)
		path := filepath.Join(dir, badgerName, tb)
		st, _ := os.Stat(path)
		flipByte(t, path, st.Size()-1) // the footer: badger itself would log.Fatal here
		db := openT(t, dir)
		if db.Recovery() == nil || !strings.Contains(db.Recovery().Error(), tb) {
			t.Fatalf("damage to %s not reported: %v", tb, db.Recovery())
		}
		counts[tb] = len(collect(t, db))
		db.Close()
	}
	total := 0
	uniq := map[[32]byte]bool{}
	for _, md := range mds {
		uniq[md.Digest] = true
	}
	for _, n := range counts {
		total += len(uniq) - n // what each damaged table cost
	}
	if total != len(uniq) {
		t.Fatalf("losses per table %v add up to %d, want %d: entries lost beyond the damaged table", counts, total, len(uniq))
	}
}

// TestDamagedManifest: a MANIFEST badger would refuse is rebuilt from
// the tables, so nothing is lost; the report says so.
func TestDamagedManifest(t *testing.T) {
	src, mds := pristine(t)
	for _, damage := range []string{"flip", "remove", "truncate"} {
		t.Run(damage, func(t *testing.T) {
			dir := copyDir(t, src)
			mpath := filepath.Join(dir, badgerName, "MANIFEST")
			switch damage {
			case "flip":
				flipByte(t, mpath, 20)
			case "remove":
				os.Remove(mpath)
			case "truncate":
				os.Truncate(mpath, 3)
			}
			db := openT(t, dir)
			defer db.Close()
			if db.Recovery() == nil || !strings.Contains(db.Recovery().Error(), "MANIFEST") {
				t.Fatalf("recovery %v", db.Recovery())
			}
			checkSet(t, db, load2019(t), mds)
			if v, err := db.GetState("small"); err != nil || string(v) != "guard state" {
				t.Fatal(v, err)
			}
			// It keeps working: write, close, reopen cleanly.
			if err := db.PutState("after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			db.Close()
			db2 := openT(t, dir)
			defer db2.Close()
			if db2.Recovery() != nil {
				t.Fatalf("second open after rebuild: %v", db2.Recovery())
			}
			if v, err := db2.GetState("after"); err != nil || string(v) != "x" {
				t.Fatal(v, err)
			}
		})
	}
}

// TestMissingTable: a table the MANIFEST lists but that is gone costs its
// entries only.
func TestMissingTable(t *testing.T) {
	src, _ := pristine(t)
	dir := copyDir(t, src)
	tables, _ := filepath.Glob(filepath.Join(dir, badgerName, "*.sst"))
	if len(tables) < 2 {
		t.Fatalf("%d tables", len(tables))
	}
	if err := os.Remove(tables[0]); err != nil {
		t.Fatal(err)
	}
	db := openT(t, dir)
	defer db.Close()
	if db.Recovery() == nil {
		t.Fatal("missing table not reported")
	}
	if got := collect(t, db); len(got) == 0 {
		t.Fatal("everything lost")
	}
}

// TestUnrepairable: when badger still cannot open the directory, Open
// moves it aside, starts afresh and says so; the consensus survives.
func TestUnrepairable(t *testing.T) {
	src, _ := pristine(t)
	dir := copyDir(t, src)
	// A MANIFEST from a newer badger format: not damage we may repair.
	mpath := filepath.Join(dir, badgerName, "MANIFEST")
	b, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	b[7] = 99
	if err := os.WriteFile(mpath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db := openT(t, dir)
	defer db.Close()
	if db.Recovery() == nil {
		t.Fatal("no recovery reported")
	}
	if _, err := os.Stat(filepath.Join(dir, badgerName+asideSuffix, "MANIFEST")); err != nil {
		t.Fatalf("old DB not kept aside: %v", err)
	}
	if _, err := db.Consensus("microdesc"); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, db); len(got) != 0 {
		t.Fatalf("%d mds in a fresh DB", len(got))
	}
}

// TestCrashLoopBreaker: if Opens keep dying (the marker counts them), the
// badger directory is moved aside instead of being opened again.
func TestCrashLoopBreaker(t *testing.T) {
	src, _ := pristine(t)
	dir := copyDir(t, src)
	if err := os.WriteFile(filepath.Join(dir, openingName), []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := openT(t, dir) // one unfinished Open: not yet a loop
	if db.Recovery() != nil {
		t.Fatalf("one interrupted open moved the DB aside: %v", db.Recovery())
	}
	if v, err := db.GetState("small"); err != nil || string(v) != "guard state" {
		t.Fatal(v, err)
	}
	db.Close()
	if err := os.WriteFile(filepath.Join(dir, openingName), []byte("2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir)
	defer db.Close()
	if db.Recovery() == nil || !strings.Contains(db.Recovery().Error(), "did not finish") {
		t.Fatalf("recovery %v", db.Recovery())
	}
	if _, err := db.GetState("small"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := db.Consensus("microdesc"); err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestReopenRepairs: files damaged or removed while badger is closed for
// idleness are handled by the next operation's reopen as Open handles
// them at start: a table with a damaged footer (badger itself would end
// the process) is dropped and reported, and a badger directory removed
// meanwhile (an app's "clear cache") starts afresh. The store keeps
// working either way.
func TestReopenRepairs(t *testing.T) {
	src, mds := pristine(t)
	uniq := map[[32]byte]bool{}
	for _, md := range mds {
		uniq[md.Digest] = true
	}
	for _, damage := range []string{"footer", "cleared"} {
		t.Run(damage, func(t *testing.T) {
			dir := copyDir(t, src)
			db, err := Open(dir, Options{Logf: t.Logf, IdleClose: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			waitFor(t, "the idle close", func() bool { return !db.badgerOpen() })
			bdir := filepath.Join(dir, badgerName)
			var hit string
			switch damage {
			case "footer":
				tables, _ := filepath.Glob(filepath.Join(bdir, "*.sst"))
				var size int64
				for _, tb := range tables {
					if st, err := os.Stat(tb); err == nil && st.Size() > size {
						hit, size = filepath.Base(tb), st.Size()
					}
				}
				if hit == "" {
					t.Fatal("no table to damage")
				}
				flipByte(t, filepath.Join(bdir, hit), size-1)
			case "cleared":
				if err := os.RemoveAll(bdir); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.GetState("small"); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("first operation after the damage: %v", err)
			}
			if db.reopenCount() != 1 {
				t.Fatalf("%d reopens", db.reopenCount())
			}
			got := len(collect(t, db))
			switch damage {
			case "footer":
				if r := db.Recovery(); r == nil || !strings.Contains(r.Error(), hit) {
					t.Fatalf("damage to %s not reported: %v", hit, r)
				}
				if got >= len(uniq) {
					t.Fatalf("%d of %d microdescriptors after dropping %s", got, len(uniq), hit)
				}
			case "cleared":
				if got != 0 {
					t.Fatalf("%d microdescriptors in a cleared cache", got)
				}
			}
			if _, err := db.Consensus("microdesc"); err != nil {
				t.Fatal(err)
			}
			if err := db.PutState("after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if v, err := db.GetState("after"); err != nil || string(v) != "x" {
				t.Fatal(v, err)
			}
		})
	}
}
