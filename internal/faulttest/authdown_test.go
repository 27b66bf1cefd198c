package faulttest

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/sdk"
)

// TestAuthoritiesDown stops directory authorities under running clients.
// With two of three down, a cold client still bootstraps (from the third)
// and fetches through the network. With all three down, a cold client
// fails with KindBootstrapFailed instead of hanging, while a client with
// a cached consensus whose microdescriptors were lost completes from
// relay caches and dials. The authorities are restarted at the end.
func TestAuthoritiesDown(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs last: after restarts and closes
	n := testnet.Shared(t)
	ctx := ctxFor(t, 10*time.Minute)
	var auths []testnet.Node
	for _, nd := range n.Nodes() {
		if nd.Role == testnet.Authority {
			auths = append(auths, nd)
		}
	}
	if len(auths) != 3 {
		t.Fatalf("%d authorities", len(auths))
	}

	// A client that has the directory; its cache is used below.
	warm := t.TempDir()
	a := newClient(t, n, warm, nil)
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	relays := a.Stats().Relays
	a.Close()

	k := newKiller(t, n)
	k.kill(auths[1].Nick)
	k.kill(auths[2].Nick)
	b := newClient(t, n, t.TempDir(), nil)
	if err := b.Bootstrap(ctx); err != nil {
		t.Fatalf("cold bootstrap with two of three authorities down: %v", err)
	}
	if st := b.Stats(); st.ConsensusSource != "full" || st.RelaysWithMicrodescs != st.Relays {
		t.Fatalf("cold bootstrap: %+v", st)
	}
	fetchSum(t, ctx, b, n, "64KiB.bin")
	b.Close()

	k.kill(auths[0].Nick)
	cold := newClient(t, n, t.TempDir(), nil)
	err := cold.Bootstrap(ctxFor(t, 3*time.Minute))
	if !errors.Is(err, &sdk.Error{Kind: sdk.KindBootstrapFailed}) {
		t.Fatalf("cold bootstrap with every authority down: %v, want KindBootstrapFailed", err)
	}
	cold.Close()

	db, err := dircache.Open(filepath.Join(warm, "cache"), dircache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.PruneMicrodescs(nil, time.Time{}); err != nil || n != relays {
		t.Fatalf("dropping the cached microdescriptors: %d of %d, %v", n, relays, err)
	}
	db.Close()
	w := newClient(t, n, warm, nil)
	if err := w.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap from the cache and relay caches, no authority up: %v", err)
	}
	if st := w.Stats(); st.ConsensusSource != "cache" || st.MicrodescsFetched != relays {
		t.Fatalf("warm bootstrap without authorities: %+v", st)
	}
	fetchSum(t, ctx, w, n, "64KiB.bin")
}
