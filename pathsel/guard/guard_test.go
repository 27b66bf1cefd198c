package guard

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/realnet"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9a4d)) }

var t0 = time.Date(2026, 6, 27, 4, 10, 0, 0, time.UTC)

const guardFlags = netdoc.FlagGuard | netdoc.FlagStable | netdoc.FlagFast | netdoc.FlagV2Dir

// tiny builds a hand-made network: n guards on distinct /16s plus the
// extra relays given.
func tiny(t *testing.T, n int, extra ...netdirtest.Relay) *netdir.NetDir {
	t.Helper()
	var rs []netdirtest.Relay
	for k := 0; k < n; k++ {
		rs = append(rs, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: guardFlags, Bandwidth: 1000})
	}
	return tinyFrom(t, append(rs, extra...))
}

func tinyFrom(t *testing.T, rs []netdirtest.Relay) *netdir.NetDir {
	t.Helper()
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

// oneUsable are the spec defaults with one usable primary guard, so the
// tests can predict which guard Select returns.
func oneUsable() *Params {
	p := DefaultParams()
	p.NUsablePrimary, p.NUsablePrimaryDir = 1, 1
	return &p
}

func ids(is []Info) [][20]byte {
	out := make([][20]byte, len(is))
	for k, i := range is {
		out[k] = i.ID
	}
	return out
}

func mustSelect(t *testing.T, m *Manager, u Usage, now time.Time, r *rand.Rand) Ticket {
	t.Helper()
	tk, err := m.Select(u, now, r)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestSampleAndPrimary(t *testing.T) {
	nd := tiny(t, 40)
	r := seeded(1)
	m := New(Config{})
	if _, err := m.Select(Usage{}, t0, r); !errors.Is(err, ErrNoNetDir) {
		t.Errorf("Select before SetNetDir: %v", err)
	}
	m.SetNetDir(nd, t0, r)
	s := m.Sampled()
	// 40 guards: the sample may hold max(min(60, 20% of 40), 20) = 20.
	if len(s) != 20 {
		t.Fatalf("sampled %d, want 20", len(s))
	}
	for _, g := range s {
		if !g.Listed || g.AddedOn.After(t0) || g.AddedOn.Before(t0.Add(-12*day)) {
			t.Errorf("guard %X: listed %v, added %v", g.ID, g.Listed, g.AddedOn)
		}
	}
	p := m.Primary()
	if len(p) != 3 || !slices.Equal(ids(p), ids(s[:3])) {
		t.Fatalf("primary %X, want the first three sampled %X", ids(p), ids(s[:3]))
	}
	// One usable primary by default: always the first; directory
	// requests spread over three.
	seen, seenDir := map[[20]byte]int{}, map[[20]byte]int{}
	for range 300 {
		tk := mustSelect(t, m, Usage{}, t0, r)
		seen[tk.ID]++
		if !tk.Primary || tk.Relay == netdir.NoRelay {
			t.Fatalf("ticket %+v", tk)
		}
		seenDir[mustSelect(t, m, Usage{Dir: true}, t0, r).ID]++
	}
	if len(seen) != 1 || seen[p[0].ID] != 300 || len(seenDir) != 3 {
		t.Errorf("circuit guards %d, directory guards %d", len(seen), len(seenDir))
	}
	if m.Generation() == 0 {
		t.Error("sampling did not change the generation")
	}
}

func TestFailoverAndUsability(t *testing.T) {
	nd := tiny(t, 40)
	r := seeded(2)
	m := New(Config{Params: oneUsable()})
	m.SetNetDir(nd, t0, r)
	s := ids(m.Sampled())
	now := t0
	// The primaries fail one by one.
	for k := 0; k < 3; k++ {
		tk := mustSelect(t, m, Usage{}, now, r)
		if tk.ID != s[k] || !tk.Primary {
			t.Fatalf("attempt %d: got %X (primary %v), want %X", k, tk.ID, tk.Primary, s[k])
		}
		m.Failed(tk, now, r)
	}
	// Now exploratory guards in sample order, one pending each.
	t3 := mustSelect(t, m, Usage{}, now, r)
	t4 := mustSelect(t, m, Usage{}, now.Add(time.Second), r)
	if t3.ID != s[3] || t4.ID != s[4] || t3.Primary || t4.Primary {
		t.Fatalf("exploratory: %X %X, want %X %X", t3.ID, t4.ID, s[3], s[4])
	}
	if got := m.Usable(t3, now.Add(2*time.Second)); got != Usable {
		t.Errorf("first exploratory guard: %v, want usable (all better ones failed)", got)
	}
	if got := m.Usable(t4, now.Add(2*time.Second)); got != Undecided {
		t.Errorf("second exploratory guard while the first is pending: %v", got)
	}
	if got := m.Usable(t4, now.Add(16*time.Second)); got != Usable {
		t.Errorf("after the connect timeout: %v", got)
	}
	if got := m.Usable(t4, now.Add(601*time.Second)); got != Unusable {
		t.Errorf("after the idle timeout: %v", got)
	}
	// The first exploratory guard works: it is confirmed and becomes the
	// first primary; the second is no longer usable.
	m.Succeeded(t3, now.Add(5*time.Second), r)
	if got := m.Usable(t4, now.Add(6*time.Second)); got != Unusable {
		t.Errorf("a better guard is reachable: %v", got)
	}
	if c := ids(m.Confirmed()); len(c) != 1 || c[0] != s[3] {
		t.Errorf("confirmed %X", c)
	}
	p := m.Primary()
	if !slices.Equal(ids(p), [][20]byte{s[3], s[0], s[1]}) {
		t.Errorf("primary after confirmation %X, want %X %X %X", ids(p), s[3], s[0], s[1])
	}
	// The first success after a long time offline retries the primaries.
	if p[1].Reach != Unknown || p[2].Reach != Unknown || p[0].Reach != Reachable {
		t.Errorf("primary reachability %v %v %v", p[0].Reach, p[1].Reach, p[2].Reach)
	}
	if tk := mustSelect(t, m, Usage{}, now.Add(7*time.Second), r); tk.ID != s[3] || !tk.Primary {
		t.Errorf("after confirmation Select gave %X", tk.ID)
	}
}

func TestRetrySchedule(t *testing.T) {
	r := seeded(3)
	for _, tc := range []struct {
		base, cap time.Duration
	}{{primaryRetryBase, primaryRetryCap}, {nonprimaryRetryBase, nonprimaryRetryCap}} {
		var d time.Duration
		capped := false
		for k := 0; k < 60; k++ {
			next := nextDelay(d, tc.base, tc.cap, r)
			hi := max(tc.base+time.Second, 3*d)
			if next < tc.base || next > tc.cap || (next >= hi && next != tc.cap) || next%time.Second != 0 {
				t.Fatalf("delay %d after %v: %v (base %v, cap %v)", k, d, next, tc.base, tc.cap)
			}
			if k == 0 && next != tc.base {
				t.Errorf("first delay %v, want %v", next, tc.base)
			}
			capped = capped || next == tc.cap
			d = next
		}
		if !capped {
			t.Errorf("base %v: never reached the cap in 60 failures", tc.base)
		}
	}
	// Through the Manager: a failed primary is retried after 30 s.
	nd := tiny(t, 30)
	m := New(Config{Params: oneUsable()})
	m.SetNetDir(nd, t0, r)
	first := mustSelect(t, m, Usage{}, t0, r)
	m.Failed(first, t0, r)
	if tk := mustSelect(t, m, Usage{}, t0.Add(29*time.Second), r); tk.ID == first.ID {
		t.Error("retried before 30 s")
	}
	if tk := mustSelect(t, m, Usage{}, t0.Add(30*time.Second), r); tk.ID != first.ID {
		t.Error("not retried after 30 s")
	}
	// All guards unreachable: all are marked worth trying again.
	for range 100 {
		tk, err := m.Select(Usage{}, t0.Add(40*time.Second), r)
		if err != nil {
			t.Fatal(err)
		}
		m.Failed(tk, t0.Add(40*time.Second), r)
	}
	if _, err := m.Select(Usage{}, t0.Add(41*time.Second), r); err != nil {
		t.Errorf("exhausted sample: %v", err)
	}
}

func TestRestrictions(t *testing.T) {
	// Guards 0-4 on distinct /16s; relay 5 (an exit) is in guard 0's
	// family (mutually) and in guard 1's /16.
	rs := []netdirtest.Relay{}
	for k := 0; k < 5; k++ {
		rs = append(rs, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: guardFlags, Bandwidth: 1000})
	}
	rs[0].Family = []int{0, 5}
	rs = append(rs, netdirtest.Relay{Addr: "10.1.9.9:9001", Flags: netdoc.FlagExit | netdoc.FlagFast, Bandwidth: 1000, Policy: "accept 80", Family: []int{0, 5}})
	nd := tinyFrom(t, rs)
	p := DefaultParams()
	p.NUsablePrimary, p.NPrimary = 5, 5
	m := New(Config{Params: &p})
	r := seeded(4)
	m.SetNetDir(nd, t0, r)
	exit := netdirtest.ID(5)
	for range 200 {
		tk := mustSelect(t, m, Usage{Exclude: [][20]byte{exit}}, t0, r)
		if tk.ID == netdirtest.ID(0) || tk.ID == netdirtest.ID(1) {
			t.Fatalf("guard %X shares a family or subnet with the exit", tk.ID)
		}
	}
	// On a test network the subnet rule is off.
	m2 := New(Config{Params: &p, AllowSameSubnet: true})
	m2.SetNetDir(nd, t0, r)
	got := map[[20]byte]bool{}
	for range 300 {
		got[mustSelect(t, m2, Usage{Exclude: [][20]byte{exit}}, t0, r).ID] = true
	}
	if !got[netdirtest.ID(1)] || got[netdirtest.ID(0)] {
		t.Errorf("AllowSameSubnet: chose %v", got)
	}
	// A configuration filter removes guards from the filtered set.
	m3 := New(Config{Params: &p, Filter: func(nd *netdir.NetDir, i netdir.RelayIndex) bool { return nd.ID(i) != netdirtest.ID(2) }})
	m3.SetNetDir(nd, t0, r)
	for _, g := range m3.Primary() {
		if g.ID == netdirtest.ID(2) {
			t.Error("filtered guard is primary")
		}
	}
	if len(m3.Sampled()) != 5 {
		t.Errorf("sampling should ignore the filter: %d sampled", len(m3.Sampled()))
	}
}

func TestMissingDescriptors(t *testing.T) {
	rs := []netdirtest.Relay{}
	for k := 0; k < 3; k++ {
		rs = append(rs, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: guardFlags, Bandwidth: 1000, NoMicrodesc: true})
	}
	nd := tinyFrom(t, rs)
	m := New(Config{Params: oneUsable()})
	r := seeded(5)
	m.SetNetDir(nd, t0, r)
	_, err := m.Select(Usage{}, t0, r)
	var me *MissingDescriptorsError
	if !errors.Is(err, ErrMissingDescriptors) || !errors.As(err, &me) || len(me.Digests) != 1 ||
		me.Digests[0] != nd.MicrodescDigest(m.Primary()[0].Relay) {
		t.Fatalf("circuit without descriptors: %v", err)
	}
	if tk, err := m.Select(Usage{Dir: true}, t0, r); err != nil || !tk.Primary {
		t.Errorf("directory request: %+v %v", tk, err)
	}
}

