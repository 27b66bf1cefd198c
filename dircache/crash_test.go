package dircache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The killed-writer test runs a child (this test binary, selected with
// -test.run and DIRCACHE_CRASH_DIR) that writes in a loop and prints
// "committed N" after each iteration's writes have returned. The parent
// SIGKILLs it at some point, reopens, and checks that every committed
// iteration is intact and every surviving entry is correct.
//
// Iteration i writes, in this order:
//   - 12 microdescriptors crashMD(i, j), listed at crashTime(i);
//   - every 4th i, the consensus crashConsensus(i);
//   - certificate slot i%3 with text "cert <i>";
//   - prunes (zero cutoff) every microdescriptor of iterations < i-8;
//   - state "counter" = i and state "blob" = crashBlob(i).
const crashMDs = 12

func crashMD(i, j int) Microdesc {
	return synthMD(fmt.Sprintf("crash-%d-%d", i, j), 300+(i*7919+j*104729)%6000)
}

func crashTime(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

func crashConsensus(i int) []byte {
	return synthConsensus(fmt.Sprintf("crash-%d", i), 100<<10+i%7*30<<10)
}

func crashBlob(i int) []byte {
	return bytes.Repeat([]byte(strconv.Itoa(i)+","), 2000+i%50*100)
}

// crashIter returns the iteration a synthetic md text belongs to.
func crashIter(text string) (int, bool) {
	const p = "ntor-onion-key crash-"
	i := strings.Index(text, p)
	if i < 0 {
		return 0, false
	}
	rest := text[i+len(p):]
	n, err := strconv.Atoi(rest[:strings.IndexByte(rest, '-')])
	return n, err == nil
}

func crashChild(dir string) error {
	db, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	start := 0
	if v, err := db.GetState("counter"); err == nil {
		n, _ := strconv.Atoi(string(v))
		start = n + 1
	}
	w := bufio.NewWriter(os.Stdout)
	for i := start; ; i++ {
		mds := make([]Microdesc, crashMDs)
		for j := range mds {
			mds[j] = crashMD(i, j)
		}
		if err := db.PutMicrodescs(crashTime(i), mds); err != nil {
			return err
		}
		if i%4 == 0 {
			if err := db.PutConsensus("microdesc", crashConsensus(i), meta(crashTime(i))); err != nil {
				return err
			}
		}
		if err := db.PutCert(Cert{Identity: [20]byte{byte(i % 3)}, Text: []byte(fmt.Sprintf("cert %d\n", i))}); err != nil {
			return err
		}
		if _, err := db.PruneMicrodescs(func(d [32]byte) bool { return false }, crashTime(i-8)); err != nil {
			return err
		}
		if err := db.PutState("counter", []byte(strconv.Itoa(i))); err != nil {
			return err
		}
		if err := db.PutState("blob", crashBlob(i)); err != nil {
			return err
		}
		fmt.Fprintf(w, "committed %d\n", i)
		w.Flush()
	}
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv("DIRCACHE_CRASH_DIR")
	if dir == "" {
		t.Skip("runs only as the child of TestKilledWriter")
	}
	if err := crashChild(dir); err != nil {
		fmt.Println("child error:", err)
		os.Exit(3)
	}
}

// runChild starts a crash child on dir, waits for wait commits (plus
// pause), kills it and returns the last iteration it committed.
func runChild(t *testing.T, dir string, wait int, pause time.Duration) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "DIRCACHE_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last, seen := -1, 0
	for seen < wait && sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q; stderr:\n%s", sc.Text(), stderr.String())
		}
		last, _ = strconv.Atoi(n)
		seen++
	}
	// The child is somewhere inside iteration last+1 now. The pause only
	// moves the kill point; nothing is timed.
	time.Sleep(pause)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Lines still in the pipe were committed too.
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			last, _ = strconv.Atoi(n)
		}
	}
	cmd.Wait()
	if seen < wait {
		t.Fatalf("child stopped after %d commits; stderr:\n%s", seen, stderr.String())
	}
	return last
}

func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	dir := t.TempDir()
	// Kill points per round: commits to wait for, then a pause so that
	// the kill lands at different places inside the next iteration. Each
	// round continues from what the previous one left.
	rounds := []struct {
		wait  int
		pause time.Duration
	}{{3, 0}, {11, 300 * time.Microsecond}, {6, time.Millisecond}, {17, 2 * time.Millisecond}, {1, 0}, {5, 4 * time.Millisecond}, {8, 700 * time.Microsecond}, {4, 8 * time.Millisecond}}
	for _, r := range rounds {
		last := runChild(t, dir, r.wait, r.pause)
		checkCrashState(t, dir, last)
	}
}

