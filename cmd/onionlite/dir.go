package main

import "io"

// dirSubs holds the "onionlite dir" subcommands; each lives in its own
// dir_*.go file and adds itself in init.
var dirSubs = map[string]func(args []string, stdout, stderr io.Writer) int{}

func init() {
	register(&command{name: "dir", summary: "directory tools: verify, apply-diff, stats", run: func(args []string, stdout, stderr io.Writer) int {
		return subcommands("dir", dirSubs, args, stdout, stderr)
	}})
}