func TestConsensusChangesAndExpiry(t *testing.T) {
	nd := tiny(t, 40)
	r := seeded(6)
	m := New(Config{Params: oneUsable()})
	m.SetNetDir(nd, t0, r)
	s := ids(m.Sampled())
	// Guard s[0] loses its Guard flag.
	var rs []netdirtest.Relay
	for k := 0; k < 40; k++ {
		f := guardFlags
		if netdirtest.ID(k) == s[0] {
			f = netdoc.FlagFast
		}
		rs = append(rs, netdirtest.Relay{Addr: fmt.Sprintf("10.%d.0.1:9001", k), Flags: f, Bandwidth: 1000})
	}
	nd2 := tinyFrom(t, rs)
	t1 := t0.Add(time.Hour)
	m.SetNetDir(nd2, t1, r)
	g := m.Sampled()[0]
	if g.ID != s[0] || g.Listed || g.UnlistedSince.After(t1) || g.UnlistedSince.Before(t1.Add(-4*day)) || g.Primary {
		t.Fatalf("unlisted guard: %+v", g)
	}
	if p := ids(m.Primary()); !slices.Equal(p, s[1:4]) {
		t.Errorf("primary %X, want %X", p, s[1:4])
	}
	// Listed again before the deadline: back, and primary again.
	m.SetNetDir(nd, t1.Add(time.Hour), r)
	if g := m.Sampled()[0]; !g.Listed || !g.UnlistedSince.IsZero() {
		t.Errorf("relisted: %+v", g)
	}
	m.SetNetDir(nd2, t1.Add(2*time.Hour), r)
	// Unlisted for more than 20 days: dropped.
	m.SetNetDir(nd2, t1.Add(25*day), r)
	if slices.Contains(ids(m.Sampled()), s[0]) {
		t.Error("guard unlisted for 25 days still sampled")
	}
	// Confirm one guard at day 100; at day 121 the unconfirmed ones of
	// day 0 expire, the confirmed one stays until 60 days after.
	tk := mustSelect(t, m, Usage{}, t0.Add(100*day), r)
	m.Succeeded(tk, t0.Add(100*day), r)
	day121 := t0.Add(121 * day)
	m.SetNetDir(nd2, day121, r)
	// The 40-guard network refills the sample from the same relays, so
	// look at the entries: of those sampled on day 0, only the confirmed
	// one may remain.
	kept := false
	for _, g := range m.Sampled() {
		if g.ID == tk.ID && !g.ConfirmedOn.IsZero() {
			kept = true
			continue
		}
		if !g.AddedOn.After(t0) {
			t.Errorf("guard %X sampled on %v survives day 121", g.ID, g.AddedOn)
		}
	}
	if !kept || len(m.Sampled()) < 20 {
		t.Errorf("confirmed guard dropped (%v), or sample not refilled (%d)", !kept, len(m.Sampled()))
	}
	day171 := t0.Add(171 * day)
	m.SetNetDir(nd2, day171, r)
	for _, g := range m.Sampled() {
		if !g.AddedOn.After(day171.Add(-120*day)) && (g.ConfirmedOn.IsZero() || !g.ConfirmedOn.After(day171.Add(-60*day))) {
			t.Errorf("guard %X (sampled %v, confirmed %v) kept past its lifetime", g.ID, g.AddedOn, g.ConfirmedOn)
		}
	}
	if len(m.Confirmed()) != 0 {
		t.Errorf("%d confirmed guards at day 171", len(m.Confirmed()))
	}
}

