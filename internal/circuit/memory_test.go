package circuit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/synctest"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/memquota"
)

// memLink is a fake link with a memory account, as a channel with a quota
// would have.
func memLink(t *testing.T, cfg memquota.Config) (*fakeLink, *memquota.Tracker) {
	t.Helper()
	trk, err := memquota.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trk.Close() })
	l := newFakeLink()
	if l.acct, err = trk.NewAccount("chan 1"); err != nil {
		t.Fatal(err)
	}
	return l, trk
}

// accountPath is an account's name with its ancestors', from the tree.
func accountPath(trk *memquota.Tracker, id uint64) string {
	byID := map[uint64]memquota.AccountInfo{}
	for _, a := range trk.Accounts() {
		byID[a.ID] = a
	}
	a, ok := byID[id]
	if !ok {
		return "(gone)"
	}
	if a.Parent == 0 {
		return a.Name
	}
	return accountPath(trk, a.Parent) + " > " + a.Name
}

// TestMemoryAccountTree: the circuit opens its account below the link's
// and each stream one below the circuit's; a closed circuit's account
// lasts while a stream still holds unread data, and everything is gone,
// with no bytes left claimed, once the streams close.
func TestMemoryAccountTree(t *testing.T) {
	l, trk := memLink(t, memquota.Config{})
	c, r := createFastOn(t, l, nil)
	s1 := r.openDir(c)
	s2 := r.openDir(c)
	circName := c.MemoryAccount().Name()
	for _, s := range []*stream.Stream{s1, s2} {
		want := fmt.Sprintf("chan 1 > %s > %s stream %d", circName, circName, s.ID())
		if got := accountPath(trk, s.MemoryAccount().ID()); got != want {
			t.Errorf("stream account %q, want %q", got, want)
		}
	}
	for i := 0; i < 3; i++ {
		r.send(cell.CmdRelay, cell.RelayData, s1.ID(), []byte("abcdefgh"))
	}
	perCell := trk.Used() / 3
	if perCell < cell.Len {
		t.Fatalf("3 queued cells claim %d bytes", trk.Used())
	}
	if got := s1.MemoryAccount().Used(); got != trk.Used() {
		t.Fatalf("stream account holds %d of %d", got, trk.Used())
	}

	c.Close()
	b := <-l.sent // DESTROY
	l.pool.Put(b)
	// s2 got END (MISC) from nobody: the circuit is gone; s1 still holds
	// its data, which stays accounted.
	if c.MemoryAccount().Err() != nil || trk.Used() != 3*perCell {
		t.Fatalf("after circuit close: account %v, used %d", c.MemoryAccount().Err(), trk.Used())
	}
	got, err := io.ReadAll(s1)
	if string(got) != "abcdefghabcdefghabcdefgh" || !errors.Is(err, ErrClosed) {
		t.Fatalf("read %q, %v", got, err)
	}
	if trk.Used() != 0 {
		t.Fatalf("used %d after reading everything", trk.Used())
	}
	s1.Close()
	if c.MemoryAccount().Err() != nil {
		t.Fatal("circuit account went while s2 is open")
	}
	s2.Close()
	if !errors.Is(c.MemoryAccount().Err(), memquota.ErrClosed) {
		t.Fatalf("circuit account after the last stream: %v", c.MemoryAccount().Err())
	}
	if st := trk.Stats(); st.Used != 0 || st.Accounts != 1 || st.Participants != 0 {
		t.Fatalf("quota: %+v (want only the link's account)", st)
	}
	if got := l.pool.Stats().InUse; got != 0 {
		t.Fatalf("%d cells out of the pool", got)
	}
}

// TestMemoryReclaimStream: over the limit, the stream holding the oldest
// data collapses alone: its reader gets the *memquota.ReclaimedError, its
// writer fails, the relay gets END RESOURCELIMIT, its cells go back to the
// pool, and the circuit and the other stream carry on.
func TestMemoryReclaimStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, trk := memLink(t, memquota.Config{Limit: 12 * 600, LowWater: 6 * 600})
		c, r := createFastOn(t, l, nil)
		stalled := r.openDir(c)
		reader := r.openDir(c)
		for i := 0; i < 10; i++ {
			r.send(cell.CmdRelay, cell.RelayData, stalled.ID(), []byte("old data"))
		}
		synctest.Wait()
		for i := 0; i < 3; i++ { // 13 cells: over the limit
			r.send(cell.CmdRelay, cell.RelayData, reader.ID(), []byte("new"))
		}
		synctest.Wait()

		var re *memquota.ReclaimedError
		if _, err := stalled.Read(make([]byte, 10)); !errors.As(err, &re) {
			t.Fatalf("stalled stream read: %v", err)
		}
		if re.Account != stalled.MemoryAccount().Name() || re.Seq != 1 {
			t.Fatalf("reclaimed %q (seq %d), want %q first", re.Account, re.Seq, stalled.MemoryAccount().Name())
		}
		if _, err := stalled.Write([]byte("x")); !errors.Is(err, memquota.ErrReclaimed) {
			t.Fatalf("stalled stream write: %v", err)
		}
		b, h, body := r.recv()
		if h.Cmd != cell.RelayEnd || h.StreamID != stalled.ID() || len(body) == 0 || cell.EndReason(body[0]) != cell.EndResourceLimit {
			t.Fatalf("relay got %v on stream %d (%x), want END RESOURCELIMIT on %d", h.Cmd, h.StreamID, body, stalled.ID())
		}
		l.pool.Put(b)
		if got := l.pool.Stats().InUse; got != 3 {
			t.Fatalf("%d cells out of the pool, want the reader's 3", got)
		}
		// DATA the exit sent before it saw the END is dropped quietly.
		r.send(cell.CmdRelay, cell.RelayData, stalled.ID(), []byte("late"))
		if c.Err() != nil {
			t.Fatalf("circuit died: %v", c.Err())
		}
		got := make([]byte, 9)
		if _, err := io.ReadFull(reader, got); err != nil || string(got) != "newnewnew" {
			t.Fatalf("other stream: %q %v", got, err)
		}
		if st := trk.Stats(); st.Used != 0 || st.Collapsed != 1 || st.Reclaims != 1 {
			t.Fatalf("quota: %+v", st)
		}
		stalled.Close()
		reader.Close()
		c.Close()
		synctest.Wait()
		for len(l.sent) > 0 {
			l.pool.Put(<-l.sent)
		}
		if st := trk.Stats(); st.Accounts != 1 || l.pool.Stats().InUse != 0 {
			t.Fatalf("after closing: quota %+v, pool %+v", st, l.pool.Stats())
		}
	})
}

