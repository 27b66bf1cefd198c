//go:build !nodev

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
)

const testnetStatusUsage = "usage: onionlite testnet status --dir DIR [--json]"

func init() {
	testnetSubs["status"] = testnetStatus
}

// testnetStatus reports each recorded process alive or dead and the
// consensus the first live authority serves. It exits 0 only when the
// whole network is up.
func testnetStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testnet status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "network directory")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil || *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, testnetStatusUsage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := testnet.ReadStatus(ctx, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "onionlite testnet status: %v\n", err)
		return 1
	}
	code := 0
	if !s.Up() {
		code = 1
	}
	if *asJSON {
		b, err := json.MarshalIndent(struct {
			*testnet.Status
			Up bool
		}{s, code == 0}, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "onionlite testnet status: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return code
	}
	state := func(alive bool) string {
		if alive {
			return "alive"
		}
		return "dead"
	}
	fmt.Fprintf(stdout, "testnet in %s\n", s.Dir)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NICK\tROLE\tPID\tORPORT\tDIRPORT\tSTATE")
	for _, nd := range s.Nodes {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", nd.Nick, nd.Role, nd.PID, nd.ORPort, nd.DirPort, state(nd.Alive))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "  http target %s: %s\n", s.HTTPTarget, state(s.HTTPAlive))
	if c := s.Consensus; c != nil {
		live := "live"
		if !c.Live {
			live = "NOT live"
		}
		fmt.Fprintf(stdout, "  consensus from %s: valid-after %s, valid-until %s UTC (%s); %d/%d listed, %d running+valid, %d exits\n",
			c.From, c.ValidAfter.Format(time.DateTime), c.ValidUntil.Format(time.DateTime), live, c.Listed, len(s.Nodes), c.RunningValid, c.Exits)
	} else {
		fmt.Fprintf(stdout, "  consensus: none (%s)\n", s.ConsensusErr)
	}
	if code == 0 {
		fmt.Fprintln(stdout, "  up")
	} else {
		fmt.Fprintln(stdout, "  not (fully) up")
	}
	return code
}
