//go:build !nodev

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/onionlite/onionlite/internal/testnet"
)

func init() {
	testnetSubs["serve-http"] = testnetServeHTTP
}

// testnetServeHTTP serves a network's HTTP target until SIGTERM or SIGINT,
// writing its address to DIR/http_target. "testnet up" starts it detached.
func testnetServeHTTP(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testnet serve-http", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "network directory")
	if err := fs.Parse(args); err != nil || *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: onionlite testnet serve-http --dir DIR")
		return 2
	}
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := testnet.ServeHTTPTarget(ctx, *dir); err != nil {
		fmt.Fprintf(stderr, "onionlite testnet serve-http: %v\n", err)
		return 1
	}
	return 0
}
