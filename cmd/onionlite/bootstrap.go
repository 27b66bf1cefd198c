package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/onionlite/onionlite/sdk"
)

const bootstrapUsage = `usage: onionlite bootstrap [--authorities FILE] [--data-dir DIR] [--proxy socks5://H:P]
                           [--stats-json FILE] [--timeout 5m] [--stay DURATION] [-v]

Fetches (or loads from the cache) a verified directory, says when it is
usable ("ready in"), and exits once the microdescriptors that arrive after
that are in too ("complete in"). Progress goes to stderr: a bar on a terminal, plain lines otherwise.
With --stay the client keeps running that long afterwards, refreshing the
directory as a long-running client would.`

func init() {
	register(&command{name: "bootstrap", summary: "fetch a verified directory and report progress", run: runBootstrap})
}

func runBootstrap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf clientFlags
	cf.register(fs)
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	stay := fs.Duration("stay", 0, "keep running (refreshing the directory) this long after bootstrap")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, bootstrapUsage)
		return 2
	}
	c, err := cf.client(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite bootstrap:", err)
		return 2
	}
	defer c.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	stop := showProgress(ctx, c, stderr)
	err = bootstrapRetrying(ctx, c, stderr, "bootstrap")
	took := time.Since(start)
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "onionlite bootstrap:", errLine(err))
		writeStats(cf.statsJSON, newClientStats(c.Stats(), took))
		return 1
	}
	st := c.Stats()
	fmt.Fprintf(stderr, "ready in %v: %d relays, consensus from %s, %s of directory data\n",
		took.Round(time.Millisecond), st.Relays, st.ConsensusSource, humanBytes(st.DirBytesRead))
	// Ready comes once the microdescriptors in hand are enough; the
	// cache this command fills should hold them all.
	if err := c.WaitDirectoryComplete(ctx); err != nil {
		fmt.Fprintln(stderr, "onionlite bootstrap: directory not complete:", errLine(err))
		writeStats(cf.statsJSON, newClientStats(c.Stats(), took))
		return 1
	}
	st = c.Stats()
	fmt.Fprintf(stderr, "complete in %v: %d of %d relays have a microdescriptor, %s of directory data\n",
		time.Since(start).Round(time.Millisecond), st.RelaysWithMicrodescs, st.Relays, humanBytes(st.DirBytesRead))
	if *stay > 0 {
		time.Sleep(*stay)
		st = c.Stats()
		fmt.Fprintf(stderr, "after %v: %d directory refreshes, %s of directory data\n", *stay, st.DirectoryRefreshes, humanBytes(st.DirBytesRead))
	}
	// Close first: peak_rss_bytes covers the whole run, closing included.
	c.Close()
	if err := writeStats(cf.statsJSON, newClientStats(st, took)); err != nil {
		fmt.Fprintln(stderr, "onionlite bootstrap:", err)
		return 1
	}
	return 0
}

// outMu serialises writes to stderr between showProgress's goroutine and
// messages printed while it runs (bootstrapRetrying).
var outMu sync.Mutex

type lockedWriter struct{ w io.Writer }

func (l lockedWriter) Write(b []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return l.w.Write(b)
}

// showProgress prints bootstrap progress to w until the returned stop is
// called: an updating bar on a terminal, one line per phase or 10% step
// otherwise.
func showProgress(ctx context.Context, c *sdk.Client, w io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	tty := isTerminal(w)
	w = lockedWriter{w}
	go func() {
		defer close(done)
		lastPhase, lastPct := "", -10
		for ev := range c.Events(ctx) {
			if ev.Kind == sdk.EventWarning {
				fmt.Fprintf(w, "\rwarning: %v\n", ev.Err)
				continue
			}
			p := ev.Progress
			if tty {
				const width = 30
				n := width * p.Percent / 100
				fmt.Fprintf(w, "\r[%s%s] %3d%% %-17s %9s", strings.Repeat("#", n), strings.Repeat(".", width-n), p.Percent, p.Phase, humanBytes(p.DirBytes))
				continue
			}
			if p.Phase != lastPhase || p.Percent >= lastPct+10 {
				fmt.Fprintf(w, "bootstrap %3d%% %s: %s (%s)\n", p.Percent, p.Phase, p.Message, humanBytes(p.DirBytes))
				lastPhase, lastPct = p.Phase, p.Percent
			}
		}
		if tty {
			fmt.Fprint(w, "\n")
		}
	}()
	return func() { cancel(); <-done }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func humanBytes(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 10<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
