package faulttest

import (
	"context"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// One real-tor network for the package; the tests kill and restart its
// nodes, so none of them runs in parallel.
func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

// newClient returns an sdk client for the shared network, closed when the
// test ends.
func newClient(t *testing.T, n *testnet.Network, dataDir string, logf func(string, ...any)) *sdk.Client {
	t.Helper()
	if logf == nil {
		logf = t.Logf
	}
	c := &sdk.Client{DataDir: dataDir, Authorities: n.AuthorityLines(), TestNetwork: true, Logf: logf}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
