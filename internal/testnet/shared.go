package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Environment variables read by Shared.
const (
	// EnvDir names a directory holding a running network ("onionlite
	// testnet up --dir DIR"): Shared attaches to it instead of starting
	// one, which saves the cold start while iterating on a test.
	EnvDir = "ONIONLITE_TESTNET_DIR"
	// EnvRequire, set to 1, turns a missing tor into a test failure rather
	// than a skip. CI sets it (as it sets ONIONLITE_REQUIRE_REALNET, which
	// has the same effect here).
	EnvRequire        = "ONIONLITE_REQUIRE_TOR"
	envRequireRealnet = "ONIONLITE_REQUIRE_REALNET"
	// EnvKeep, set to 1, makes Stop keep a temporary network directory
	// (logs included) even when the run passed.
	EnvKeep = "ONIONLITE_TESTNET_KEEP"
)

// StartTimeout bounds the cold start of the shared network.
const StartTimeout = 6 * time.Minute

var shared struct {
	mu     sync.Mutex
	main   bool
	cfg    Config
	once   sync.Once
	n      *Network
	err    error
	failed bool
}

// Main runs a test package that uses Shared:
//
//	func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }
//
// It runs the tests, then stops the shared network if one was started
// (keeping its directory when a test failed), checks that none of its
// processes survived, and exits.
func Main(m *testing.M, cfg Config) {
	shared.mu.Lock()
	shared.main, shared.cfg = true, cfg
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	n, failed := shared.n, shared.failed
	shared.mu.Unlock()
	if n != nil {
		if code != 0 || failed {
			n.MarkFailed()
		}
		if err := n.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testnet: stopping the shared network: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// requireTor skips t (or fails it under CI's ONIONLITE_REQUIRE_TOR=1 or
// ONIONLITE_REQUIRE_REALNET=1) when tor is missing.
func requireTor(t testing.TB, torPath string) {
	t.Helper()
	if err := TorAvailable(torPath); err != nil {
		if os.Getenv(EnvRequire) == "1" || os.Getenv(envRequireRealnet) == "1" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
}

// RequireTor skips the test when tor is missing (failing it instead when
// CI requires tor), for tests that run tor without a network.
func RequireTor(t testing.TB) {
	t.Helper()
	requireTor(t, "")
}

// Shared returns the package's shared network, starting it on the first
// call (with the Config given to Main), or attaching to $ONIONLITE_TESTNET_DIR.
// It fails the test, naming the log directory, if the network cannot
// start, and skips it in -short mode or when tor is missing (see
// RequireTor). A test using it that fails makes Main keep the network's
// directory.
func Shared(t testing.TB) *Network {
	t.Helper()
	shared.mu.Lock()
	isMain, cfg := shared.main, shared.cfg
	shared.mu.Unlock()
	if !isMain {
		t.Fatalf("testnet.Shared needs this in the test package:\n\tfunc TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }")
	}
	if testing.Short() {
		t.Skip("testnet: the shared Tor network is not started in -short mode")
	}
	if os.Getenv(EnvDir) == "" {
		requireTor(t, cfg.TorPath)
	}
	shared.once.Do(func() {
		var n *Network
		var err error
		if d := os.Getenv(EnvDir); d != "" {
			n, err = Attach(d)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = n.WaitReady(ctx)
				cancel()
				if err != nil {
					err = fmt.Errorf("network in $%s=%s is not ready: %w", EnvDir, d, err)
				}
			}
		} else {
			if cfg.Logf == nil && testing.Verbose() {
				t0 := time.Now()
				cfg.Logf = func(format string, args ...any) {
					fmt.Fprintf(os.Stderr, "%6.1fs %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
			n, err = Start(ctx, cfg)
			cancel()
		}
		shared.mu.Lock()
		shared.n, shared.err = n, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	n, err := shared.n, shared.err
	shared.mu.Unlock()
	if err != nil {
		if errors.Is(err, ErrTorNotFound) {
			t.Skipf("%v", err)
		}
		t.Fatalf("testnet: shared network: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.mu.Lock()
			shared.failed = true
			shared.mu.Unlock()
			t.Logf("testnet: network logs in %s", n.LogDir())
		}
	})
	return n
}
