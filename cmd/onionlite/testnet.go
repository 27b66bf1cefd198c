//go:build !nodev

package main

import "io"

// testnetSubs holds the "onionlite testnet" subcommands (testnet_*.go).
var testnetSubs = map[string]func(args []string, stdout, stderr io.Writer) int{}

func init() {
	register(&command{name: "testnet", summary: "a private Tor network on 127.0.0.1: up, down, status", run: func(args []string, stdout, stderr io.Writer) int {
		return subcommands("testnet", testnetSubs, args, stdout, stderr)
	}})
}
