package chanmgr

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{}) }

func target(t *testing.T, n testnet.Node) channel.Target {
	t.Helper()
	var tg channel.Target
	id, err := hex.DecodeString(n.Fingerprint)
	if err != nil || len(id) != 20 {
		t.Fatalf("bad fingerprint %q", n.Fingerprint)
	}
	copy(tg.RSAID[:], id)
	tg.Ed25519ID = n.Ed25519ID
	tg.Addr = "127.0.0.1:" + strconv.Itoa(n.ORPort)
	return tg
}

func TestSharingAgainstRealTor(t *testing.T) {
	defer testnet.CheckGoroutines(t)()
	net := testnet.Shared(t)
	nodes := net.Nodes()
	m := New(&channel.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	tg := target(t, nodes[0])
	var wg sync.WaitGroup
	got := make([]*channel.Channel, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = m.Get(ctx, tg)
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatal("concurrent Gets for one relay returned different channels")
		}
	}
	if st := m.Stats(); st.Opened != 1 || st.Open != 1 || st.BytesRead == 0 || st.BytesWritten == 0 {
		t.Fatalf("stats after one shared dial: %+v", st)
	}

	// The same address with another relay's identity must be refused,
	// and must not disturb the good channel.
	bad := tg
	other := target(t, nodes[1])
	bad.RSAID = other.RSAID
	bad.Ed25519ID = other.Ed25519ID
	if _, err := m.Get(ctx, bad); !errors.Is(err, channel.ErrIdentity) {
		t.Fatalf("wrong identity: err = %v, want ErrIdentity", err)
	}

	// A closed channel is replaced on the next Get, and its bytes stay
	// counted.
	before := m.Stats()
	got[0].Close()
	ch2, err := m.Get(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if ch2 == got[0] {
		t.Fatal("closed channel handed out again")
	}
	if st := m.Stats(); st.Opened != 2 || st.BytesRead <= before.BytesRead {
		t.Fatalf("stats after reopening: %+v (before %+v)", st, before)
	}

	// No circuits: CloseIdle(0) closes it.
	if n := m.CloseIdle(0); n != 1 {
		t.Fatalf("CloseIdle closed %d channels, want 1", n)
	}
	<-ch2.Done()
	m.Close()
	if _, err := m.Get(ctx, tg); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
