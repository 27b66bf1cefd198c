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
	"time"

	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

const slowlinkUsage = "usage: onionlite slowlink --listen ADDR --rate 64kbit --delay 150ms [--jitter D] [--queue BYTES] [--reset-after BYTES] [--reset-every BYTES] [--stall-after BYTES] [--stats-every D] [-v]"

func init() {
	register(&command{name: "slowlink", summary: "a SOCKS5 proxy to 127.0.0.0/8 emulating a slow link", run: runSlowlink})
}

// runSlowlink serves the shaping proxy until SIGINT or SIGTERM, then
// prints its byte counters.
func runSlowlink(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("slowlink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:1080", "loopback address to listen on")
	rate := fs.String("rate", "unlimited", "rate per direction: 64kbit, 1mbit, 500kbps, unlimited")
	delay := fs.Duration("delay", 0, "one-way delay per direction")
	jitter := fs.Duration("jitter", 0, "delay varies uniformly within ±jitter")
	queue := fs.String("queue", "16KiB", "per-connection queue per direction")
	resetAfter := fs.String("reset-after", "0", "reset each connection after this many bytes (0: never)")
	resetEvery := fs.String("reset-every", "0", "reset the connection carrying every Nth byte of the proxy (0: never)")
	stallAfter := fs.String("stall-after", "0", "stall each connection after this many bytes (0: never)")
	statsEvery := fs.Duration("stats-every", 0, "print the counters this often (0: only at exit)")
	verbose := fs.Bool("v", false, "log every connection")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "onionlite slowlink: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		return fail(2, "%v\n%s", err, slowlinkUsage)
	}
	if fs.NArg() != 0 {
		return fail(2, "%s", slowlinkUsage)
	}
	var cfg slowlink.Config
	var err error
	if cfg.Rate, err = slowlink.ParseRate(*rate); err != nil {
		return fail(2, "--rate: %v", err)
	}
	sizes := []struct {
		flag string
		val  string
		dst  *int64
	}{{"reset-after", *resetAfter, &cfg.ResetAfter}, {"reset-every", *resetEvery, &cfg.ResetEvery}, {"stall-after", *stallAfter, &cfg.StallAfter}}
	for _, s := range sizes {
		if *s.dst, err = slowlink.ParseSize(s.val); err != nil {
			return fail(2, "--%s: %v", s.flag, err)
		}
	}
	q, err := slowlink.ParseSize(*queue)
	if err != nil || q > 1<<30 {
		return fail(2, "--queue: bad size %q", *queue)
	}
	cfg.QueueBytes = int(q)
	cfg.Delay, cfg.Jitter = *delay, *jitter
	if *verbose {
		cfg.Logf = func(format string, a ...any) {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
		}
	}
	p, err := slowlink.New(cfg)
	if err != nil {
		return fail(2, "%v", err)
	}
	if err := p.Start(*listen); err != nil {
		return fail(1, "%v", err)
	}
	rateText := "unlimited"
	if cfg.Rate > 0 {
		rateText = fmt.Sprintf("%d bit/s", cfg.Rate)
	}
	fmt.Fprintf(stdout, "slowlink: SOCKS5 on %s to 127.0.0.0/8 only; rate %s each way, delay %v ±%v\n", p.Addr(), rateText, cfg.Delay, cfg.Jitter)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var tick <-chan time.Time
	if *statsEvery > 0 {
		tk := time.NewTicker(*statsEvery)
		defer tk.Stop()
		tick = tk.C
	}
	printStats := func() {
		s := p.Stats()
		fmt.Fprintf(stdout, "slowlink: up %d B, down %d B, queued %d B; connections %d (%d open), refused %d, failed %d, resets %d, stalls %d\n",
			s.Up, s.Down, s.Queued, s.Accepted, s.Active, s.Refused, s.Failed, s.Resets, s.Stalls)
	}
	for done := false; !done; {
		select {
		case <-tick:
			printStats()
		case <-ctx.Done():
			done = true
		}
	}
	p.Close()
	printStats()
	return 0
}