// TestDamagedWAL: after a kill the memtable log (.mem) holds the recent
// writes. Damage to it must not crash Open; what survives verifies.
func TestDamagedWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	src := t.TempDir()
	runChild(t, src, 20, 0)
	ents, _ := os.ReadDir(filepath.Join(src, badgerName))
	var mems []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".mem") {
			mems = append(mems, e.Name())
		}
	}
	if len(mems) == 0 {
		t.Fatal("no memtable log after a kill")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range mems {
		st, err := os.Stat(filepath.Join(src, badgerName, name))
		if err != nil {
			t.Fatal(err)
		}
		// The written part is at the front; damage it there and in the
		// first entry's header.
		offs := []int64{0, 20, 21, 22, 25}
		for range 6 {
			offs = append(offs, 20+rng.Int64N(min(st.Size()-20, 400<<10)))
		}
		for _, off := range offs {
			dir := copyDir(t, src)
			flipByte(t, filepath.Join(dir, badgerName, name), off)
			db, err := Open(dir, Options{Logf: t.Logf})
			if err != nil {
				t.Fatalf("%s+%d: %v", name, off, err)
			}
			got := collect(t, db) // checks every md against its digest
			_, _, cerr := db.Certs()
			_, serr := db.GetState("blob")
			if serr != nil && !errors.Is(serr, ErrNotFound) && !errors.Is(serr, ErrCorrupt) {
				t.Fatalf("state: %v", serr)
			}
			t.Logf("%s+%d: %d mds, certs err %v, blob %v, recovery %v", name, off, len(got), cerr, serr, db.Recovery())
			db.Close()
		}
	}
}

// checkCrashState reopens dir after a kill; last is the last iteration the
// child reported as committed.
func checkCrashState(t *testing.T, dir string, last int) {
	t.Helper()
	db := openT(t, dir)
	defer db.Close()
	if err := db.Recovery(); err != nil {
		t.Errorf("after a kill (no damage), Open reported %v", err)
	}
	// Microdescriptors: every stored one verifies (collect checks) and
	// belongs to an iteration that was at least started.
	got := collect(t, db)
	for d, text := range got {
		i, ok := crashIter(text)
		if !ok || i > last+1 {
			t.Fatalf("md %x from iteration %d (last committed %d)", d, i, last)
		}
		if i < last-8 {
			t.Errorf("md of iteration %d survived the prune at %d", i, last)
		}
	}
	// Every md of the committed iterations that no later prune can have
	// touched is there.
	for i := max(0, last-7); i <= last; i++ {
		for j := range crashMDs {
			if md := crashMD(i, j); got[md.Digest] != string(md.Text) {
				t.Fatalf("committed md %d/%d missing (last %d)", i, j, last)
			}
		}
	}
	// Consensus: the one of the last committed multiple of 4, or the one
	// iteration last+1 was writing.
	c, err := db.Consensus("microdesc")
	if err != nil {
		t.Fatalf("consensus: %v", err)
	}
	want := crashConsensus(last / 4 * 4)
	if !bytes.Equal(c.Text, want) && !((last+1)%4 == 0 && bytes.Equal(c.Text, crashConsensus(last+1))) {
		t.Fatalf("consensus is not the last committed one (last %d)", last)
	}
	if !c.ValidAfter.Equal(crashTime(last/4*4)) && !c.ValidAfter.Equal(crashTime(last+1)) {
		t.Errorf("consensus meta %v", c.ValidAfter)
	}
	// State: counter and blob are from the same or the next iteration.
	v, err := db.GetState("counter")
	if err != nil {
		t.Fatalf("counter: %v", err)
	}
	n, _ := strconv.Atoi(string(v))
	if n != last && n != last+1 {
		t.Fatalf("counter %d, last committed %d", n, last)
	}
	blob, err := db.GetState("blob")
	if err != nil || !bytes.Equal(blob, crashBlob(last)) && !bytes.Equal(blob, crashBlob(last+1)) {
		t.Fatalf("blob wrong: %v", err)
	}
	certs, dropped, err := db.Certs()
	if err != nil || dropped != 0 {
		t.Fatalf("certs: %v, dropped %d", err, dropped)
	}
	for _, c := range certs {
		var i int
		if _, err := fmt.Sscanf(string(c.Text), "cert %d\n", &i); err != nil || i%3 != int(c.Identity[0]) || i > last+1 || i < last-2 {
			t.Fatalf("cert %q in slot %d (last %d)", c.Text, c.Identity[0], last)
		}
	}
	if len(certs) != min(3, last+1) && len(certs) != min(3, last+2) {
		t.Fatalf("%d certs", len(certs))
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
	t.Logf("last committed %d: %d mds, counter %d", last, len(got), n)
}