// sameState compares everything persisted.
func sameState(t *testing.T, a, b *Manager) {
	t.Helper()
	sa, sb := a.Sampled(), b.Sampled()
	if len(sa) != len(sb) {
		t.Fatalf("sampled %d vs %d", len(sa), len(sb))
	}
	for k := range sa {
		x, y := sa[k], sb[k]
		if x.ID != y.ID || !x.AddedOn.Equal(y.AddedOn) || x.Listed != y.Listed || !x.UnlistedSince.Equal(y.UnlistedSince) || !x.ConfirmedOn.Equal(y.ConfirmedOn) {
			t.Fatalf("guard %d: %+v vs %+v", k, x, y)
		}
	}
	if !slices.Equal(ids(a.Confirmed()), ids(b.Confirmed())) {
		t.Fatalf("confirmed %X vs %X", ids(a.Confirmed()), ids(b.Confirmed()))
	}
	if !slices.Equal(ids(a.Primary()), ids(b.Primary())) {
		t.Fatalf("primary %X vs %X", ids(a.Primary()), ids(b.Primary()))
	}
}

func TestPersistence(t *testing.T) {
	nd := tiny(t, 40)
	r := seeded(7)
	m := New(Config{Params: oneUsable()})
	m.SetNetDir(nd, t0, r)
	// Confirm guards out of sample order: fail the primaries, then
	// succeed with two exploratory guards.
	for k := 0; k < 3; k++ {
		m.Failed(mustSelect(t, m, Usage{}, t0, r), t0, r)
	}
	a, b := mustSelect(t, m, Usage{}, t0, r), mustSelect(t, m, Usage{}, t0, r)
	m.Succeeded(b, t0.Add(time.Second), r)
	m.Succeeded(a, t0.Add(2*time.Second), r)
	state, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A restart: a new Manager from the bytes, then the directory.
	m2 := New(Config{Params: oneUsable()})
	if err := m2.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	m2.SetNetDir(nd, t0.Add(time.Hour), r)
	sameState(t, m, m2)
	if c := ids(m2.Confirmed()); !slices.Equal(c, [][20]byte{b.ID, a.ID}) {
		t.Errorf("confirmed order %X", c)
	}
	// Reachability is not persisted: the first primary is tried first.
	if tk := mustSelect(t, m2, Usage{}, t0.Add(time.Hour), r); tk.ID != b.ID || !tk.Primary {
		t.Errorf("after restart Select gave %X", tk.ID)
	}
	again, _ := m2.MarshalBinary()
	if !bytes.Equal(state, again) {
		t.Errorf("state changed by a load/save cycle:\n%s\n%s", state, again)
	}
	// Unknown fields survive.
	withExtra := strings.Replace(string(state), " listed=1", " listed=1 pb_use_attempts=3.000000 future=x", 1)
	m3 := New(Config{})
	if err := m3.UnmarshalBinary([]byte(withExtra)); err != nil {
		t.Fatal(err)
	}
	out, _ := m3.MarshalBinary()
	if !strings.Contains(string(out), " pb_use_attempts=3.000000 future=x") {
		t.Errorf("unknown fields lost:\n%s", out)
	}
}

