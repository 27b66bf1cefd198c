package dircache

import (
	"errors"
	"fmt"
	"testing"
	"time"
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

// TestIdleCloseWaitsForCompaction: an idle close waits while a level-0
// compaction is due, so repeated write-then-idle cycles (a slow link's
// bootstrap) do not pile tables up at level 0 for the next open to
// compact: at most the last close's flush is added to what compaction
// left.
func TestIdleCloseWaitsForCompaction(t *testing.T) {
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
