//go:build linux

package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// mountTmpfs mounts a tmpfs with opts ("size=64k") for the rest of the
// test, or skips the test when this process may not mount (it needs
// CAP_SYS_ADMIN; root ignores permission bits, so a file system is the
// only honest way to make a directory unwritable or full for it).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, opts+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): run as root to test read-only and full data directories", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mp, err)
		}
	})
	return mp
}

func remountReadOnly(t *testing.T, mp string) {
	t.Helper()
	if err := syscall.Mount("", mp, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirUnwritable starts clients whose data directory is on a
// read-only file system (empty, or holding a complete cache) or on a full
// one (too small from the start, or filled once the cache is open). Each
// must bootstrap and fetch from memory, and say why the cache is not used:
// a KindStorage warning event and Stats.StorageWarning when the cache
// cannot be opened, Stats.StoreErrors when writes fail. The full cases
// run in a child process: a full file system used to kill the process
// with SIGBUS (badger's mapped files), which no test could survive.
func TestDataDirUnwritable(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last
	n := testnet.Shared(t)
	ctx := ctxFor(t, 5*time.Minute)

	inProcess := func(t *testing.T, dir string) {
		c := newClient(t, n, dir, nil)
		evctx, stop := context.WithTimeout(ctx, 2*time.Minute) // bounds the wait for the event only
		defer stop()
		events := c.Events(evctx)
		if err := c.Bootstrap(ctx); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
		fetchSum(t, ctx, c, n, "hello.txt")
		st := c.Stats()
		if !strings.Contains(st.StorageWarning, "not writable") {
			t.Errorf("storage warning %q", st.StorageWarning)
		}
		for ev := range events {
			if ev.Kind == sdk.EventWarning {
				if !errors.Is(ev.Err, &sdk.Error{Kind: sdk.KindStorage}) {
					t.Errorf("warning %v is not KindStorage", ev.Err)
				}
				return
			}
		}
		t.Error("no warning event")
	}
	t.Run("read-only, empty", func(t *testing.T) {
		mp := mountTmpfs(t, "size=64m")
		remountReadOnly(t, mp)
		inProcess(t, mp)
	})
	t.Run("read-only, holding a cache", func(t *testing.T) {
		mp := mountTmpfs(t, "size=64m")
		c := newClient(t, n, mp, nil)
		if err := c.Bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
		c.Close()
		remountReadOnly(t, mp)
		inProcess(t, mp)
	})
	full := func(t *testing.T, size string, leave int64) []string {
		mp := mountTmpfs(t, "size="+size)
		spec := childSpecFor(n, mp)
		spec.FillLeave = leave
		c := startChild(t, spec, -1)
		lines, err := c.wait()
		if err != nil {
			t.Fatalf("the client's process died: %v; it said %q\nstderr:\n%s", err, lines, c.stderrText())
		}
		if !slices.Contains(lines, "fetched") {
			t.Fatalf("the client did not fetch; it said %q", lines)
		}
		return lines
	}
	t.Run("full from the start", func(t *testing.T) {
		lines := full(t, "64k", 0)
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "warning storage: ") }) {
			t.Errorf("no storage warning; the client said %q", lines)
		}
	})
	t.Run("full once open", func(t *testing.T) {
		lines := full(t, "48m", 256<<10)
		var errs int
		for _, l := range lines {
			fmt.Sscanf(l, "stats %d", &errs)
		}
		if errs == 0 {
			t.Errorf("no failed cache write counted; the client said %q", lines)
		}
	})
}
