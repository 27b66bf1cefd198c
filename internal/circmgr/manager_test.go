package circmgr

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/pathsel/guard"
)

func dial(t *testing.T, m *Manager, key IsolationKey, host string, port uint16) *stream.Stream {
	t.Helper()
	s, err := m.Dial(context.Background(), key, host, port)
	if err != nil {
		t.Fatalf("Dial(%v, %s:%d): %v", key, host, port, err)
	}
	return s
}

func mustErr(t *testing.T, err error, kind error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Fatalf("error %v (%T), want an *Error of kind %v", err, err, kind)
	}
	return e
}

// TestReuseAndIsolation: requests of one key share a circuit; requests of
// different keys never do; the zero key and Key("") are one group.
func TestReuseAndIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		a := watch(m)
		keys := []IsolationKey{{}, Key("alice"), Key("bob"), NewKey(), NewKey(), Key("")}
		for round := range 3 {
			for _, k := range keys {
				s := dial(t, m, k, "example.com", 443)
				if round == 2 {
					s.Close()
				}
			}
		}
		// Key("") is the zero key: five distinct groups, five circuits.
		if n := f.numBuilds(); n != 5 {
			t.Fatalf("%d builds for 5 isolation groups", n)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.keys) != 5 {
			t.Fatalf("streams went on %d circuits, want 5", len(a.keys))
		}
		for id, ks := range a.keys {
			if len(ks) != 1 {
				t.Fatalf("circuit %d carried streams of %d keys: %v", id, len(ks), ks)
			}
		}
		n1, n2, a1, a2 := NewKey(), NewKey(), Key("a"), Key("a")
		if Key("") != (IsolationKey{}) || n1 == n2 || a1 != a2 || a1 == n1 {
			t.Fatal("key equality")
		}
		if s := Key("secret").String(); strings.Contains(s, "secret") {
			t.Fatalf("key prints its name: %s", s)
		}
	})
}

// TestConcurrentDialsShareBuild: many requests of one key arriving
// together wait for one build.
func TestConcurrentDialsShareBuild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		f.gate = make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for k := range 20 {
			wg.Go(func() {
				_, err := m.Dial(context.Background(), Key(string(rune('a'+k%2))), "example.com", 80)
				errs <- err
			})
		}
		synctest.Wait()
		close(f.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := f.numBuilds(); n != 2 {
			t.Fatalf("%d builds for 20 requests of 2 keys", n)
		}
	})
}

// TestDirtiness: a circuit dirty for MaxDirtiness takes no new streams;
// it stays open while it has streams and is closed once they end.
func TestDirtiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		a := watch(m)
		s1 := dial(t, m, Key("k"), "example.com", 443)
		c1 := a.lastCirc()
		time.Sleep(DefaultMaxDirtiness - time.Second)
		dial(t, m, Key("k"), "example.com", 443).Close()
		if a.lastCirc() != c1 || f.numBuilds() != 1 {
			t.Fatal("a circuit dirty for less than MaxDirtiness was not reused")
		}
		time.Sleep(2 * time.Second)
		s2 := dial(t, m, Key("k"), "example.com", 443)
		if a.lastCirc() == c1 || f.numBuilds() != 2 {
			t.Fatal("a circuit dirty for MaxDirtiness was reused")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if c1.h.Err() != nil {
			t.Fatal("a too-dirty circuit with an open stream was closed")
		}
		s1.Close()
		m.wake()
		synctest.Wait()
		if c1.h.Err() == nil {
			t.Fatal("a too-dirty circuit without streams stayed open")
		}
		s2.Close()
	})
}

