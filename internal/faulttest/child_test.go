//go:build linux

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// A child is this test binary run as TestChildClient with envChild set to
// a JSON childSpec: an sdk client in its own process, which the parent
// can SIGKILL, run as another user, or point at a data directory the
// parent may not touch safely (a full file system).
const envChild = "ONIONLITE_FAULTTEST_CHILD"

type childSpec struct {
	DataDir     string
	Authorities []string
	HTTPTarget  string // fetched once bootstrapped, if set
	Hold        bool   // wait to be killed instead of exiting
	// Announce opens the cache itself (as the sdk does) and wraps it so
	// that every write is announced: "put NAME" before, "done NAME"
	// after. A parent can then kill the child inside a given write.
	Announce bool
	// Now, if set, is the child's clock at its start (sdk.StartingAt).
	Now time.Time
	// FillLeave, if set, fills the data directory's file system once the
	// client has opened its cache, leaving about that many bytes free.
	FillLeave int64
}

// The child reports on stdout, one line each:
//
//	phase NAME            bootstrap progress moved to a new phase
//	warning KIND: ERR     a warning event
//	ready SOURCE FETCHED  bootstrapped: consensus source, microdescriptors fetched
//	fetched               the HTTP target answered
//	stats STOREERRORS WARNING
//	put NAME, done NAME   around each write to the cache (Announce)
//	error KIND: ERR       something failed (exit status 3)
func TestChildClient(t *testing.T) {
	raw := os.Getenv(envChild)
	if raw == "" {
		t.Skip("runs only as the child of other tests in this package")
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Printf("error config: %v\n", err)
		os.Exit(3)
	}
	os.Exit(childMain(spec))
}

func childMain(spec childSpec) int {
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) } // stdout is unbuffered
	fail := func(err error) int {
		kind := "other"
		if e, ok := err.(*sdk.Error); ok {
			kind = e.Kind.String()
		}
		say("error %s: %v", kind, err)
		return 3
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	c := &sdk.Client{DataDir: spec.DataDir, Authorities: spec.Authorities, TestNetwork: true, Logf: logf}
	if !spec.Now.IsZero() {
		c.Clock = sdk.StartingAt(spec.Now)
	}
	if spec.Announce {
		db, err := dircache.Open(filepath.Join(spec.DataDir, "cache"), dircache.Options{Logf: logf})
		if err != nil {
			return fail(err)
		}
		defer db.Close()
		c.Store = &announcingStore{Store: db, say: say}
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	evctx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	events := c.Events(evctx)
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		phase := ""
		for ev := range events {
			switch {
			case ev.Kind == sdk.EventWarning:
				kind := "other"
				if e, ok := ev.Err.(*sdk.Error); ok {
					kind = e.Kind.String()
				}
				say("warning %s: %v", kind, ev.Err)
			case ev.Progress.Phase != phase:
				phase = ev.Progress.Phase
				say("phase %s", phase)
			}
		}
	}()
	if spec.FillLeave > 0 {
		if err := c.Start(); err != nil {
			return fail(err)
		}
		if err := fillFS(spec.DataDir, spec.FillLeave); err != nil {
			return fail(err)
		}
		say("filled")
	}
	if err := c.Bootstrap(ctx); err != nil {
		return fail(err)
	}
	st := c.Stats()
	say("ready %s %d", st.ConsensusSource, st.MicrodescsFetched)
	if spec.HTTPTarget != "" {
		conn, err := c.DialContext(ctx, "tcp", spec.HTTPTarget)
		if err != nil {
			return fail(err)
		}
		if err := fetchHello(conn, spec.HTTPTarget); err != nil {
			return fail(err)
		}
		say("fetched")
	}
	// As the CLI does: the rest of the directory (the microdescriptors
	// beyond enough, or the newer consensus after a start from an
	// expired one) comes in the background; it is in the store before
	// the process ends.
	if err := c.WaitDirectoryComplete(ctx); err != nil {
		return fail(err)
	}
	say("complete")
	st = c.Stats()
	say("stats %d %s", st.StoreErrors, strings.ReplaceAll(st.StorageWarning, "\n", " "))
	stopEvents()
	<-evDone
	if spec.Hold {
		select {} // until killed
	}
	return 0
}

