package bootstrap

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// markCount is a store that records the length of every MarkListed call.
type markCount struct {
	dircache.Store
	mu    sync.Mutex
	marks []int
}

func (m *markCount) MarkListed(at time.Time, digests [][32]byte) error {
	m.mu.Lock()
	m.marks = append(m.marks, len(digests))
	m.mu.Unlock()
	return m.Store.MarkListed(at, digests)
}

func (m *markCount) calls() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.marks...)
}

// TestMarkStored, on the real 2019 directory: markStored marks every
// listed microdescriptor once, then not again until markListedEvery of
// consensus time has passed; pruning keeps an unlisted microdescriptor
// for keepUnlisted after its recorded listing and deletes it after.
func TestMarkStored(t *testing.T) {
	all := func(int, netdoc.Microdesc) bool { return true }
	mem, auths, vu := staleStore(t, all)
	st := &markCount{Store: mem}
	now := vu.Add(time.Hour)
	cm := chanmgr.New(&channel.Config{Clock: clock.At(now), Dialer: refuseDial{t}})
	b, err := New(Config{Authorities: auths, Store: st, Channels: cm, Clock: clock.At(now), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); cm.Close() })
	_, _, recent := b.loadCache()
	nd := b.staleView(recent)
	if nd == nil {
		t.Fatal("no view of the 2019 directory")
	}
	va := nd.ValidAfter()

	// Two microdescriptors no consensus lists: one recorded as listed
	// just inside keepUnlisted before va, one just outside it.
	md := func(s string) dircache.Microdesc {
		text := []byte("onion-key\n" + s + "\n")
		return dircache.Microdesc{Digest: sha256.Sum256(text), Text: text}
	}
	inside, outside := md("inside"), md("outside")
	if err := mem.PutMicrodescs(va.Add(-keepUnlisted+time.Minute), []dircache.Microdesc{inside}); err != nil {
		t.Fatal(err)
	}
	if err := mem.PutMicrodescs(va.Add(-keepUnlisted-time.Minute), []dircache.Microdesc{outside}); err != nil {
		t.Fatal(err)
	}

	b.markStored(nd)
	if got := st.calls(); len(got) != 1 || got[0] != nd.Len() {
		t.Fatalf("first markStored: MarkListed calls %v; want one of %d digests", got, nd.Len())
	}
	missing, err := mem.MissingMicrodescs([][32]byte{inside.Digest, outside.Digest})
	if err != nil || len(missing) != 1 || missing[0] != outside.Digest {
		t.Fatalf("after pruning, missing %x (%v); want only the one recorded outside keepUnlisted", missing, err)
	}
	// The same consensus again, and one just short of markListedEvery
	// later: nothing rewritten.
	b.markStored(nd)
	b.mu.Lock()
	b.listedMarked = va.Add(-markListedEvery + time.Second)
	b.mu.Unlock()
	b.markStored(nd)
	if got := st.calls(); len(got) != 1 {
		t.Fatalf("MarkListed calls %v; want none after the first within %v", got, markListedEvery)
	}
	// markListedEvery after the last mark: every digest again.
	b.mu.Lock()
	b.listedMarked = va.Add(-markListedEvery)
	b.mu.Unlock()
	b.markStored(nd)
	if got := st.calls(); len(got) != 2 || got[1] != nd.Len() {
		t.Fatalf("MarkListed calls %v; want a second of %d digests", got, nd.Len())
	}
	// Every listed microdescriptor is still stored.
	want := make([][32]byte, 0, nd.Len())
	for i := range nd.Len() {
		want = append(want, nd.MicrodescDigest(netdir.RelayIndex(i)))
	}
	if missing, err := mem.MissingMicrodescs(want); err != nil || len(missing) != 0 {
		t.Fatalf("%d listed microdescriptors missing after pruning, %v", len(missing), err)
	}
}