// TestIdleAndTrim: circuits without streams close after IdleTimeout;
// TrimMemory closes them at once but keeps busy ones.
func TestIdleAndTrim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := newFake(t, stdRelays(), nil)
		a := watch(m)
		dial(t, m, Key("a"), "example.com", 443).Close()
		ca := a.lastCirc()
		sb := dial(t, m, Key("b"), "example.com", 443)
		cb := a.lastCirc()
		time.Sleep(DefaultIdleTimeout - time.Second)
		synctest.Wait()
		if ca.h.Err() != nil {
			t.Fatal("closed before IdleTimeout")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if ca.h.Err() == nil || cb.h.Err() != nil {
			t.Fatalf("after IdleTimeout: idle circuit closed %v, busy one closed %v", ca.h.Err() != nil, cb.h.Err() != nil)
		}
		dial(t, m, Key("c"), "example.com", 443).Close()
		cc := a.lastCirc()
		if n := m.TrimMemory(); n != 1 || cc.h.Err() == nil || cb.h.Err() != nil {
			t.Fatalf("TrimMemory closed %d; idle one closed %v, busy one closed %v", n, cc.h.Err() != nil, cb.h.Err() != nil)
		}
		sb.Close()
		if st := m.Stats(); st.Open != 1 || st.Closed != 2 || st.StreamsOpened != 3 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestPortRules: a circuit is reused only when its exit allows the port.
func TestPortRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		a := watch(m)
		time.Sleep(time.Second)
		dial(t, m, Key("k"), "example.com", 22)
		c22 := a.lastCirc()
		if e := c22.exit(); e != id(9) && e != id(10) {
			t.Fatalf("port 22 went to an exit that does not allow it")
		}
		dial(t, m, Key("k"), "example.com", 25)
		if e := a.lastCirc().exit(); e != id(9) {
			t.Fatalf("port 25 went to an exit that does not allow it")
		}
		dial(t, m, Key("k"), "example.com", 22)
		if n := f.numBuilds(); n > 2 {
			t.Fatalf("%d builds: no reuse across ports", n)
		}
		_, err := m.Dial(context.Background(), Key("k"), "example.com", 0)
		mustErr(t, err, ErrBadTarget)
	})
}

// TestBeginFlags: names and IPv4 literals ask for IPv4 at the exit, IPv6
// literals allow IPv6.
func TestBeginFlags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := newFake(t, stdRelays(), nil)
		a := watch(m)
		for host, want := range map[string]uint32{"example.com": 0, "192.0.2.1": 0, "[2001:db8::1]": cell.BeginIPv6OK, "2001:db8::2": cell.BeginIPv6OK} {
			s := dial(t, m, Key(""), host, 443)
			s.Close()
			if s.RemoteAddr().String() != strings.Trim(host, "[]") {
				t.Errorf("%s: stream to %s", host, s.RemoteAddr())
			}
			if got := a.lastCirc().h.(*fakeCirc).flags; got != want {
				t.Errorf("%s: BEGIN flags %#x, want %#x", host, got, want)
			}
		}
	})
}

// TestLongLivedPorts: streams to a long-lived port (22) need a circuit of
// Stable relays, and do not reuse one that has a hop without.
func TestLongLivedPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := stdRelays()
		for k := 4; k < 7; k++ { // heavy middles without Stable
			rs[k] = relay{flags: netdoc.FlagFast, bw: 100000}
		}
		m, _ := newFake(t, rs, nil)
		a := watch(m)
		dial(t, m, Key("k"), "example.com", 443)
		c443 := a.lastCirc()
		if !slices.Contains([][20]byte{id(4), id(5), id(6)}, c443.path[1]) {
			t.Fatal("the heavy unstable middles were not chosen: the test proves nothing")
		}
		time.Sleep(time.Second)
		dial(t, m, Key("k"), "example.com", 22)
		c22 := a.lastCirc()
		if c22 == c443 || !c22.stable || slices.Contains([][20]byte{id(4), id(5), id(6)}, c22.path[1]) {
			t.Fatal("port 22 went on a circuit with a hop that is not Stable")
		}
		// The most recently dirtied circuit that serves the port is
		// preferred (C tor's circuit_is_better).
		dial(t, m, Key("k"), "example.com", 443)
		if want := map[bool]*circ{true: c22, false: c443}[c22.policy.Allows(443)]; a.lastCirc() != want {
			t.Fatal("port 443 did not go on the most recently dirtied circuit serving it")
		}
	})
}