// TestMemoryReclaimCircuit: a sender stuck on a closed circuit window
// holds a cell charged to the circuit; when that is the oldest data the
// circuit collapses: DESTROY goes to the relay, the writer and the
// circuit's streams fail with the quota's error, and every cell comes
// back to the pool.
func TestMemoryReclaimCircuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, trk := memLink(t, memquota.Config{})
		c, r := createFastOn(t, l, &Config{CircWindow: 100})
		s := r.openDir(c)
		wrote := make(chan error, 1)
		go func() {
			_, err := s.Write(make([]byte, 101*cell.RelayBodyMax))
			wrote <- err
		}()
		for i := 0; i < 100; i++ {
			l.pool.Put(<-l.sent)
		}
		synctest.Wait() // the 101st cell waits for a SENDME
		if got := c.MemoryAccount().Used(); got != cell.Len {
			t.Fatalf("circuit account holds %d, want one waiting cell (%d)", got, cell.Len)
		}
		if err := trk.ReclaimTo(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		var re *memquota.ReclaimedError
		if err := <-wrote; !errors.As(err, &re) || re.Account != c.MemoryAccount().Name() {
			t.Fatalf("writer: %v, want the circuit's reclaim", err)
		}
		if !errors.Is(c.Err(), memquota.ErrReclaimed) {
			t.Fatalf("circuit error: %v", c.Err())
		}
		b := <-l.sent
		if b.Command() != cell.CmdDestroy {
			t.Fatalf("relay got %v, want DESTROY", b.Command())
		}
		l.pool.Put(b)
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, memquota.ErrReclaimed) {
			t.Fatalf("stream read: %v", err)
		}
		if !l.removed() {
			t.Fatal("circuit still registered on the link")
		}
		s.Close()
		synctest.Wait()
		if got := l.pool.Stats().InUse; got != 0 {
			t.Fatalf("%d cells out of the pool", got)
		}
		if st := trk.Stats(); st.Used != 0 || st.Accounts != 1 {
			t.Fatalf("quota: %+v", st)
		}
	})
}

// TestMemoryLinkGone: a circuit cannot be made on a link whose account is
// gone, and leaves nothing registered.
func TestMemoryLinkGone(t *testing.T) {
	l, trk := memLink(t, memquota.Config{})
	l.acct.Close()
	_, err := Create(context.Background(), l, Relay{Handshake: HandshakeFast}, nil)
	if !errors.Is(err, memquota.ErrClosed) {
		t.Fatalf("Create on a closed account: %v", err)
	}
	if l.handler() != nil {
		t.Fatal("circuit registered on the link")
	}
	if st := trk.Stats(); st.Accounts != 0 {
		t.Fatalf("quota: %+v", st)
	}
}

// BenchmarkReceiveDataAccounted is BenchmarkReceiveData with the stream
// charged to a memory quota (a claim when the cell is queued, a release
// when it is read): what accounting adds to the receive path.
func BenchmarkReceiveDataAccounted(b *testing.B) {
	trk, err := memquota.New(memquota.Config{Limit: 64 << 20, HardLimit: 72 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer trk.Close()
	l := newFakeLink()
	l.acct, _ = trk.NewAccount("chan 1")
	c, r := createFastOn(b, l, nil)
	s := r.openDir(c)
	body := make([]byte, cell.RelayBodyMax)
	buf := make([]byte, cell.RelayBodyMax)
	b.SetBytes(cell.RelayBodyMax)
	b.ReportAllocs()
	for b.Loop() {
		r.send(cell.CmdRelay, cell.RelayData, s.ID(), body)
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		for len(r.link.sent) > 0 {
			x := <-r.link.sent
			r.hop.Open(x)
			r.link.pool.Put(x)
		}
	}
	if trk.Stats().Peak == 0 {
		b.Fatal("nothing was charged")
	}
}
