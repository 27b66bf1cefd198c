//go:build !nodev

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/onionlite/onionlite/internal/benchrun"
)

const benchUsage = `usage: onionlite bench [--quick] [--out docs/bench] [--report FILE] [--reps N] [--replay-reps 2] [--profiles LIST]
                       [--networks LIST] [--starts cold,warm,stale] [--interval 20s] [--timeout 5m]
                       [--work DIR] [--keep] [--report-only] [-v] [--client-v]
                       [--memory-budget 16MiB] [--client-bin PATH]

Runs onionlite and C tor side by side on local test networks and link
profiles and writes results.json and SVG plots into --out and the report
(default: docs/BENCHMARKS.md beside --out). Results of networks not run
this time are kept from an existing results.json.

  --quick       the CI mode: 10-relay network, unthrottled and 64 kbit/s, 1 repetition
  --networks    testnet10, testnet50, replay2019 (default: all; quick: testnet10)
  --profiles    unthrottled, 3g, edge, gprs, slow64, lossy (default: all; quick: unthrottled,slow64)
  --memory-budget onionlite's whole-process budget in every run (default 16MiB, the phones' default; "" = the CLI's)
  --client-bin  the onionlite binary to measure (default: this one); scripts/bench passes the lean client build
                (CGO_ENABLED=0 go build -tags nodev), whose build the results record
  --report-only rewrite the report, the plots and results.json's layout from results.json without measuring`

func init() {
	register(&command{name: "bench", summary: "benchmark onionlite beside C tor and write docs/BENCHMARKS.md", run: runBench})
}

func runBench(args []string, stdout, stderr io.Writer) int {
	o, reportOnly, code := benchOptions(args, stderr)
	if code >= 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "onionlite bench: "+format+"\n", a...)
		return code
	}
	if reportOnly {
		res, err := benchrun.LoadResults(filepath.Join(o.Out, "results.json"))
		if err != nil {
			return fail(1, "%v", err)
		}
		// Rewriting it brings an older file to the current layout.
		if err := res.Save(filepath.Join(o.Out, "results.json")); err != nil {
			return fail(1, "%v", err)
		}
		if err := benchrun.WriteReport(res, o.Out, o.Report); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "wrote %s and the plots in %s\n", o.Report, o.Out)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t0 := time.Now()
	if err := benchrun.RunSuite(ctx, o); err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stdout, "wrote %s, %s/results.json and the plots in %s (%v)\n", o.Report, o.Out, o.Out, time.Since(t0).Round(time.Second))
	return 0
}

// benchOptions parses the bench flags. With --report-only only Out and
// Report are set. code is the exit code when parsing failed, else -1.
func benchOptions(args []string, stderr io.Writer) (o benchrun.Options, reportOnly bool, code int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	quick := fs.Bool("quick", false, "short run for CI")
	out := fs.String("out", filepath.Join("docs", "bench"), "directory for results.json and the plots")
	report := fs.String("report", "", "Markdown report (default: BENCHMARKS.md in the parent of --out)")
	reps := fs.Int("reps", 0, "repetitions per client, scenario and link (default 3; quick 1)")
	replayReps := fs.Int("replay-reps", 2, "repetitions on the full-scale replay (its slow-link runs take minutes each)")
	profiles := fs.String("profiles", "", "link profiles, comma-separated, or all")
	networks := fs.String("networks", "", "networks, comma-separated")
	starts := fs.String("starts", "cold,warm,stale", "starts to measure (cold is always needed)")
	interval := fs.Duration("interval", 20*time.Second, "voting interval of the test networks")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound for one client run")
	work := fs.String("work", "", "scratch directory (default: a temporary one)")
	keep := fs.Bool("keep", false, "keep the scratch directory (client data and logs)")
	reportOnlyF := fs.Bool("report-only", false, "only regenerate the report from results.json")
	verbose := fs.Bool("v", false, "log the test networks' progress too")
	clientVerbose := fs.Bool("client-v", false, "run onionlite with -v (its debug log goes into each run's log file)")
	memory := fs.String("memory-budget", "16MiB", `onionlite's --memory-budget in every run ("" for the CLI's platform default); 16MiB is the phones' default`)
	clientBin := fs.String("client-bin", "", "the onionlite binary to measure (default: this one)")
	fail := func(code int, format string, a ...any) (benchrun.Options, bool, int) {
		fmt.Fprintf(stderr, "onionlite bench: "+format+"\n", a...)
		return benchrun.Options{}, false, code
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, benchUsage)
		return benchrun.Options{}, false, 2
	}
	if *report == "" {
		*report = filepath.Join(filepath.Dir(filepath.Clean(*out)), "BENCHMARKS.md")
	}
	if *reportOnlyF {
		return benchrun.Options{Out: *out, Report: *report}, true, -1
	}
	o = benchrun.Options{Out: *out, Report: *report, Reps: *reps, ReplayReps: *replayReps, Quick: *quick, Interval: *interval,
		Timeout: *timeout, WorkDir: *work, Keep: *keep, ClientVerbose: *clientVerbose, MemoryBudget: *memory, Command: "onionlite bench " + strings.Join(args, " "),
		Commit: benchrun.GitCommit()}
	if o.Reps == 0 {
		o.Reps = 3
		if *quick {
			o.Reps = 1
		}
	}
	if *profiles == "" && *quick {
		*profiles = "unthrottled," + benchrun.HeadlineProfile
	}
	var err error
	if o.Profiles, err = benchrun.ParseProfiles(*profiles); err != nil {
		return fail(2, "--profiles: %v", err)
	}
	switch {
	case *networks != "":
		o.Networks = strings.Split(*networks, ",")
	case *quick:
		o.Networks = []string{benchrun.Testnet10}
	default:
		for _, n := range benchrun.Networks {
			o.Networks = append(o.Networks, n.Name)
		}
	}
	for _, n := range o.Networks {
		if _, ok := benchrun.NetworkByName(n); !ok {
			return fail(2, "--networks: unknown network %q", n)
		}
	}
	o.Starts = strings.Split(*starts, ",")
	for _, s := range o.Starts {
		if s != benchrun.Cold && s != benchrun.Warm && s != benchrun.Stale {
			return fail(2, "--starts: unknown start %q (cold, warm, stale)", s)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fail(1, "finding the onionlite binary: %v", err)
	}
	o.Bin = self
	if *clientBin != "" {
		// Absolute: the replay runs this command again in a namespace.
		if o.Bin, err = filepath.Abs(*clientBin); err != nil {
			return fail(2, "--client-bin: %v", err)
		}
		if fi, err := os.Stat(o.Bin); err != nil {
			return fail(2, "--client-bin: %v", err)
		} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fail(2, "--client-bin: %s is not an executable file", o.Bin)
		}
	}
	o.Logf = func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		if !*verbose && strings.HasPrefix(msg, "testnet: ") {
			return
		}
		fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05"), msg)
	}
	o.Reexec = append([]string{self, "bench"}, args...)
	return o, false, -1
}