// TestNoExitForPort: a port no exit allows is a typed error, no build.
func TestNoExitForPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := stdRelays()[:9] // exit 8 only: 80 and 443
		m, f := newFake(t, rs, nil)
		_, err := m.Dial(context.Background(), Key(""), "example.com", 25)
		mustErr(t, err, ErrNoExitForPort)
		if f.numBuilds() != 0 {
			t.Fatal("built a circuit for a port no exit allows")
		}
	})
}

// TestExitPolicyRetry: EXITPOLICY bans the port at that exit and the
// request goes on through another exit.
func TestExitPolicyRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := stdRelays()
		rs[8].bw = 100000 // nearly always chosen first
		m, f := newFake(t, rs, nil)
		f.begin = func(_ context.Context, c *fakeCirc, _ string, port uint16) error {
			if c.path[2] == id(8) && port == 443 {
				return &stream.EndError{Reason: cell.EndExitPolicy}
			}
			return nil
		}
		a := watch(m)
		for k := range 5 {
			dial(t, m, NewKey(), "example.com", 443)
			if a.lastCirc().exit() == id(8) {
				t.Fatalf("dial %d: stream attached through the refusing exit", k)
			}
		}
		through8 := 0
		for _, b := range f.builds {
			if b[2] == id(8) {
				through8++
			}
		}
		if through8 != 1 {
			t.Fatalf("%d builds through the exit that refused the port, want exactly 1", through8)
		}
		// The ban is per port: the exit still serves 80.
		for range 20 {
			dial(t, m, NewKey(), "example.com", 80)
			if a.lastCirc().exit() == id(8) {
				return
			}
		}
		t.Fatal("the exit that refused 443 was never used for 80")
	})
}

// TestRefusalsNotRetried: CONNECTREFUSED and TIMEOUT are final, as in C
// tor; the error carries the END reason and the circuit stays usable.
func TestRefusalsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		for _, reason := range []cell.EndReason{cell.EndConnectRefused, cell.EndTimeout} {
			f.begin = func(context.Context, *fakeCirc, string, uint16) error { return &stream.EndError{Reason: reason} }
			_, err := m.Dial(context.Background(), Key("k"), "example.com", 443)
			e := mustErr(t, err, ErrExitRefused)
			if e.Attempts != 1 || !errors.Is(err, &stream.EndError{Reason: reason}) {
				t.Fatalf("%v: %v (%d attempts)", reason, err, e.Attempts)
			}
		}
		if f.numBuilds() != 1 {
			t.Fatalf("%d builds: the circuit was not kept after a refusal", f.numBuilds())
		}
		if !errors.Is(mustErr(t, func() error {
			f.begin = func(context.Context, *fakeCirc, string, uint16) error { return stream.ErrConnectRefused }
			_, err := m.Dial(context.Background(), Key("k"), "example.com", 443)
			return err
		}(), ErrExitRefused), stream.ErrConnectRefused) {
			t.Fatal("errors.Is(err, stream.ErrConnectRefused) does not hold")
		}
	})
}

// TestResolveFailedRetries: RESOLVEFAILED retires the circuit and is
// retried on new circuits, three tries in all (MAX_RESOLVE_FAILURES).
func TestResolveFailedRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		f.begin = func(context.Context, *fakeCirc, string, uint16) error {
			return &stream.EndError{Reason: cell.EndResolveFailed}
		}
		_, err := m.Dial(context.Background(), Key("k"), "no.such.name", 443)
		e := mustErr(t, err, ErrResolveFailed)
		if e.Attempts != 3 || f.numBuilds() != 3 || !errors.Is(err, stream.ErrResolveFailed) {
			t.Fatalf("%v: %d attempts, %d builds; want 3 and 3", err, e.Attempts, f.numBuilds())
		}
		if st := m.Stats(); st.Retries != 2 || st.Failures != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestBeginTimeoutRetry: a BEGIN unanswered for 10 s retires the circuit
