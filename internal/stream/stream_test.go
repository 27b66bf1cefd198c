package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/memquota"
)

// fakeSink records what a stream sends; windows are the test's to open.
type fakeSink struct {
	pool    *cell.Pool
	mu      sync.Mutex
	data    [][]byte
	sendmes int
	ends    []cell.EndReason
	flows   []cell.RelayMsg
	fail    error
	sent    chan struct{}
}

func newSink() *fakeSink {
	return &fakeSink{pool: cell.NewPool(2048), sent: make(chan struct{}, 10000)}
}

func (f *fakeSink) SendData(ctx context.Context, id uint16, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if len(p) > cell.RelayBodyMax {
		panic("oversized DATA")
	}
	f.data = append(f.data, append([]byte(nil), p...))
	f.sent <- struct{}{}
	return nil
}

func (f *fakeSink) SendSendme(ctx context.Context, id uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendmes++
	return nil
}

func (f *fakeSink) SendEnd(id uint16, r cell.EndReason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, r)
}

func (f *fakeSink) SendFlowControl(ctx context.Context, id uint16, m cell.RelayMsg) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows = append(f.flows, m)
	return nil
}

func (f *fakeSink) Pool() *cell.Pool { return f.pool }

func (f *fakeSink) counts() (data, sendmes, ends int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data), f.sendmes, len(f.ends)
}

// deliver hands the stream a relay message the way the circuit does.
func deliver(t *testing.T, s *Stream, f *fakeSink, cmd cell.RelayCmd, body []byte) (done bool, err error) {
	t.Helper()
	c, gerr := f.pool.Get(context.Background())
	if gerr != nil {
		t.Fatal(gerr)
	}
	if err := c.SetRelayBody(1, cell.CmdRelay, cmd, s.ID(), body); err != nil {
		t.Fatal(err)
	}
	_, b, _ := c.RelayBody()
	owned, done, err := s.HandleRelay(c, cmd, b)
	if !owned {
		f.pool.Put(c)
	}
	return done, err
}