func TestBadState(t *testing.T) {
	good := "onionlite-guards 1\nguard rsa_id=0000000000000000000000000000000000000001 sampled_on=2026-06-01T00:00:00 listed=1\n"
	m := New(Config{})
	if err := m.UnmarshalBinary([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"empty":               "",
		"wrong header":        "onionlite-guards 2\n",
		"unknown line":        "onionlite-guards 1\nbridge x=1\n",
		"bad hex":             strings.Replace(good, "rsa_id=00", "rsa_id=zz", 1),
		"short id":            strings.Replace(good, "rsa_id=00", "rsa_id=", 1),
		"bad date":            strings.Replace(good, "2026-06-01T00:00:00", "yesterday", 1),
		"bad listed":          strings.Replace(good, "listed=1", "listed=yes", 1),
		"no listed":           strings.Replace(good, " listed=1", "", 1),
		"not K=V":             strings.Replace(good, "listed=1", "listed", 1),
		"repeated field":      strings.Replace(good, "listed=1", "listed=1 listed=0", 1),
		"duplicate guard":     good + strings.SplitAfter(good, "\n")[1],
		"confirmed_idx alone": strings.Replace(good, "listed=1", "listed=1 confirmed_idx=0", 1),
		"negative idx":        strings.Replace(good, "listed=1", "listed=1 confirmed_on=2026-06-01T00:00:00 confirmed_idx=-1", 1),
		"idx twice": good + strings.Replace(strings.Replace(strings.SplitAfter(good, "\n")[1], "01 ", "02 ", 1), "listed=1", "listed=1 confirmed_on=2026-06-01T00:00:00 confirmed_idx=0", 1) +
			strings.Replace(strings.Replace(strings.SplitAfter(good, "\n")[1], "01 ", "03 ", 1), "listed=1", "listed=1 confirmed_on=2026-06-01T00:00:00 confirmed_idx=0", 1),
	} {
		before := m.Sampled()
		if err := m.UnmarshalBinary([]byte(s)); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: %v", name, err)
		}
		if len(m.Sampled()) != len(before) {
			t.Errorf("%s: failed load changed the state", name)
		}
	}
}