// and the stream is tried on another.
func TestBeginTimeoutRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		var first *fakeCirc
		f.begin = func(ctx context.Context, c *fakeCirc, _ string, _ uint16) error {
			if first == nil || first == c {
				first = c
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		start := time.Now()
		s := dial(t, m, Key("k"), "slow.example", 443)
		if d := time.Since(start); d != DefaultBeginTimeout {
			t.Fatalf("retried after %v, want %v", d, DefaultBeginTimeout)
		}
		s.Close()
		if f.numBuilds() != 2 || m.Stats().Retries != 1 {
			t.Fatalf("%d builds, stats %+v", f.numBuilds(), m.Stats())
		}
		dial(t, m, Key("k"), "slow.example", 443)
		if first.begins != 1 {
			t.Fatal("the circuit that timed out took another stream")
		}
	})
}

// TestDeadCircuitRetry: a circuit that died is not used, and a request
// whose circuit dies under it goes on through another.
func TestDeadCircuitRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		a := watch(m)
		s := dial(t, m, Key("k"), "example.com", 443)
		c1 := a.lastCirc()
		c1.h.(*fakeCirc).kill(&circuit.DestroyedError{Reason: 8, Truncated: true, Hop: 1})
		if _, err := s.Read(make([]byte, 1)); !errors.As(err, new(*circuit.DestroyedError)) {
			t.Fatalf("read on a destroyed circuit: %v", err)
		}
		dial(t, m, Key("k"), "example.com", 443)
		if a.lastCirc() == c1 {
			t.Fatal("a dead circuit was used")
		}
		died := false
		f.begin = func(_ context.Context, c *fakeCirc, _ string, _ uint16) error {
			if !died {
				died = true
				c.kill(&circuit.DestroyedError{Reason: 8})
				return c.Err()
			}
			return nil
		}
		dial(t, m, Key("k"), "example.com", 443)
		if f.numBuilds() != 3 {
			t.Fatalf("%d builds", f.numBuilds())
		}
	})
}

// TestBuildFailures: a failed extension is retried on a path around the
// relay that failed; a failed first hop marks the guard unreachable and
// another guard is used; persistent failure gives ErrBuildFailed.
func TestBuildFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := stdRelays()
		rs[4].bw = 100000 // the middle nearly always chosen
		m, f := newFake(t, rs, nil)
		f.failAt = func(p [3][20]byte) int {
			if p[1] == id(4) {
				return 1
			}
			return -1
		}
		a := watch(m)
		dial(t, m, Key("k"), "example.com", 443)
		if a.lastCirc().path[1] == id(4) || f.numBuilds() < 2 {
			t.Fatalf("builds %d; last middle is the failing one: %v", f.numBuilds(), a.lastCirc().path[1] == id(4))
		}

		g := m.PrimaryGuards()[0].ID
		f.failAt = func(p [3][20]byte) int {
			if p[0] == g {
				return 0
			}
			return -1
		}
		dial(t, m, NewKey(), "example.com", 443)
		if a.lastCirc().path[0] == g {
			t.Fatal("used the guard that failed")
		}
		for _, gi := range m.PrimaryGuards() {
			if gi.ID == g && gi.Reach != guard.Unreachable {
				t.Fatalf("failed guard is %v", gi.Reach)
			}
		}

		f.failAt = func([3][20]byte) int { return 2 }
		before := f.numBuilds()
		_, err := m.Dial(context.Background(), NewKey(), "example.com", 443)
		e := mustErr(t, err, ErrBuildFailed)
		if e.Builds != DefaultMaxBuilds || f.numBuilds()-before != DefaultMaxBuilds || !errors.As(err, new(*circuit.DestroyedError)) {
			t.Fatalf("%v: %d builds waited for, %d made", err, e.Builds, f.numBuilds()-before)
		}
	})
}