func open(t *testing.T) (*Stream, *fakeSink) {
	f := newSink()
	s, err := New(f, 7, &Config{Target: "example.com:80"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deliver(t, s, f, cell.RelayConnected, []byte{127, 0, 0, 1, 0, 0, 0, 60}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, f
}

func TestOpenAndConnected(t *testing.T) {
	s, _ := open(t)
	if got := s.Connected(); got.Addr.String() != "127.0.0.1" || got.TTL != 60 {
		t.Fatalf("%+v", got)
	}
	if s.RemoteAddr().String() != "example.com:80" || s.RemoteAddr().Network() != "tor" {
		t.Fatal(s.RemoteAddr())
	}
}

func TestEndBeforeConnected(t *testing.T) {
	f := newSink()
	s, _ := New(f, 3, nil)
	done, err := deliver(t, s, f, cell.RelayEnd, []byte{byte(cell.EndExitPolicy), 1, 2, 3, 4, 0, 0, 0, 9})
	if err != nil || !done {
		t.Fatal(done, err)
	}
	err = s.WaitOpen(context.Background())
	var ee *EndError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExitPolicy) || ee.Addr.String() != "1.2.3.4" || ee.TTL != 9 {
		t.Fatalf("%v %+v", err, ee)
	}
	if errors.Is(err, ErrConnectRefused) {
		t.Fatal("EXITPOLICY matches CONNECTREFUSED")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrExitPolicy) {
		t.Fatalf("write after refusal: %v", err)
	}
	// DONE before CONNECTED is still a refusal, not EOF.
	s2, _ := New(f, 4, nil)
	deliver(t, s2, f, cell.RelayEnd, []byte{byte(cell.EndDone)})
	if err := s2.WaitOpen(context.Background()); !errors.As(err, &ee) || ee.Reason != cell.EndDone {
		t.Fatalf("DONE before CONNECTED: %v", err)
	}
	if _, _, ends := f.counts(); ends != 0 {
		t.Fatal("END answered with END")
	}
	s2.Close()
	if _, _, ends := f.counts(); ends != 0 {
		t.Fatal("Close after the exit's END sent another END")
	}
}

func TestReadDataThenEOF(t *testing.T) {
	s, f := open(t)
	deliver(t, s, f, cell.RelayData, []byte("hello "))
	deliver(t, s, f, cell.RelayData, []byte("world"))
	done, _ := deliver(t, s, f, cell.RelayEnd, []byte{byte(cell.EndDone)})
	if !done {
		t.Fatal("END did not finish the stream")
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("%q %v", got, err)
	}
	if st := f.pool.Stats(); st.InUse != 0 {
		t.Fatalf("cells not returned: %+v", st)
	}
}

func TestReadDataThenError(t *testing.T) {
	s, f := open(t)
	deliver(t, s, f, cell.RelayData, []byte("partial"))
	deliver(t, s, f, cell.RelayEnd, []byte{byte(cell.EndConnReset)})
	buf := make([]byte, 100)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "partial" {
		t.Fatalf("data before the error: %q %v", buf[:n], err)
	}
	if _, err := s.Read(buf); !errors.Is(err, ErrConnReset) {
		t.Fatalf("%v", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("CONNRESET is a timeout")
	}
}

func TestCircuitClosedAfterData(t *testing.T) {
	s, f := open(t)
	deliver(t, s, f, cell.RelayData, []byte("last words"))
	boom := errors.New("circuit destroyed")
	s.CircuitClosed(boom)
	got, err := io.ReadAll(s)
	if string(got) != "last words" || !errors.Is(err, boom) {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("write: %v", err)
	}
}

// TestDeliverWindowAndSendmes: 500 cells may arrive unread; the 501st is a
// protocol violation. Reading them sends stream SENDMEs, +50 each, once
// fewer than 10 cells wait.
func TestDeliverWindowAndSendmes(t *testing.T) {
	s, f := open(t)
	body := bytes.Repeat([]byte{'x'}, 100)
	for i := 0; i < WindowStart; i++ {
		if _, err := deliver(t, s, f, cell.RelayData, body); err != nil {
			t.Fatalf("cell %d: %v", i, err)
		}
	}
	if _, err := deliver(t, s, f, cell.RelayData, body); !errors.Is(err, ErrProtocol) {
		t.Fatalf("cell past the window: %v", err)
	}
	if _, sm, _ := f.counts(); sm != 0 {
		t.Fatal("SENDME before anything was read")
	}
	buf := make([]byte, 100)
	for i := 0; i < WindowStart-10; i++ {
		io.ReadFull(s, buf)
	}
	if _, sm, _ := f.counts(); sm != 0 {
		t.Fatalf("%d SENDMEs with 10 cells still queued", sm)
	}
	io.ReadFull(s, buf) // 9 left: the window (0) is refilled to 500
	if _, sm, _ := f.counts(); sm != WindowStart/WindowIncrement {
		t.Fatalf("%d SENDMEs, want %d", sm, WindowStart/WindowIncrement)
	}
	// The window is open again for 500 more.
	for i := 0; i < WindowStart; i++ {
		if _, err := deliver(t, s, f, cell.RelayData, body); err != nil {
			t.Fatalf("refilled window cell %d: %v", i, err)
		}
	}
}

func TestWriteSplitsAndWindows(t *testing.T) {
	s, f := open(t)
	payload := bytes.Repeat([]byte("0123456789"), 150) // 1500 bytes
	n, err := s.Write(payload)
	if err != nil || n != len(payload) {
		t.Fatal(n, err)
	}
	f.mu.Lock()
	sizes := []int{}
	var joined []byte
	for _, d := range f.data {
		sizes = append(sizes, len(d))
		joined = append(joined, d...)
	}
	f.mu.Unlock()
	if len(sizes) != 4 || sizes[0] != 498 || sizes[1] != 498 || sizes[2] != 498 || sizes[3] != 6 || !bytes.Equal(joined, payload) {
		t.Fatalf("cells %v", sizes)
	}

	// Spend the rest of the package window; the next write blocks until a
	// stream SENDME arrives.
	synctest.Test(t, func(t *testing.T) {
		s, f := open(t)
		s.packageWindow = 1
		done := make(chan error, 1)
		go func() {
			_, err := s.Write(make([]byte, 2*cell.RelayBodyMax))
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("write finished with a closed window: %v", err)
		default:
		}
		if n, _, _ := f.counts(); n != 1 {
			t.Fatalf("%d cells sent with a window of 1", n)
		}
		if _, err := deliver(t, s, f, cell.RelaySendme, nil); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	// A SENDME that would open the window past 500 is a violation.
	s.packageWindow = WindowStart - 10
	if _, err := deliver(t, s, f, cell.RelaySendme, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("overflowing SENDME: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	synctest.Test(t, testDeadlines)
}

func testDeadlines(t *testing.T) {
	s, f := open(t)
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := s.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatal("deadline error is not a timeout")
	}
	// Clearing the deadline makes reads block again until data comes.
	s.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(time.Hour) // fake time: runs once the reader blocks
		c, _ := f.pool.Get(context.Background())
		c.SetRelayBody(1, cell.CmdRelay, cell.RelayData, s.ID(), []byte("late"))
		_, b, _ := c.RelayBody()
		s.HandleRelay(c, cell.RelayData, b)
	}()
	buf := make([]byte, 10)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	// A write blocked on the window gives up at its deadline.
	s.packageWindow = 0
	s.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past deadline: %v", err)
	}
	// A deadline in the past fails at once.
	s.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

func TestCloseSendsEndAndDropsQueue(t *testing.T) {
	s, f := open(t)
	deliver(t, s, f, cell.RelayData, []byte("unread"))
	blocked := make(chan error)
	s.packageWindow = 0
	go func() {
		_, err := s.Write([]byte("x"))
		blocked <- err
	}()
	// Whether or not the writer has blocked yet, Close must end it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked write: %v", err)
	}
	if _, _, ends := f.counts(); ends != 1 || f.ends[0] != cell.EndMisc {
		t.Fatalf("ENDs %v", f.ends)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatal("second Close")
	}
	if f.pool.Stats().InUse != 0 {
		t.Fatal("queued cells not returned on Close")
	}
	// Late data for a closed stream is dropped, not an error.
	if _, err := deliver(t, s, f, cell.RelayData, []byte("late")); err != nil {
		t.Fatal(err)
	}
}

func TestProtocolViolations(t *testing.T) {
	f := newSink()
	s, _ := New(f, 1, nil)
	if _, err := deliver(t, s, f, cell.RelayData, []byte("early")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("DATA before CONNECTED: %v", err)
	}
	s2, f2 := open(t)
	if _, err := deliver(t, s2, f2, cell.RelayConnected, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("second CONNECTED: %v", err)
	}
	deliver(t, s2, f2, cell.RelayEnd, []byte{byte(cell.EndDone)})
	if _, err := deliver(t, s2, f2, cell.RelayData, []byte("x")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("DATA after END: %v", err)
	}
}

// TestQuotaAccounting: the receive queue charges its account for every
// cell it keeps, and a collapse drops the queue, fails reads and writes
// with the quota's error and ENDs the stream with RESOURCELIMIT.
func TestQuotaAccounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trk, err := memquota.New(memquota.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer trk.Close()
		acct, err := trk.NewAccount("stream 9")
		if err != nil {
			t.Fatal(err)
		}
		f := newSink()
		s, err := New(f, 9, &Config{Account: acct})
		if err != nil {
			t.Fatal(err)
		}
		if s.MemoryAccount() != acct {
			t.Fatal("MemoryAccount is not the configured account")
		}
		deliver(t, s, f, cell.RelayConnected, nil)
		if _, ok := s.Oldest(); ok {
			t.Fatal("empty stream reports data")
		}
		deliver(t, s, f, cell.RelayData, []byte("abc"))
		deliver(t, s, f, cell.RelayData, []byte("def"))
		if got := trk.Used(); got != 2*queuedCost {
			t.Fatalf("claimed %d, want %d", got, 2*queuedCost)
		}
		if _, ok := s.Oldest(); !ok {
			t.Fatal("queued data not reported")
		}
		buf := make([]byte, 4)
		io.ReadFull(s, buf)
		if got := trk.Used(); got != queuedCost {
			t.Fatalf("after reading one cell: %d", got)
		}
		if got := f.pool.Stats().InUse; got != 1 {
			t.Fatalf("%d cells out of the pool, want the 1 queued", got)
		}
		// Reclaiming drops the queue, fails reads and writes, and sends END.
		if err := trk.ReclaimTo(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		if got := trk.Used(); got != 0 {
			t.Fatalf("after reclaim: %d", got)
		}
		if got := f.pool.Stats().InUse; got != 0 {
			t.Fatalf("%d cells still out of the pool after reclaim", got)
		}
		var re *memquota.ReclaimedError
		if _, err := s.Read(buf); !errors.As(err, &re) || re.Account != "stream 9" {
			t.Fatalf("read after reclaim: %v", err)
		}
		if _, err := s.Write(buf); !errors.Is(err, memquota.ErrReclaimed) {
			t.Fatalf("write after reclaim: %v", err)
		}
		f.mu.Lock()
		ends := append([]cell.EndReason(nil), f.ends...)
		f.mu.Unlock()
		if len(ends) != 1 || ends[0] != cell.EndResourceLimit {
			t.Fatalf("ENDs after reclaim: %v, want one RESOURCELIMIT", ends)
		}
		// Later DATA is dropped (the circuit forgets the stream at END;
		// a cell in flight must not be queued or charged).
		deliver(t, s, f, cell.RelayData, []byte("late"))
		if trk.Used() != 0 || f.pool.Stats().InUse != 0 {
			t.Fatalf("late DATA kept: used %d, pool %d", trk.Used(), f.pool.Stats().InUse)
		}
		s.Close()
		if !errors.Is(acct.Err(), memquota.ErrReclaimed) {
			t.Fatalf("account after Close: %v", acct.Err())
		}
		if _, _, ends := f.counts(); ends != 1 {
			t.Fatal("Close sent a second END")
		}
	})
}

// TestQuotaCloseReleases: Close forgets the queue's bytes, returns its
// cells and closes the account.
func TestQuotaCloseReleases(t *testing.T) {
	trk, err := memquota.New(memquota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer trk.Close()
	acct, _ := trk.NewAccount("s")
	f := newSink()
	s, _ := New(f, 1, &Config{Account: acct})
	deliver(t, s, f, cell.RelayConnected, nil)
	for range 5 {
		deliver(t, s, f, cell.RelayData, []byte("xyz"))
	}
	if trk.Used() != 5*queuedCost {
		t.Fatalf("used %d", trk.Used())
	}
	s.Close()
	if st := trk.Stats(); st.Used != 0 || st.Accounts != 0 || st.Participants != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	if f.pool.Stats().InUse != 0 {
		t.Fatal("cells not returned")
	}
}

// TestQuotaHardLimitWaitsWithoutLock: a claim waiting on the hard limit
// holds no stream lock, so reclamation (which asks every stream for its
// oldest data) proceeds and collapses the stalled stream.
func TestQuotaHardLimitWaitsWithoutLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limit := 10 * queuedCost
		trk, err := memquota.New(memquota.Config{Limit: limit, LowWater: limit / 2, HardLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		defer trk.Close()
		f := newSink()
		mk := func(name string) *Stream {
			a, _ := trk.NewAccount(name)
			s, err := New(f, 1, &Config{Account: a})
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, s, f, cell.RelayConnected, nil)
			return s
		}
		stalled := mk("stalled")
		for range 8 {
			deliver(t, stalled, f, cell.RelayData, []byte("old"))
		}
		time.Sleep(time.Second)
		fresh := mk("fresh")
		// 8 + 3 cells pass the hard limit: the third claim waits until
		// the stalled stream is reclaimed, then goes through.
		for range 3 {
			deliver(t, fresh, f, cell.RelayData, []byte("new"))
		}
		synctest.Wait() // the collapsed stream is told on the quota's goroutine
		if _, err := stalled.Read(make([]byte, 1)); !errors.Is(err, memquota.ErrReclaimed) {
			t.Fatalf("stalled stream: %v", err)
		}
		if fresh.Buffered() != 9 {
			t.Fatalf("fresh stream holds %d bytes, want 9", fresh.Buffered())
		}
		if st := trk.Stats(); st.Waits != 1 || st.Used != 3*queuedCost || st.Peak > limit+queuedCost {
			t.Fatalf("stats %+v", st)
		}
		stalled.Close()
		fresh.Close()
	})
}

func TestWriteOpensAfterConnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSink()
		s, _ := New(f, 5, nil)
		done := make(chan error, 1)
		go func() {
			_, err := s.Write([]byte("no optimistic data: waits"))
			done <- err
		}()
		synctest.Wait()
		if n, _, _ := f.counts(); n != 0 {
			t.Fatal("DATA sent before CONNECTED")
		}
		deliver(t, s, f, cell.RelayConnected, nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// stallSink is a fakeSink that counts Stalled calls.
type stallSink struct {
	*fakeSink
	stalls atomic.Int32
}

func (f *stallSink) Stalled() { f.stalls.Add(1) }

// TestStalled: a reader that waits StallAfter after data stopped tells the
// sink once per run of data; a wait before any data, a disabled
// StallAfter and an ended stream tell it nothing.
func TestStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &stallSink{fakeSink: newSink()}
		s, err := New(f, 7, &Config{Opened: true})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		s.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read before data: %v", err)
		}
		if n := f.stalls.Load(); n != 0 {
			t.Fatalf("%d stalls before any data", n)
		}
		s.SetReadDeadline(time.Time{})

		type result struct {
			n   int
			err error
		}
		reads := make(chan result, 1)
		read := func() { n, err := s.Read(buf); reads <- result{n, err} }
		for run := int32(1); run <= 2; run++ {
			if _, err := deliver(t, s, f.fakeSink, cell.RelayData, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if n, err := s.Read(buf); n != 5 || err != nil {
				t.Fatalf("read: %d %v", n, err)
			}
			go read()
			time.Sleep(DefaultStallAfter - time.Second)
			synctest.Wait()
			if n := f.stalls.Load(); n != run-1 {
				t.Fatalf("run %d: %d stalls before StallAfter", run, n)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if n := f.stalls.Load(); n != run {
				t.Fatalf("run %d: %d stalls after StallAfter", run, n)
			}
			time.Sleep(10 * DefaultStallAfter)
			synctest.Wait()
			if n := f.stalls.Load(); n != run {
				t.Fatalf("run %d: %d stalls in a long wait, want one", run, n)
			}
			if _, err := deliver(t, s, f.fakeSink, cell.RelayData, []byte("more")); err != nil {
				t.Fatal(err)
			}
			if r := <-reads; r.n != 4 || r.err != nil {
				t.Fatalf("run %d: waiting read got %d %v", run, r.n, r.err)
			}
		}
		// Data then an END: the reader drains and gets EOF, no stall.
		go read()
		if _, err := deliver(t, s, f.fakeSink, cell.RelayEnd, []byte{byte(cell.EndDone)}); err != nil {
			t.Fatal(err)
		}
		if r := <-reads; r.err != io.EOF {
			t.Fatalf("after END: %d %v", r.n, r.err)
		}
		time.Sleep(2 * DefaultStallAfter)
		synctest.Wait()
		if n := f.stalls.Load(); n != 2 {
			t.Fatalf("%d stalls after END, want 2", n)
		}
		s.Close()

		// StallAfter < 0: never.
		f2 := &stallSink{fakeSink: newSink()}
		s2, err := New(f2, 8, &Config{Opened: true, StallAfter: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := deliver(t, s2, f2.fakeSink, cell.RelayData, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		s2.Read(buf)
		s2.SetReadDeadline(time.Now().Add(3 * DefaultStallAfter))
		if _, err := s2.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("disabled: %v", err)
		}
		if n := f2.stalls.Load(); n != 0 {
			t.Fatalf("%d stalls with StallAfter < 0", n)
		}
		s2.Close()
	})
}
