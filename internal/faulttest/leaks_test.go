package faulttest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// TestEveryEntryPointLeavesNoGoroutine drives every sdk entry point (an
// events subscriber that never reads, dials that succeed and that fail,
// HTTPClient, Resolve, SOCKS, an isolated view, TrimMemory, SetDormant,
// NetworkChanged), plus clients that fail to bootstrap or run from memory,
// and then closes them: no goroutine may outlive them.
func TestEveryEntryPointLeavesNoGoroutine(t *testing.T) {
	check := testnet.CheckGoroutines(t)
	n := testnet.Shared(t)
	ctx := ctxFor(t, 5*time.Minute)

	c := newClient(t, n, t.TempDir(), nil)
	c.Events(context.Background()) // never read, never cancelled: Close ends it
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	fetchSum(t, ctx, c, n, "64KiB.bin")
	c.DialContext(ctx, "tcp", "127.0.0.1:1") // refused at the exit
	hc := c.HTTPClient()
	if resp, err := hc.Get("http://" + n.HTTPTarget() + "/hello.txt"); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Idle keep-alive connections are left to Close.
	c.Resolve(ctx, "127.0.0.1")
	socks := serveSOCKS(t, c)
	code, conn := socksConnect(t, socks, false, "127.0.0.1", uint16(targetPort(t, n)))
	if code == 0 {
		fetchHello(conn, n.HTTPTarget())
	}
	_, conn = socksConnect(t, socks, true, "127.0.0.1", 1)
	conn.Close()
	iso := c.Isolated()
	fetchSum(t, ctx, iso, n, "hello.txt")
	c.TrimMemory(sdk.TrimCritical)
	c.SetDormant(true)
	c.SetDormant(false)
	c.NetworkChanged()
	c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// A client that cannot bootstrap (every authority's identity wrong).
	bad := &sdk.Client{DataDir: t.TempDir(), TestNetwork: true, Logf: t.Logf}
	lines := n.AuthorityLines()
	nodes := n.Nodes()
	for i := range lines {
		lines[i] = strings.ReplaceAll(lines[i], nodes[i].Fingerprint, nodes[(i+1)%len(lines)].Fingerprint)
	}
	bad.Authorities = lines
	if err := bad.Bootstrap(ctxFor(t, 2*time.Minute)); !errors.Is(err, &sdk.Error{Kind: sdk.KindBootstrapFailed}) {
		t.Fatalf("bootstrap with wrong identities: %v", err)
	}
	bad.Close()

	// A client running from memory (a file where its cache should be).
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cache"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mem := newClient(t, n, dir, nil)
	fetchSum(t, ctx, mem, n, "hello.txt")
	mem.Close()
	check()
}

// TestCloseEndsEverything closes a client while a dial waits for its
// circuit, a stream is being read, a SOCKS server serves a connection and
// an events reader waits: each returns (the sdk's own errors of
// KindClosed), and no goroutine is left.
func TestCloseEndsEverything(t *testing.T) {
	check := testnet.CheckGoroutines(t)
	n := testnet.Shared(t)
	ctx := ctxFor(t, 5*time.Minute)
	c := newClient(t, n, t.TempDir(), nil)
	if err := c.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)

	// A stream being read: the 10 MiB body, read slowly.
	conn, err := c.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		t.Fatal(err)
	}
	resp := startGet(t, conn, n.HTTPTarget(), "10MiB.bin")
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := io.Copy(io.Discard, resp.Body)
		errs <- err
	}()
	// An events reader.
	events := c.Events(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range events {
		}
	}()
	// A SOCKS connection in the middle of a transfer.
	socks := serveSOCKS(t, c)
	code, sconn := socksConnect(t, socks, false, "127.0.0.1", uint16(targetPort(t, n)))
	if code != 0 {
		t.Fatalf("SOCKS reply %d", code)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The app's own TCP connection to the SOCKS port: closing
		// the client closes (or resets) it; any error is fine, a hang
		// is not.
		fetchHello(sconn, n.HTTPTarget())
	}()
	// A dial of an isolated view that waits for its circuit.
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := c.Isolated().DialContext(ctx, "tcp", n.HTTPTarget())
		if err != nil {
			errs <- err
		}
	}()

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, &sdk.Error{Kind: sdk.KindClosed}) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Errorf("an operation ended with %v (%T), want KindClosed", err, err)
		}
	}
	if _, err := c.DialContext(ctx, "tcp", n.HTTPTarget()); !errors.Is(err, sdk.ErrClosed) {
		t.Errorf("dial after Close: %v", err)
	}
	check()
}