// fillFS writes a file into dir that leaves about leave bytes free on its
// file system.
func fillFS(dir string, leave int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, int64(st.Bavail)*st.Bsize-leave))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// announcingStore announces every write before and after it.
type announcingStore struct {
	dircache.Store
	say func(format string, args ...any)
}

func (s *announcingStore) around(name string, f func() error) error {
	s.say("put %s", name)
	err := f()
	s.say("done %s", name)
	return err
}

func (s *announcingStore) PutConsensus(flavor string, text []byte, meta dircache.ConsensusMeta) error {
	return s.around("PutConsensus", func() error { return s.Store.PutConsensus(flavor, text, meta) })
}

func (s *announcingStore) PutMicrodescs(at time.Time, mds []dircache.Microdesc) error {
	return s.around("PutMicrodescs", func() error { return s.Store.PutMicrodescs(at, mds) })
}

func (s *announcingStore) MarkListed(at time.Time, digests [][32]byte) error {
	return s.around("MarkListed", func() error { return s.Store.MarkListed(at, digests) })
}

func (s *announcingStore) PruneMicrodescs(keep func([32]byte) bool, cutoff time.Time) (n int, err error) {
	err = s.around("PruneMicrodescs", func() error { n, err = s.Store.PruneMicrodescs(keep, cutoff); return err })
	return n, err
}

func (s *announcingStore) PutCert(c dircache.Cert) error {
	return s.around("PutCert", func() error { return s.Store.PutCert(c) })
}

func (s *announcingStore) PutState(key string, value []byte) error {
	return s.around("PutState", func() error { return s.Store.PutState(key, value) })
}

// child is a running child process.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
	seen   []string
}

// startChild runs a child client with spec, as user uid unless uid < 0.
func startChild(t *testing.T, spec childSpec, uid int) *child {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildClient$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envChild+"="+string(raw), "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, lines: make(chan string, 64), stderr: &strings.Builder{}}
	cmd.Stderr = &lockedWriter{w: c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// waitFor returns once the child printed a line starting with one of
// prefixes, returning that line; it fails the test if the child printed
// an error line or ended first.
func (c *child) waitFor(prefixes ...string) string {
	c.t.Helper()
	for l := range c.lines {
		c.seen = append(c.seen, l)
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				return l
			}
			// A phase line may be skipped (a slow events reader sees only
			// the latest progress): a later stage stands in for it.
			if want := stageOf(p); strings.HasPrefix(p, "phase ") && want >= 0 && stageOf(l) > want {
				return l
			}
		}
		if strings.HasPrefix(l, "error ") {
			c.kill()
			c.t.Fatalf("child: %s\nstderr:\n%s", l, c.stderrText())
		}
	}
	c.cmd.Wait()
	c.t.Fatalf("child ended (%v) before %q; it said %q\nstderr:\n%s", c.cmd.ProcessState, prefixes, c.seen, c.stderrText())
	return ""
}

// stages orders the child's lines: phase lines may be skipped, the others
// always come.
var stages = []string{"phase starting", "phase loading_cache", "phase connecting", "phase consensus",
	"phase certificates", "phase microdescriptors", "ready", "phase ready", "fetched", "complete", "stats"}

func stageOf(line string) int {
	for i, p := range stages {
		if strings.HasPrefix(line, p) {
			return i
		}
	}
	return -1
}

// kill sends SIGKILL and reaps the child.
func (c *child) kill() {
	c.cmd.Process.Kill()
	for l := range c.lines {
		c.seen = append(c.seen, l)
	}
	c.cmd.Wait()
}

// wait reaps a child that exits by itself and returns everything it said.
func (c *child) wait() ([]string, error) {
	for l := range c.lines {
		c.seen = append(c.seen, l)
	}
	err := c.cmd.Wait()
	return c.seen, err
}

func (c *child) stderrText() string {
	w := c.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	s := c.stderr.String()
	if len(s) > 8000 {
		s = "…" + s[len(s)-8000:]
	}
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func childSpecFor(n *testnet.Network, dataDir string) childSpec {
	return childSpec{DataDir: dataDir, Authorities: n.AuthorityLines(), HTTPTarget: n.HTTPTarget()}
}
