//go:build !nodev

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/transport"
)

const testnetClientUsage = "usage: onionlite testnet client --dir DIR [--via SOCKSADDR] [--fetch NAME]... [--timeout 3m]"

func init() {
	testnetSubs["client"] = testnetClient
}

// fetchNames collects the repeated --fetch flag.
type fetchNames []string

func (s *fetchNames) String() string     { return fmt.Sprint(*s) }
func (s *fetchNames) Set(v string) error { *s = append(*s, v); return nil }

// testnetClient starts a C tor client against a running network (made by
// "testnet up"), waits until it has bootstrapped, then either fetches the
// named bodies from the HTTP target through it, checking their SHA-256,
// or keeps running until SIGINT/SIGTERM so other programs can use its
// SOCKS port. It stops the client before it returns.
func testnetClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testnet client", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "network directory (from testnet up)")
	via := fs.String("via", "", "send every OR connection through this SOCKS5 proxy (e.g. onionlite slowlink)")
	timeout := fs.Duration("timeout", 3*time.Minute, "bound for the bootstrap and each fetch")
	var fetches fetchNames
	fs.Var(&fetches, "fetch", "fetch this body (hello.txt, 64KiB.bin, 1MiB.bin, 10MiB.bin) and exit; repeatable")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "onionlite testnet client: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		return fail(2, "%v\n%s", err, testnetClientUsage)
	}
	if *dir == "" || fs.NArg() != 0 {
		return fail(2, "%s", testnetClientUsage)
	}
	n, err := testnet.Attach(*dir)
	if err != nil {
		return fail(1, "%v", err)
	}
	defer n.Stop() // stops the client only: the network belongs to "testnet up"
	var want []testnet.Body
	for _, name := range fetches {
		b, ok := n.Body(name)
		if !ok {
			return fail(2, "no body %q is served", name)
		}
		want = append(want, b)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	t0 := time.Now()
	clientDir := filepath.Join(n.Dir(), "clients", "cli-"+strconv.Itoa(os.Getpid()))
	c, err := n.StartClient(bctx, testnet.ClientConfig{Dir: clientDir, UpstreamSOCKS: *via})
	if err != nil {
		return fail(1, "%v", err)
	}
	if err := c.WaitBootstrapped(bctx); err != nil {
		return fail(1, "%v", err)
	}
	read, written, _ := c.Traffic()
	fmt.Fprintf(stdout, "C tor client bootstrapped in %.2fs (read %d B, wrote %d B); SOCKS5 on %s; logs in %s\n",
		time.Since(t0).Seconds(), read, written, c.SOCKSAddr(), c.Dir())
	if len(want) == 0 {
		fmt.Fprintf(stdout, "try: curl --socks5-hostname %s http://%s/hello.txt\n(Ctrl-C stops the client)\n", c.SOCKSAddr(), n.HTTPTarget())
		<-ctx.Done()
		return 0
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, DialContext: (&transport.SOCKS5{Addr: c.SOCKSAddr()}).DialContext}}
	defer hc.CloseIdleConnections()
	for _, b := range want {
		fctx, cancel := context.WithTimeout(ctx, *timeout)
		t1 := time.Now()
		size, sum, err := fetchBody(fctx, hc, "http://"+n.HTTPTarget()+"/"+b.Name)
		cancel()
		if err != nil {
			return fail(1, "fetching %s: %v", b.Name, err)
		}
		if size != b.Size || sum != b.SHA256 {
			return fail(1, "%s: got %d bytes with SHA-256 %s; want %d bytes, %s", b.Name, size, sum, b.Size, b.SHA256)
		}
		secs := time.Since(t1).Seconds()
		fmt.Fprintf(stdout, "fetched %s through tor: %d bytes in %.2fs (%.0f kB/s), SHA-256 %s… matches\n",
			b.Name, size, secs, float64(size)/secs/1000, sum[:16])
	}
	return 0
}

func fetchBody(ctx context.Context, hc *http.Client, url string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("HTTP %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return n, hex.EncodeToString(h.Sum(nil)), err
}
