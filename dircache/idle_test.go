package dircache

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleClose: badger closes once no operation has run for IdleClose,
// the next operation opens it again with everything stored, an operation
// that runs longer than IdleClose keeps it open, and Close works in
// either state.
func TestIdleClose(t *testing.T) {
	const idle = 100 * time.Millisecond
	dir := t.TempDir()
	db, err := Open(dir, Options{Logf: t.Logf, IdleClose: idle})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutState("k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	mds := []Microdesc{synthMD("idle", 600)}
	if err := db.PutMicrodescs(time.Unix(1700000000, 0), mds); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle close", func() bool { return !db.badgerOpen() })
	if n := db.MemTableBytes(); n != 0 {
		t.Fatalf("MemTableBytes %d while idle-closed", n)
	}
	if v, err := db.GetState("k"); err != nil || string(v) != "v1" {
		t.Fatalf("after reopening: %q %v", v, err)
	}
	if n := db.reopenCount(); n != 1 {
		t.Fatalf("%d reopens, want 1", n)
	}
	// A walk that outlasts IdleClose keeps badger open under it.
	waitFor(t, "the second idle close", func() bool { return !db.badgerOpen() })
	n := 0
	if _, err := db.ForEachMicrodesc(func(d [32]byte, text []byte) error {
		time.Sleep(3 * idle)
		if !db.badgerOpen() {
			t.Error("badger closed during a walk")
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("walk: %d mds, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close after idle use: %v", err)
	}
	if _, err := db.GetState("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	time.Sleep(2 * idle) // the idle timer must not touch a closed store

	// Reopened from disk, idle-closed, then closed: nothing lost.
	db, err = Open(dir, Options{Logf: t.Logf, IdleClose: idle})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle close after Open", func() bool { return !db.badgerOpen() })
	if err := db.Close(); err != nil {
		t.Fatalf("close while idle-closed: %v", err)
	}
	db, err = Open(dir, Options{Logf: t.Logf, IdleClose: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.GetState("k"); err != nil || string(v) != "v1" {
		t.Fatalf("after reopen from disk: %q %v", v, err)
	}
	time.Sleep(3 * idle)
	if !db.badgerOpen() {
		t.Fatal("IdleClose < 0 closed badger")
	}
}

// TestIdleCloseCompactsLevel0: an idle close compacts level 0 first when
// that is due, so repeated write-then-idle cycles (a slow link's
// bootstrap) do not pile tables up at level 0 for the next open to
// compact: at most the last close's flush is added to what compaction
// left.
func TestIdleCloseCompactsLevel0(t *testing.T) {
	const idle = 100 * time.Millisecond
	db, err := Open(t.TempDir(), Options{Logf: t.Logf, IdleClose: idle})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const cycles = 5
	for i := range cycles {
		var mds []Microdesc
		for j := range 300 {
			mds = append(mds, synthMD(fmt.Sprintf("l0-%d-%d", i, j), 600))
		}
		if err := db.PutMicrodescs(time.Unix(1700000000, 0), mds); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the idle close", func() bool { return !db.badgerOpen() })
	}
	if err := db.begin(); err != nil { // reopens badger
		t.Fatal(err)
	}
	l0, all := level0Tables(db.bdb), len(db.bdb.Tables())
	db.end()
	if all == 0 || l0 >= db.bopt.NumLevelZeroTables+1 {
		t.Fatalf("%d of %d tables at level 0 after %d write-and-idle cycles", l0, all, cycles)
	}
	t.Logf("%d of %d tables at level 0", l0, all)
}

// TestWritesCompactLevel0: with badger's compactors off, the store's own
// compaction after each write keeps level 0 small, so a long run of
// writes (dozens of memtable flushes) neither stalls at badger's level-0
// limit nor loses anything; and no compactor goroutine runs while badger
// is open (each would wake the process 20 times a second).
func TestWritesCompactLevel0(t *testing.T) {
	const memTable = 128 << 10
	db, err := Open(t.TempDir(), Options{Logf: t.Logf, IdleClose: -1, Badger: func(o badger.Options) badger.Options {
		return o.WithMemTableSize(memTable)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "runCompactor") {
		t.Fatalf("a badger compactor is running:\n%s", st)
	}

	// About 25 memtables' worth of keys: without compaction, level 0
	// would reach NumLevelZeroTablesStall (8) and every write would wait
	// forever.
	const batches, per = 50, 300
	var all []Microdesc
	done := make(chan error, 1)
	maxL0 := 0
	go func() {
		for i := range batches {
			var mds []Microdesc
			for j := range per {
				mds = append(mds, synthMD(fmt.Sprintf("w-%d-%d", i, j), 300))
			}
			if err := db.PutMicrodescs(time.Unix(1700000000, 0), mds); err != nil {
				done <- err
				return
			}
			all = append(all, mds...)
			if err := db.begin(); err != nil {
				done <- err
				return
			}
			maxL0 = max(maxL0, level0Tables(db.bdb))
			db.end()
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("writes stalled: level 0 was not compacted")
	}
	if maxL0 > db.bopt.NumLevelZeroTables+2 {
		t.Errorf("level 0 reached %d tables (compaction due at %d)", maxL0, db.bopt.NumLevelZeroTables)
	}
	if err := db.begin(); err != nil {
		t.Fatal(err)
	}
	below := 0
	for _, ti := range db.bdb.Tables() {
		if ti.Level > 0 {
			below++
		}
	}
	db.end()
	if below == 0 {
		t.Fatal("no table below level 0: nothing was compacted")
	}
	want := make([][32]byte, len(all))
	for i, md := range all {
		want[i] = md.Digest
	}
	if missing, err := db.MissingMicrodescs(want); err != nil || len(missing) != 0 {
		t.Fatalf("%d of %d microdescriptors missing after compactions (%v)", len(missing), len(all), err)
	}
	t.Logf("%d microdescriptors; level 0 peaked at %d tables; %d tables below it", len(all), maxL0, below)
}