// real2026 is the real 2026 consensus with SYNTHETIC microdescriptors
// for the relays whose real ones are missing (see netdirtest).
func real2026(t testing.TB) *netdir.NetDir {
	read := func(rel string) []byte {
		b, err := os.ReadFile(realnet.Path(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	u, err := netdoc.ParseConsensus(read("2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := netdoc.ParseAuthCerts(read("2026-06-27-latest-consensus/cached-certs"))
	if err != nil {
		t.Fatal(err)
	}
	var acs []*netdoc.AuthCert
	for _, c := range certs {
		if ac, err := c.Check(t0); err == nil {
			acs = append(acs, ac)
		}
	}
	c, err := u.Check(t0, netdoc.DefaultAuthorities(), acs)
	if err != nil {
		t.Fatal(err)
	}
	var real []netdoc.Microdesc
	for _, f := range []string{"2026-06-27-latest-consensus/cached-microdescs.new", "2025-05-17-modern-md-sample/cached-microdescs.new"} {
		mds, err := netdoc.ParseMicrodescs(read(f))
		if err != nil {
			t.Fatal(err)
		}
		real = append(real, mds...)
	}
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.AddMicrodescs(netdirtest.Microdescs(c, real, 7))
	nd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return nd
}

// TestRealNetworkRestart: on the 9,609-relay consensus, a sampled and
// partly confirmed guard set survives a restart, and the consensus
// parameters are used (two usable primaries in 2026).
func TestRealNetworkRestart(t *testing.T) {
	nd := real2026(t)
	r := seeded(8)
	m := New(Config{})
	m.SetNetDir(nd, t0, r)
	if p := m.Params(); p.NUsablePrimary != 2 || p.NUsablePrimaryDir != 2 || p.MaxSampleSize != 60 {
		t.Errorf("params from the consensus: %+v", p)
	}
	if n := len(m.Sampled()); n != 20 {
		t.Errorf("sampled %d", n)
	}
	for _, g := range m.Sampled() {
		if !isGuard(nd, g.Relay) {
			t.Errorf("sampled %X is not in GUARDS", g.ID)
		}
	}
	seen := map[[20]byte]bool{}
	for range 200 {
		tk := mustSelect(t, m, Usage{}, t0, r)
		seen[tk.ID] = true
		if tk.Relay != m.Primary()[0].Relay && tk.Relay != m.Primary()[1].Relay {
			t.Fatalf("Select gave a guard outside the first two primaries")
		}
	}
	if len(seen) != 2 {
		t.Errorf("two usable primaries, %d used", len(seen))
	}
	m.Succeeded(mustSelect(t, m, Usage{}, t0, r), t0, r)
	state, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m2 := New(Config{})
	if err := m2.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	m2.SetNetDir(nd, t0.Add(time.Minute), r)
	sameState(t, m, m2)
}

// TestSampleIsWeighted: guards enter the sample with probability
// proportional to their guard weights (chi-square at p = 0.001).
func TestSampleIsWeighted(t *testing.T) {
	nd := real2026(t)
	r := seeded(9)
	in := make([]bool, nd.Len())
	counts := make([]int, nd.Len())
	const draws = 8000
	for range draws {
		i, ok := pickForSample(nd, in, r)
		if !ok {
			t.Fatal("no guard")
		}
		counts[i]++
	}
	var total float64
	w := make([]float64, nd.Len())
	for i := range w {
		if isGuard(nd, netdir.RelayIndex(i)) {
			w[i] = float64(nd.Weight(netdir.RoleGuard, netdir.RelayIndex(i)))
			total += w[i]
		}
		if w[i] == 0 && counts[i] > 0 {
			t.Fatalf("relay %d of weight 0 sampled", i)
		}
	}
	idx := []int{}
	for i := range w {
		if w[i] > 0 {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return w[idx[a]] > w[idx[b]] })
	var stat, o, e float64
	bins := 0
	for k, i := range idx {
		o += float64(counts[i])
		e += draws * w[i] / total
		if e >= 20 || k == len(idx)-1 {
			stat += (o - e) * (o - e) / e
			bins++
			o, e = 0, 0
		}
	}
	df := float64(bins - 1)
	crit := df * math.Pow(1-2/(9*df)+3.090232*math.Sqrt(2/(9*df)), 3)
	t.Logf("sampling: chi2 %.1f, df %.0f, critical %.1f", stat, df, crit)
	if df < 50 || stat > crit {
		t.Errorf("chi2 %.1f > %.1f (df %.0f)", stat, crit, df)
	}
}
