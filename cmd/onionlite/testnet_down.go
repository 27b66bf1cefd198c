//go:build !nodev

package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/onionlite/onionlite/internal/testnet"
)

const testnetDownUsage = "usage: onionlite testnet down --dir DIR"

func init() {
	testnetSubs["down"] = testnetDown
}

// testnetDown stops exactly the processes recorded in DIR/testnet.json,
// each only while its command line still names this network.
func testnetDown(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testnet down", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "network directory")
	if err := fs.Parse(args); err != nil || *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, testnetDownUsage)
		return 2
	}
	stopped, err := testnet.Down(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "onionlite testnet down: %v\n", err)
		return 1
	}
	if len(stopped) == 0 {
		fmt.Fprintf(stdout, "testnet in %s: nothing was running\n", *dir)
		return 0
	}
	fmt.Fprintf(stdout, "testnet in %s: stopped %d processes %v\n", *dir, len(stopped), stopped)
	return 0
}
