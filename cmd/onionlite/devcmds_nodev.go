//go:build nodev

package main

import (
	"fmt"
	"io"
	"strings"
)

// devCommands are the developer commands the lean client build
// (go build -tags nodev) leaves out: the benchmark harness, the test
// network and the slow-link proxy. They pull in packages no client needs
// (internal/benchrun with debug/elf and debug/dwarf, internal/testnet),
// whose pages would count in the client's resident set. The files that
// implement them carry the constraint !nodev.
var devCommands = []string{"bench", "slowlink", "testnet"}

// init registers a stand-in for each developer command that says it is
// not in this build.
func init() {
	for _, name := range devCommands {
		register(&command{name: name, summary: "not in this build (lean client build, -tags nodev)", run: func(args []string, stdout, stderr io.Writer) int {
			fmt.Fprintf(stderr, "onionlite %s: not in this build: this is the lean client build (go build -tags nodev), "+
				"which leaves out the developer commands (%s); build without the tag for them: go build ./cmd/onionlite\n",
				name, strings.Join(devCommands, ", "))
			return 2
		}})
	}
}