// TestBuildTimeout: a build that hangs is abandoned at the build timeout
// (cbtinitialtimeout before any is learned) and another is tried.
func TestBuildTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		hung := make(chan struct{})
		f.failAt = func([3][20]byte) int {
			if f.numBuilds() == 1 {
				<-hung
			}
			return -1
		}
		done := make(chan error)
		start := time.Now()
		go func() {
			_, err := m.Dial(context.Background(), Key("k"), "example.com", 443)
			done <- err
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Fatalf("second build after %v, want the 60 s initial timeout", d)
		}
		close(hung) // the hung build completes, too late to be used
		synctest.Wait()
		st := m.Stats()
		if st.TimedOut != 1 || st.BuildTimeout != time.Minute || st.Learned {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestDirectoryNotReady: no network view, or one past its lifetime, is
// ErrDirectoryNotReady; a new view is picked up.
func TestDirectoryNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, nil, nil)
		nd := handNet(t, stdRelays())
		_, err := m.Dial(context.Background(), Key(""), "example.com", 443)
		mustErr(t, err, ErrDirectoryNotReady)
		f.setNetDir(nd)
		dial(t, m, Key(""), "example.com", 443).Close()
		time.Sleep(3*time.Hour + reasonablyLive + time.Minute)
		_, err = m.Dial(context.Background(), Key("other"), "example.com", 443)
		mustErr(t, err, ErrDirectoryNotReady)
	})
}

// TestPreemptive: clean circuits are kept ready and taken by the first
// request of any key, then replaced; none while dormant, after
// TrimMemory's hold-off, or an hour after the last request.
func TestPreemptive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), func(c *Config) { c.Preemptive = 2 })
		synctest.Wait()
		if st := m.Stats(); st.Clean != 2 || f.numBuilds() != 2 {
			t.Fatalf("after start: %+v, %d builds", st, f.numBuilds())
		}
		for _, b := range f.builds {
			if b[2] == id(10) {
				t.Fatal("a preemptive circuit through an exit that allows neither 80 nor 443")
			}
		}
		s := dial(t, m, Key("k"), "example.com", 443)
		synctest.Wait()
		if st := m.Stats(); st.Clean != 2 || st.Open != 3 || f.numBuilds() != 3 {
			t.Fatalf("after a dial: %+v, %d builds", st, f.numBuilds())
		}
		s.Close()

		m.SetDormant(true)
		if n := m.TrimMemory(); n != 3 {
			t.Fatalf("TrimMemory closed %d", n)
		}
		time.Sleep(2 * DefaultIdleTimeout)
		if f.numBuilds() != 3 {
			t.Fatal("built while dormant")
		}
		m.SetDormant(false)
		synctest.Wait()
		if m.Stats().Clean != 2 {
			t.Fatalf("not rebuilt after waking: %+v", m.Stats())
		}
		// An hour without requests: no more predictions, and the clean
		// circuits go once idle.
		time.Sleep(PredictionWindow + DefaultIdleTimeout)
		synctest.Wait()
		if st := m.Stats(); st.Open != 0 || f.numBuilds() != 5 {
			t.Fatalf("an hour idle: %+v, %d builds", st, f.numBuilds())
		}
	})
}

// TestPreemptiveDisabled: Preemptive < 0 builds nothing ahead.
func TestPreemptiveDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, f := newFake(t, stdRelays(), nil)
		time.Sleep(time.Hour)
		if f.numBuilds() != 0 {
			t.Fatal("built with preemption off")
		}
	})
}

// TestGuardPersistence: the guard state is saved when it changes and a
// new manager loading it has the same primary guards; unparsable state is
// replaced, a failing load fails New.
func TestGuardPersistence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var saved []byte
		saves := 0
		hooks := func(c *Config) {
			c.LoadGuards = func() ([]byte, error) { return saved, nil }
			c.SaveGuards = func(b []byte) error { saved, saves = slices.Clone(b), saves+1; return nil }
		}
		m1, _ := newFake(t, stdRelays(), hooks)
		dial(t, m1, Key(""), "example.com", 443).Close()
		p1 := m1.PrimaryGuards()
		m1.Close()
		if saved == nil || saves == 0 {
			t.Fatal("guard state never saved")
		}
		m2, _ := newFake(t, stdRelays(), func(c *Config) {
			hooks(c)
			c.Rand = strings.NewReader(strings.Repeat("another seed", 3)) // a different sample if it resampled
		})
		a := watch(m2)
		dial(t, m2, Key(""), "example.com", 443).Close()
		p2 := m2.PrimaryGuards()
		if len(p1) == 0 || len(p1) != len(p2) || p1[0].ID != p2[0].ID || a.lastCirc().path[0] != p1[0].ID {
			t.Fatal("primary guards changed across a restart")
		}

		saved = []byte("garbage")
		newFake(t, stdRelays(), hooks)
		f := &fakeNet{}
		_, err := newManager(Config{Channels: m2.cfg.Channels, NetDir: f,
			LoadGuards: func() ([]byte, error) { return nil, errors.New("disk on fire") }}, f)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("New with a failing LoadGuards: %v", err)
		}
	})
}

