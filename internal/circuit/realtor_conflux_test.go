package circuit_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/testnet"
)

// buildLeg makes a 3-hop circuit g -> m -> e with congestion control at
// the exit, on its own channel.
func buildLeg(t testing.TB, g, m, e testnet.Node) (*channel.Channel, *circuit.Circuit) {
	t.Helper()
	guard, gt := relayOf(t, g)
	middle, _ := relayOf(t, m)
	exit, _ := relayOf(t, e)
	exit.CongestionControl = true
	ch, err := channel.Dial(ctxT(t, 30*time.Second), nil, gt)
	if err != nil {
		t.Fatal(err)
	}
	c, err := circuit.Create(ctxT(t, 30*time.Second), ch, guard, &circuit.Config{CongestionControl: ccParams()})
	if err != nil {
		ch.Close()
		t.Fatal(err)
	}
	for _, r := range []circuit.Relay{middle, exit} {
		if err := c.Extend(ctxT(t, 30*time.Second), r); err != nil {
			ch.Close()
			t.Fatal(err)
		}
	}
	return ch, c
}

// confluxSet links two legs through disjoint guards and middles to the
// same exit of the test network.
func confluxSet(t testing.TB, n *testnet.Network) (*circuit.Conflux, func()) {
	t.Helper()
	ms, es := nodesByRole(n, testnet.Middle), nodesByRole(n, testnet.Exit)
	ch1, l1 := buildLeg(t, ms[0], ms[1], es[0])
	ch2, l2 := buildLeg(t, ms[2], ms[3], es[0])
	x, err := circuit.LinkConflux(ctxT(t, 30*time.Second), []*circuit.Circuit{l1, l2}, circuit.LinkOptions{})
	if err != nil {
		ch1.Close()
		ch2.Close()
		t.Fatal(err)
	}
	return x, func() { x.Close(); ch1.Close(); ch2.Close() }
}

// TestConfluxRealExit: a tor 0.4.9 exit links two legs into one set
// (CONFLUX_LINK / LINKED / LINKED_ACK), spreads a 10 MiB body over both
// (with CONFLUX_SWITCH), and the body arrives whole and in order; a second
// stream and a RESOLVE work on the same set. Closing one leg closes the
// set and fails its streams.
func TestConfluxRealExit(t *testing.T) {
	n := testnet.Shared(t)
	check := testnet.CheckGoroutines(t)
	defer check()
	x, closeAll := confluxSet(t, n)
	defer closeAll()
	legs := x.Legs()
	if len(legs) != 2 || legs[0].RTT <= 0 || legs[1].RTT <= 0 {
		t.Fatalf("legs %+v", legs)
	}
	host, port := httpTarget(n)
	s, err := x.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	download(t, n, s, "10MiB.bin")
	s.Close()
	legs = x.Legs()
	t.Logf("legs after 10 MiB: %+v", legs)
	if legs[0].Cells == 0 || legs[1].Cells == 0 {
		t.Fatalf("the exit did not use both legs: %+v", legs)
	}
	if legs[0].Switches+legs[1].Switches == 0 {
		t.Fatalf("no CONFLUX_SWITCH: %+v", legs)
	}
	s2, err := x.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	download(t, n, s2, "1MiB.bin")
	// RESOLVE and RESOLVED are sequenced too: the answer (an address or
	// an error answer, as TestResolve accepts) comes back through the set.
	ans, err := x.Resolve(ctxT(t, 30*time.Second), "127.0.0.1")
	if err != nil || len(ans) != 1 {
		t.Fatalf("RESOLVE over the set: %+v %v", ans, err)
	}

	// A stream left open fails when a leg dies.
	s3, err := x.Begin(ctxT(t, 30*time.Second), host, port, 0)
	if err != nil {
		t.Fatal(err)
	}
	x.Circuits()[1].Close()
	select {
	case <-x.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("set still open after a leg closed")
	}
	if !errors.Is(x.Err(), circuit.ErrConfluxLegClosed) {
		t.Fatalf("set error %v", x.Err())
	}
	s3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(s3); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream on a closed set: %v", err)
	}
	s2.Close()
	s3.Close()
}

// TestConfluxConcurrentStreams: eight streams at once over one set each
// get their body intact (cells of different streams interleave across
// the legs).
func TestConfluxConcurrentStreams(t *testing.T) {
	n := testnet.Shared(t)
	x, closeAll := confluxSet(t, n)
	defer closeAll()
	host, port := httpTarget(n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := x.Begin(ctxT(t, 60*time.Second), host, port, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			download(t, n, s, "1MiB.bin")
		}()
	}
	wg.Wait()
	if x.Streams() != 0 {
		t.Fatalf("%d streams left", x.Streams())
	}
}
