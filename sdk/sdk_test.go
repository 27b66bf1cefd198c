package sdk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

func testClient(t *testing.T, dataDir string) *Client {
	t.Helper()
	n := testnet.Shared(t)
	c := &Client{DataDir: dataDir, Authorities: n.AuthorityLines(), TestNetwork: true, Logf: t.Logf}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBootstrapColdThenWarm(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	dir := t.TempDir()
	c := testClient(t, dir)
	evctx, stopEvents := context.WithCancel(context.Background())
	events := c.Events(evctx)
	if err := c.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Events end with a ready event (and progress reached 100).
	sawReady := false
	for !sawReady {
		select {
		case ev := <-events:
			if ev.Kind == EventReady {
				sawReady = true
				if ev.Progress.Percent != 100 || ev.Progress.Phase != "ready" {
					t.Fatalf("ready event progress %+v", ev.Progress)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no ready event")
		}
	}
	stopEvents()
	for range events {
	}
	if err := c.WaitDirectoryComplete(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.ConsensusSource != "full" || st.DirBytesRead == 0 || st.BytesRead < st.DirBytesRead || st.Relays == 0 {
		t.Fatalf("cold stats %+v", st)
	}
	if st.RelaysWithMicrodescs != st.Relays {
		t.Fatalf("directory complete with %d of %d microdescriptors", st.RelaysWithMicrodescs, st.Relays)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDirectoryComplete(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitDirectoryComplete after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Bootstrap(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bootstrap after Close: %v", err)
	}

	w := testClient(t, dir)
	if err := w.Bootstrap(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Warm within freshness (60 s intervals; the cold start took about a
	// second): nothing fetched. If the consensus just went stale the
	// client must say so, not pretend.
	ws := w.Stats()
	if time.Now().Before(st.ConsensusFreshUntil) {
		if ws.ConsensusSource != "cache" || ws.DirBytesRead != 0 || ws.BytesRead != 0 {
			t.Fatalf("warm stats %+v", ws)
		}
	} else {
		t.Logf("consensus went stale between the runs; warm stats %+v", ws)
	}
}

func TestReadOnlyDataDirRunsFromMemory(t *testing.T) {
	// Root ignores permission bits, so the cache directory is made
	// impossible to create instead: a regular file is in its way.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "cache")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o400); err != nil {
		t.Fatal(err)
	}
	c := testClient(t, dir)
	evctx, stop := context.WithCancel(context.Background())
	defer stop()
	events := c.Events(evctx)
	if err := c.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("bootstrap with an unusable data dir: %v", err)
	}
	if st := c.Stats(); st.StorageWarning == "" {
		t.Fatal("no storage warning in stats")
	}
	for {
		select {
		case ev := <-events:
			if ev.Kind == EventWarning {
				var e *Error
				if !errors.As(ev.Err, &e) || e.Kind != KindStorage {
					t.Fatalf("warning %v is not a storage error", ev.Err)
				}
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no warning event")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []*Client{
		{},
		{DataDir: t.TempDir(), Authorities: []string{"DirAuthority nonsense"}},
		{DataDir: t.TempDir(), Authorities: []string{"# only a comment"}},
	} {
		err := c.Bootstrap(context.Background())
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindConfig {
			t.Errorf("%+v: err = %v, want a config error", c, err)
		}
		if !errors.Is(err, &Error{Kind: KindConfig}) {
			t.Errorf("errors.Is does not match the kind: %v", err)
		}
	}
}

func TestLifecycleCalls(t *testing.T) {
	n := testnet.Shared(t)
	c := testClient(t, t.TempDir())
	ctx := ctxFor(t, 2*time.Minute)
	conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	c.SetDormant(true)
	if got := c.TrimMemory(TrimCritical); got < 0 {
		t.Fatalf("TrimMemory returned %d", got)
	}
	c.NetworkChanged()
	if st := c.Stats(); st.ChannelsOpen != 0 {
		t.Fatalf("%d channels open after NetworkChanged", st.ChannelsOpen)
	}
	// Dials still work while dormant, over fresh connections.
	conn, err = c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatalf("dial after a network change: %v", err)
	}
	conn.Close()
	c.SetDormant(false)
}

// TestWaitReadyOutlastsFailedRounds: with an authority nobody answers at,
// Bootstrap gives up after its round (KindBootstrapFailed) while WaitReady
// keeps waiting through the client's retries until its deadline
// (KindTimeout).
func TestWaitReadyOutlastsFailedRounds(t *testing.T) {
	c := &Client{DataDir: t.TempDir(), Authorities: []string{testAuthority}, TestNetwork: true, KeepGoMemoryLimit: true}
	defer c.Close()
	err := c.Bootstrap(ctxFor(t, time.Minute))
	if !errors.Is(err, &Error{Kind: KindBootstrapFailed}) {
		t.Fatalf("Bootstrap: %v, want a failed round", err)
	}
	t0 := time.Now()
	err = c.WaitReady(ctxFor(t, 3*time.Second))
	if !errors.Is(err, &Error{Kind: KindTimeout}) {
		t.Fatalf("WaitReady: %v, want a timeout", err)
	}
	if d := time.Since(t0); d < 3*time.Second {
		t.Fatalf("WaitReady returned after %v, before its deadline", d)
	}
	c.Close()
	if err := c.WaitReady(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitReady after Close: %v", err)
	}
}