// TestResolve: addresses and names come back; an IP literal is answered
// locally; permanent errors are final, transient ones retried.
func TestResolve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		var queries []string
		f.resolve = func(_ context.Context, _ *fakeCirc, q string) ([]cell.Answer, error) {
			queries = append(queries, q)
			switch q {
			case "example.com":
				return []cell.Answer{{Type: cell.AnswerIPv6, Addr: netip.MustParseAddr("2001:db8::1")},
					{Type: cell.AnswerIPv4, Addr: netip.MustParseAddr("192.0.2.7")}}, nil
			case "7.2.0.192.in-addr.arpa":
				return []cell.Answer{{Type: cell.AnswerHostname, Value: []byte("host.example")}}, nil
			case "flaky.example":
				if queries[len(queries)-2] != q {
					return []cell.Answer{{Type: cell.AnswerErrorTransient}}, nil
				}
				return []cell.Answer{{Type: cell.AnswerIPv4, Addr: netip.MustParseAddr("192.0.2.8")}}, nil
			}
			return []cell.Answer{{Type: cell.AnswerErrorPermanent, Value: []byte("no")}}, nil
		}
		addrs, err := m.Resolve(context.Background(), Key("k"), "example.com")
		if err != nil || len(addrs) != 2 || addrs[1] != netip.MustParseAddr("192.0.2.7") {
			t.Fatalf("Resolve: %v %v", addrs, err)
		}
		names, err := m.ResolvePTR(context.Background(), Key("k"), netip.MustParseAddr("192.0.2.7"))
		if err != nil || len(names) != 1 || names[0] != "host.example" {
			t.Fatalf("ResolvePTR: %v %v", names, err)
		}
		if addrs, err := m.Resolve(context.Background(), Key("k"), "[2001:db8::2]"); err != nil || addrs[0] != netip.MustParseAddr("2001:db8::2") {
			t.Fatalf("literal: %v %v", addrs, err)
		}
		_, err = m.Resolve(context.Background(), Key("k"), "nx.example")
		mustErr(t, err, ErrResolveFailed)
		if addrs, err := m.Resolve(context.Background(), Key("k"), "flaky.example"); err != nil || len(addrs) != 1 {
			t.Fatalf("transient errors: %v %v", addrs, err)
		}
		if len(queries) != 5 || f.numBuilds() != 2 {
			t.Fatalf("queries %q, %d builds", queries, f.numBuilds())
		}
	})
}

func TestReverseName(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":          "7.2.0.192.in-addr.arpa",
		"::ffff:192.0.2.7":   "7.2.0.192.in-addr.arpa",
		"2001:db8::567:89ab": "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	} {
		if got := reverseName(netip.MustParseAddr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "[2001:db8::1]": "2001:db8::1", "2001:db8::1": "2001:db8::1",
		"192.0.2.1": "192.0.2.1", "a": "a",
	} {
		if got, err := checkHost(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\x00b", strings.Repeat("a", 256), "x.onion", "X.ONION.", "a:b", "[]", "1.2.3.4:80"} {
		if _, err := checkHost(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTimeoutAndCancel: a request that cannot complete ends with the
// caller's deadline (ErrTimeout, a net.Error timeout) or cancellation.
func TestTimeoutAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), nil)
		f.gate = make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := m.Dial(ctx, Key(""), "example.com", 443)
		var ne net.Error
		if mustErr(t, err, ErrTimeout); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline: %v", err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		go func() { time.Sleep(time.Second); cancel() }()
		_, err = m.Dial(ctx, Key(""), "example.com", 443)
		mustErr(t, err, context.Canceled)
		_, err = m.Dial(context.Background(), Key(""), "example.com", 443)
		if e := mustErr(t, err, ErrTimeout); !e.Timeout() {
			t.Fatal("dial timeout is not a timeout")
		}
		close(f.gate)
	})
}

