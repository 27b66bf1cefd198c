package stream

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
)

// openFlow returns an open flow-controlled stream.
func openFlow(t *testing.T, fc FlowControl) (*Stream, *fakeSink) {
	t.Helper()
	f := newSink()
	s, err := New(f, 7, &Config{FlowControl: &fc})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, f, cell.RelayConnected, nil)
	return s, f
}

func (f *fakeSink) takeFlows() []cell.RelayMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.flows
	f.flows = nil
	return m
}

func readCell(t *testing.T, s *Stream) {
	t.Helper()
	if _, err := io.ReadFull(s, make([]byte, cell.RelayBodyMax)); err != nil {
		t.Fatal(err)
	}
}

// TestFlowXoffXon follows prop 324 4.1 for a reader that falls behind
// and then speeds up, on a timeline worked out by hand (limits of 4 cells
// for XOFF and 2 cells, 996 bytes, per rate sample):
//
//	t=0     5 cells arrive: 2490 bytes > 1992, XOFF; the rate resets.
//	300 ms  read 3: 1494 bytes over 300 ms busy: 4 kB/s.
//	500 ms  read 5 empties the queue after the XOFF: XON advertising 4.
//	        3 cells arrive and are read at once: 1494 bytes over the
//	        200 ms busy so far, 7; EWMA (2*7+4)/3 = 6, 25% off: XON 6.
//	601 ms  3 cells arrived at 600 ms, one read 1 ms later: 1494 bytes
//	        over 1 ms, 1494; EWMA (2*1494+6)/3 = 998: XON 998.
func TestFlowXoffXon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := openFlow(t, FlowControl{XoffCells: 4, XonRateCells: 2})
		body := make([]byte, cell.RelayBodyMax)
		want := func(when string, msgs ...cell.RelayMsg) {
			t.Helper()
			if got := f.takeFlows(); !reflect.DeepEqual(got, msgs) {
				t.Fatalf("%s: sent %v, want %v", when, got, msgs)
			}
		}
		for i := 0; i < 4; i++ {
			deliver(t, s, f, cell.RelayData, body)
		}
		want("at the limit")
		deliver(t, s, f, cell.RelayData, body)
		want("past the limit", &cell.Xoff{})
		for i := 1; i <= 4; i++ {
			time.Sleep(100 * time.Millisecond)
			readCell(t, s)
		}
		want("while a cell is still queued")
		time.Sleep(100 * time.Millisecond)
		readCell(t, s)
		want("after draining", &cell.Xon{KBpsEWMA: 4})
		for i := 0; i < 3; i++ {
			deliver(t, s, f, cell.RelayData, body)
		}
		readCell(t, s)
		want("faster reads", &cell.Xon{KBpsEWMA: 6})
		readCell(t, s)
		readCell(t, s)
		want("no change")
		time.Sleep(100 * time.Millisecond)
		for i := 0; i < 3; i++ {
			deliver(t, s, f, cell.RelayData, body)
		}
		time.Sleep(time.Millisecond)
		readCell(t, s)
		want("a reader that keeps up", &cell.Xon{KBpsEWMA: 998})
		readCell(t, s)
		readCell(t, s)
		want("no change")
		if _, sendmes, _ := f.counts(); sendmes != 0 {
			t.Fatalf("%d stream SENDMEs under flow control", sendmes)
		}
		if st, _ := s.FlowStats(); st.XoffSent != 1 || st.XonSent != 3 || st.XonRate != 998 || st.MaxQueued != 2490 {
			t.Fatalf("%+v", st)
		}
	})
}

// TestFlowHonorsXoffAndRate: XOFF stops writes; XON resumes them at its
// advertised rate, a bucket of one second's worth: at 1 kB/s two cells
// go at once and the third waits (498-4)/1000 s.
func TestFlowHonorsXoffAndRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := openFlow(t, FlowControl{})
		// No stream window: far more than 500 cells go without SENDMEs.
		if _, err := s.Write(make([]byte, 600*cell.RelayBodyMax)); err != nil {
			t.Fatal(err)
		}
		deliver(t, s, f, cell.RelayXoff, []byte{0})
		done := make(chan error, 1)
		t0 := time.Now()
		go func() {
			_, err := s.Write(make([]byte, 3*cell.RelayBodyMax))
			done <- err
		}()
		synctest.Wait()
		if n, _, _ := f.counts(); n != 600 {
			t.Fatalf("%d cells sent; a write went through the XOFF", n-600)
		}
		deliver(t, s, f, cell.RelayXon, []byte{0, 0, 0, 0, 1})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took != 494*time.Millisecond {
			t.Fatalf("rate-limited write took %v", took)
		}
		// XON with rate 0 lifts the limit.
		deliver(t, s, f, cell.RelayXon, []byte{0, 0, 0, 0, 0})
		t1 := time.Now()
		if _, err := s.Write(make([]byte, 100*cell.RelayBodyMax)); err != nil || time.Since(t1) != 0 {
			t.Fatalf("unlimited write: %v after %v", err, time.Since(t1))
		}
		if st, _ := s.FlowStats(); st.XoffReceived != 1 || st.XonReceived != 2 || st.RateLimit != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

func TestFlowViolations(t *testing.T) {
	s, f := openFlow(t, FlowControl{})
	if _, err := deliver(t, s, f, cell.RelaySendme, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("stream SENDME: %v", err)
	}
	if _, err := deliver(t, s, f, cell.RelayXon, []byte{1, 0, 0, 0, 0}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("XON version 1: %v", err)
	}
	if _, err := deliver(t, s, f, cell.RelayXoff, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("empty XOFF: %v", err)
	}
	// Without flow control, XON and XOFF are dropped (C tor ignores them).
	s2, f2 := open(t)
	if _, err := deliver(t, s2, f2, cell.RelayXoff, []byte{0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Write([]byte("still writes")); err != nil {
		t.Fatal(err)
	}
	// Flow control needs a sink that can send XON/XOFF.
	if _, err := New(plainSink{f2}, 1, &Config{FlowControl: &FlowControl{}}); err == nil {
		t.Fatal("flow control on a plain Sink")
	}
}

// plainSink hides fakeSink's SendFlowControl.
type plainSink struct{ f *fakeSink }

func (p plainSink) SendData(ctx context.Context, id uint16, b []byte) error {
	return p.f.SendData(ctx, id, b)
}
func (p plainSink) SendSendme(ctx context.Context, id uint16) error { return p.f.SendSendme(ctx, id) }
func (p plainSink) SendEnd(id uint16, r cell.EndReason)             { p.f.SendEnd(id, r) }
func (p plainSink) Pool() *cell.Pool                                { return p.f.Pool() }
