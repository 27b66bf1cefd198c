//go:build !nodev

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

const testnetUpUsage = "usage: onionlite testnet up --dir DIR [--auths N] [--relays N] [--exits N] [--interval 60s] [--tor PATH] [--timeout 6m]"

func init() {
	testnetSubs["up"] = testnetUp
}

// testnetUp starts a detached network in --dir and returns once it is
// ready. The nodes and the HTTP target (this binary's "testnet
// serve-http") keep running after it exits; "testnet down" stops them. A
// directory that already holds a stopped network is restarted warm.
func testnetUp(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testnet up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "network directory (created if missing; a stopped network there is restarted)")
	auths := fs.Int("auths", 3, "directory authorities")
	relays := fs.Int("relays", 4, "middle relays")
	exits := fs.Int("exits", 3, "exit relays")
	interval := fs.Duration("interval", time.Minute, "voting interval (at least 10s, dividing 24h)")
	torPath := fs.String("tor", "", `tor binary (default "tor" from PATH, then /usr/sbin/tor)`)
	timeout := fs.Duration("timeout", testnet.StartTimeout, "give up if the network is not ready by then")
	quiet := fs.Bool("q", false, "do not print progress")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "onionlite testnet up: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		return fail(2, "%v\n%s", err, testnetUpUsage)
	}
	if *dir == "" || fs.NArg() != 0 {
		return fail(2, "%s", testnetUpUsage)
	}
	if *auths < 1 || *relays < 0 || *exits < 1 {
		return fail(2, "--auths and --exits must be at least 1, --relays at least 0")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fail(1, "%v", err)
	}
	if _, err := os.Stat(filepath.Join(abs, testnet.StateFile)); err == nil {
		fmt.Fprintf(stderr, "onionlite testnet up: restarting the network in %s (its own counts and interval apply)\n", abs)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(1, "cannot find this binary to serve the HTTP target: %v", err)
	}
	t0 := time.Now()
	cfg := testnet.Config{
		Dir: abs, Auths: *auths, Relays: *relays, Exits: *exits, Interval: *interval, TorPath: *torPath,
		Detached:    true,
		HTTPCommand: []string{exe, "testnet", "serve-http", "--dir", abs},
	}
	if !*quiet {
		cfg.Logf = func(format string, a ...any) {
			fmt.Fprintf(stderr, "%6.1fs %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, a...))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	n, err := testnet.Start(ctx, cfg)
	if err != nil {
		if errors.Is(err, testnet.ErrTorNotFound) {
			return fail(1, "%v", err)
		}
		return fail(1, "%v\nEverything it started has been stopped.", err)
	}
	fmt.Fprintf(stdout, "testnet up in %s: ready after %.1fs\n", n.Dir(), time.Since(t0).Seconds())
	fmt.Fprintf(stdout, "  authorities:  %s (torrc DirAuthority lines)\n", n.AuthoritiesFile())
	fmt.Fprintf(stdout, "  description:  %s\n", filepath.Join(n.Dir(), testnet.StateFile))
	fmt.Fprintf(stdout, "  logs:         %s\n", n.LogDir())
	fmt.Fprintf(stdout, "  http target:  http://%s/ serving", n.HTTPTarget())
	for _, b := range n.Bodies() {
		fmt.Fprintf(stdout, " %s", b.Name)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NICK\tROLE\tPID\tORPORT\tDIRPORT\tFINGERPRINT")
	for _, nd := range n.Nodes() {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", nd.Nick, nd.Role, nd.PID, nd.ORPort, nd.DirPort, nd.Fingerprint)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "stop it with: onionlite testnet down --dir %s\n", n.Dir())
	return 0
}
