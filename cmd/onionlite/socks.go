package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/onionlite/onionlite/sdk"
)

const socksUsage = `usage: onionlite socks --listen 127.0.0.1:PORT [--authorities FILE] [--data-dir DIR]
                       [--proxy socks5://H:P] [--allow-remote] [-v]

Runs a SOCKS4a/5 proxy through Tor until interrupted. Use it with
"curl --socks5-hostname" or an app's SOCKS setting (remote DNS).`

func init() {
	register(&command{name: "socks", summary: "run a SOCKS5 proxy through Tor", run: runSOCKS})
}

func runSOCKS(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("socks", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf clientFlags
	cf.register(fs)
	listen := fs.String("listen", "127.0.0.1:9150", "address to listen on")
	remote := fs.Bool("allow-remote", false, "allow listening on a non-loopback address (anyone who can reach it can use your client)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, socksUsage)
		return 2
	}
	c, err := cf.client(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite socks:", err)
		return 2
	}
	defer c.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite socks:", err)
		return 1
	}
	// Refuse before bootstrapping, not after (the sdk refuses too).
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && !*remote {
		ln.Close()
		fmt.Fprintf(stderr, "onionlite socks: refusing to serve SOCKS on non-loopback address %v: anyone who can reach it could use your client (--allow-remote to do it anyway)\n", ln.Addr())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() {
		if *remote {
			served <- c.ServeSOCKSRemote(ln)
		} else {
			served <- c.ServeSOCKS(ln)
		}
	}()
	fmt.Fprintf(stderr, "SOCKS proxy on %s; bootstrapping...\n", ln.Addr())
	stopProgress := showProgress(ctx, c, stderr)
	err = bootstrapRetrying(ctx, c, stderr, "socks")
	stopProgress()
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "onionlite socks:", errLine(err))
		return 1
	}
	if err == nil {
		fmt.Fprintf(stderr, "ready: SOCKS proxy on %s\n", ln.Addr())
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "stopping")
		c.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
		}
		writeStats(cf.statsJSON, newClientStats(c.Stats(), 0))
		return 0
	case err := <-served:
		if err != nil && !errors.Is(err, &sdk.Error{Kind: sdk.KindClosed}) {
			fmt.Fprintln(stderr, "onionlite socks:", errLine(err))
			return 1
		}
		return 0
	}
}
