package channel

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/memquota"
)

// TestMemoryAccount: a channel charges its outbound queue to its own
// top-level account; when the quota collapses that account the channel
// closes with the *memquota.ReclaimedError, its circuits hear it, its
// queued cells go back to the pool, and the account, retired, lasts
// exactly as long as a child account (a circuit's stream) still holds
// data.
func TestMemoryAccount(t *testing.T) {
	k := fakeRelayKeys(t)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		cc, done := fakeDial(t, func(r *responder) {
			r.standard(0)
			r.readCell()
			<-release
			for {
				if _, err := r.readCell(); err != nil {
					return
				}
			}
		})
		defer func() {
			close(release)
			cc.Close()
			<-done
		}()
		trk, err := memquota.New(memquota.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer trk.Close()
		pool := cell.NewPool(64)
		cfg := &Config{Memory: trk, Pool: pool, WriteBatch: 2, Clock: clock.At(k.made)}
		ch, err := Client(context.Background(), cfg, cc, fakeTarget())
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		h := &sink{cells: make(chan *cell.Cell, 1), closed: make(chan error, 1)}
		if _, err := ch.AddCircuit(h); err != nil {
			t.Fatal(err)
		}
		acct := ch.Account()
		if acct == nil || acct.Err() != nil {
			t.Fatalf("channel account %v", acct)
		}
		// A circuit's stream below the channel holds data.
		circ, _ := acct.NewChild("circ")
		strm, _ := circ.NewChild("stream")
		held, err := strm.Register(memquota.Funcs{})
		if err != nil {
			t.Fatal(err)
		}
		held.Claim(1000)

		for i := 0; i < 8; i++ {
			c, _ := pool.Get(context.Background())
			c.SetPayload(0x80000001, cell.CmdPadding, nil)
			if err := ch.Send(c); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // the writer took one batch and blocks on the pipe
		queued := int64(ch.Stats().Queued)
		if queued == 0 {
			t.Fatal("nothing queued")
		}
		if got, want := trk.Used(), 1000+queued*queuedCost; got != want {
			t.Fatalf("used %d with %d cells queued, want %d", got, queued, want)
		}
		if at, ok := ch.Oldest(); !ok || !at.Equal(k.made) {
			t.Fatalf("Oldest = %v, %v; want %v", at, ok, k.made)
		}

		// The channel's queue is the oldest data: it goes, with everything
		// below it.
		if err := trk.ReclaimTo(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		var re *memquota.ReclaimedError
		if err := <-h.closed; !errors.As(err, &re) || re.Account != acct.Name() {
			t.Fatalf("circuit heard %v, want the reclaim of %q", err, acct.Name())
		}
		if !errors.As(ch.Err(), &re) {
			t.Fatalf("channel error %v", ch.Err())
		}
		if err := held.Claim(1); !errors.Is(err, memquota.ErrReclaimed) {
			t.Fatalf("stream below the channel: %v", err)
		}
		synctest.Wait()
		// The writer's batch went back when the pipe write failed, the
		// queue when the reader drained it.
		if got := pool.Stats().InUse; got != 0 {
			t.Fatalf("%d cells still out of the pool", got)
		}
		if st := trk.Stats(); st.Used != 0 || st.Accounts != 0 {
			t.Fatalf("quota after the collapse: %+v", st)
		}
	})
}

// TestMemoryAccountRetired: a channel closed normally retires its account;
// a stream below it keeps its data accounted until it closes.
func TestMemoryAccountRetired(t *testing.T) {
	k := fakeRelayKeys(t)
	synctest.Test(t, func(t *testing.T) {
		cc, done := fakeDial(t, func(r *responder) {
			r.standard(0)
			for {
				if _, err := r.readCell(); err != nil {
					return
				}
			}
		})
		defer func() { cc.Close(); <-done }()
		trk, _ := memquota.New(memquota.Config{})
		defer trk.Close()
		ch, err := Client(context.Background(), &Config{Memory: trk, Pool: cell.NewPool(16), Clock: clock.At(k.made)}, cc, fakeTarget())
		if err != nil {
			t.Fatal(err)
		}
		strm, _ := ch.Account().NewChild("stream")
		p, _ := strm.Register(memquota.Funcs{})
		p.Claim(500)
		ch.Close()
		if ch.Account().Err() != nil {
			t.Fatalf("account of a closed channel with a live stream: %v", ch.Account().Err())
		}
		if _, err := ch.Account().NewChild("late"); !errors.Is(err, memquota.ErrClosed) {
			t.Fatalf("new child of a closed channel's account: %v", err)
		}
		if trk.Used() != 500 {
			t.Fatalf("used %d, want the stream's 500", trk.Used())
		}
		strm.Close()
		if !errors.Is(ch.Account().Err(), memquota.ErrClosed) {
			t.Fatalf("account after the last stream: %v", ch.Account().Err())
		}
		if st := trk.Stats(); st.Used != 0 || st.Accounts != 0 {
			t.Fatalf("quota: %+v", st)
		}
	})
}
