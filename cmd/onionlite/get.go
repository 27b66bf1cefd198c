package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"time"
)

const getUsage = `usage: onionlite get [--authorities FILE] [--data-dir DIR] [--proxy socks5://H:P]
                     [--stats-json FILE] [-o FILE] [--timeout 10m] URL

Fetches URL through Tor (bootstrapping first if needed) and writes the body
to stdout or to -o FILE. Host names are resolved by the exit relay.`

func init() {
	register(&command{name: "get", summary: "fetch a URL through Tor", run: runGet})
}

func runGet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf clientFlags
	cf.register(fs)
	outPath := fs.String("o", "", "write the body to this file instead of stdout")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long (bootstrap included)")
	quiet := fs.Bool("q", false, "no progress output")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, getUsage)
		return 2
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "onionlite get: want an http:// or https:// URL, got %q\n", fs.Arg(0))
		return 2
	}
	c, err := cf.client(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite get:", err)
		return 2
	}
	defer c.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	stop := func() {}
	if !*quiet {
		stop = showProgress(ctx, c, stderr)
	}
	err = bootstrapRetrying(ctx, c, stderr, "get")
	bootTook := time.Since(start)
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "onionlite get:", errLine(err))
		writeStats(cf.statsJSON, newClientStats(c.Stats(), bootTook))
		return 1
	}
	if !*quiet {
		// Same prefix as "onionlite bootstrap": onionlite bench times
		// readiness from this line.
		fmt.Fprintf(stderr, "ready in %v\n", bootTook.Round(time.Millisecond))
	}

	var out io.Writer = stdout
	var file *os.File
	if *outPath != "" {
		file, err = os.Create(*outPath)
		if err != nil {
			fmt.Fprintln(stderr, "onionlite get:", err)
			return 1
		}
		defer file.Close()
		out = file
	}
	var firstByte time.Duration
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { firstByte = time.Since(start) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, u.String(), nil)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite get:", err)
		return 2
	}
	req.Header.Set("User-Agent", "onionlite")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "onionlite get:", errLine(err))
		writeStats(cf.statsJSON, newClientStats(c.Stats(), bootTook))
		return 1
	}
	n, err := io.Copy(out, resp.Body)
	resp.Body.Close()
	total := time.Since(start)
	if err == nil && file != nil {
		err = file.Close()
	}
	// The directory was usable before all its microdescriptors were in;
	// let the rest arrive so that the next run starts from a complete
	// cache.
	if werr := c.WaitDirectoryComplete(ctx); werr != nil && !*quiet {
		fmt.Fprintln(stderr, "onionlite get: directory not complete:", errLine(werr))
	}
	// Close first: peak_rss_bytes covers the whole run, closing included.
	sst := c.Stats()
	c.Close()
	st := newClientStats(sst, bootTook)
	fb, tot := firstByte.Milliseconds(), total.Milliseconds()
	st.FirstByteMS, st.TotalMS, st.BodyBytes = &fb, &tot, &n
	if werr := writeStats(cf.statsJSON, st); werr != nil {
		fmt.Fprintln(stderr, "onionlite get:", werr)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "onionlite get: reading the body:", errLine(err))
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "onionlite get: HTTP %s\n", resp.Status)
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stderr, "%d bytes in %v (first byte after %v)\n", n, total.Round(time.Millisecond), firstByte.Round(time.Millisecond))
	}
	return 0
}