// TestClose: Close ends builds and waiting requests, and every goroutine
// (synctest fails the test otherwise); later calls fail with ErrClosed.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f := newFake(t, stdRelays(), func(c *Config) { c.Preemptive = 2 },
			func(f *fakeNet) { f.gate = make(chan struct{}) }) // builds hang
		synctest.Wait() // the two preemptive builds are under way
		errc := make(chan error)
		go func() {
			_, err := m.Dial(context.Background(), Key(""), "example.com", 443)
			errc <- err
		}()
		synctest.Wait()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		mustErr(t, <-errc, ErrClosed)
		_, err := m.Dial(context.Background(), Key(""), "example.com", 443)
		if mustErr(t, err, ErrClosed); !errors.Is(err, net.ErrClosed) {
			t.Fatal("ErrClosed is not net.ErrClosed")
		}
		if err := m.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		// The request waited for a preemptive build rather than start one.
		if st := m.Stats(); st.Failed != 2 || f.numBuilds() != 2 || st.Open != 0 {
			t.Fatalf("stats after Close %+v", st)
		}
	})
}

// TestNonPrimaryGuard: with the primary guards unreachable, circuits go
// through other guards; one whose circuit completes while a guard of
// higher priority (an earlier confirmed one) is still being tried is not
// used until proposal 337 allows it: once that guard has been pending
// for the nonprimary connect timeout (15 s).
func TestNonPrimaryGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := stdRelays()
		for range 4 { // more guards, so that some are not primary
			rs = append(rs, relay{flags: guardFlags})
		}
		var failing [][20]byte // guards whose first hop fails
		var hold [20]byte      // a guard whose build hangs until release
		release := make(chan struct{})
		m, f := newFake(t, rs, nil, func(f *fakeNet) {
			f.failAt = func(p [3][20]byte) int {
				f.mu.Lock()
				fail, held := slices.Contains(failing, p[0]), p[0] == hold
				f.mu.Unlock()
				if held {
					<-release // then it works
					return -1
				}
				if fail {
					return 0
				}
				return -1
			}
		})
		a := watch(m)
		var used [][20]byte
		// Confirm five guards: each dial's guard fails for the next ones,
		// so the last two are confirmed but not primary.
		for k := range 5 {
			dial(t, m, NewKey(), "example.com", 443).Close()
			g := a.lastCirc().path[0]
			used = append(used, g)
			f.mu.Lock()
			failing = append(failing, g)
			f.mu.Unlock()
			primary := slices.ContainsFunc(m.PrimaryGuards(), func(i guard.Info) bool { return i.ID == g })
			if primary != (k < 3) {
				t.Fatalf("dial %d went through guard %d, primary %v", k, slices.Index(used, g), primary)
			}
		}
		// Every guard may be retried; the primaries fail again and the
		// first confirmed non-primary one hangs.
		time.Sleep(11 * time.Minute)
		f.mu.Lock()
		failing, hold = used[:3], used[3]
		f.mu.Unlock()
		errA := make(chan error)
		go func() {
			_, err := m.Dial(context.Background(), NewKey(), "example.com", 443)
			errA <- err
		}()
		synctest.Wait()
		start := time.Now()
		dial(t, m, NewKey(), "example.com", 443).Close()
		if g := a.lastCirc().path[0]; g != used[4] {
			t.Fatalf("stream through guard %d, want the second confirmed non-primary one", slices.Index(used, g))
		}
		if d := time.Since(start); d < 15*time.Second || d > 17*time.Second {
			t.Fatalf("circuit through a lower guard used after %v, want once the held one was pending 15 s", d)
		}
		close(release)
		if err := <-errA; err != nil {
			t.Fatal(err)
		}
	})
}
