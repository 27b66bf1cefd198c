package guard

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
)

// FuzzUnmarshalBinary loads arbitrary bytes as a persisted guard state, as
// a damaged or tampered data directory would hold them. Loading never
// panics; a failed load leaves the Manager as it was; a state that loads
// saves to bytes that load again to the same bytes; and after a load the
// Manager still works with a directory (SetNetDir, Select). Seeds: states
// our encoder wrote (sampled, confirmed out of order, unlisted, unknown
// fields) and hand-made edge cases.
func FuzzUnmarshalBinary(f *testing.F) {
	nd := fuzzNet(f, 12)
	r := seeded(3)
	m := New(Config{Params: oneUsable()})
	m.SetNetDir(nd, t0, r)
	f.Add(mustMarshal(f, m))
	for k := 0; k < 3; k++ {
		if tk, err := m.Select(Usage{}, t0, r); err == nil {
			m.Failed(tk, t0, r)
		}
	}
	if tk, err := m.Select(Usage{}, t0, r); err == nil {
		m.Succeeded(tk, t0.Add(time.Second), r)
	}
	f.Add(mustMarshal(f, m))
	m.SetNetDir(fuzzNet(f, 3), t0.Add(48*time.Hour), r) // most guards unlisted now
	f.Add(mustMarshal(f, m))
	f.Add([]byte("onionlite-guards 1\nguard rsa_id=0000000000000000000000000000000000000001 sampled_on=2026-06-01T00:00:00 listed=1 confirmed_on=2026-06-02T00:00:00 confirmed_idx=0 pb_use_attempts=3.0 future=x\n"))
	f.Add([]byte("onionlite-guards 1\r\n\r\nguard rsa_id=00 listed=0\n"))
	f.Add([]byte("onionlite-guards 1\nguard rsa_id=0000000000000000000000000000000000000002 sampled_on=2026-06-01T00:00:00 listed=0 unlisted_since=2026-06-03T00:00:00 confirmed_on=2026-06-02T00:00:00 confirmed_idx=7\n"))
	f.Fuzz(func(t *testing.T, state []byte) {
		m := New(Config{Params: oneUsable()})
		if err := m.UnmarshalBinary([]byte("onionlite-guards 1\nguard rsa_id=00000000000000000000000000000000000000AA sampled_on=2026-06-01T00:00:00 listed=1\n")); err != nil {
			t.Fatal(err)
		}
		before := mustMarshal(t, m)
		if err := m.UnmarshalBinary(state); err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error %v does not match ErrBadState", err)
			}
			if after := mustMarshal(t, m); !bytes.Equal(after, before) {
				t.Fatalf("a failed load changed the state:\n%s", after)
			}
			return
		}
		saved := mustMarshal(t, m)
		m2 := New(Config{Params: oneUsable()})
		if err := m2.UnmarshalBinary(saved); err != nil {
			t.Fatalf("a saved state does not load: %v\n%s", err, saved)
		}
		if again := mustMarshal(t, m2); !bytes.Equal(again, saved) {
			t.Fatalf("save/load/save is not stable:\n%s\n%s", saved, again)
		}
		r := seeded(1)
		m.SetNetDir(nd, t0.Add(time.Hour), r)
		if tk, err := m.Select(Usage{}, t0.Add(time.Hour), r); err == nil {
			m.Succeeded(tk, t0.Add(time.Hour), r)
		}
		mustMarshal(t, m)
	})
}

func mustMarshal(t testing.TB, m *Manager) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fuzzNet is tiny for a testing.TB: n guards on distinct /16s.
func fuzzNet(t testing.TB, n int) *netdir.NetDir {
	t.Helper()
	var rs []netdirtest.Relay
	for k := 0; k < n; k++ {
		rs = append(rs, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: guardFlags, Bandwidth: 1000})
	}
	c, mds, err := netdirtest.Network(rs, t0.Add(-10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.AddMicrodescs(mds)
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}
