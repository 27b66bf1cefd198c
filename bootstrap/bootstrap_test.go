package bootstrap

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/dirclient"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
	"github.com/onionlite/onionlite/transport"
)

// The bootstrap tests vote every 20 s so that "a newer consensus exists"
// and "two consensus periods" take seconds, not minutes.
func TestMain(m *testing.M) { testnet.Main(m, testnet.Config{Interval: 20 * time.Second}) }

type rig struct {
	t     *testing.T
	net   *testnet.Network
	auths []netdoc.Authority
}

func newRig(t *testing.T) *rig {
	t.Helper()
	n := testnet.Shared(t)
	auths, err := netdoc.ParseAuthorityFile(strings.Join(n.AuthorityLines(), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, net: n, auths: auths}
}

type opts struct {
	clock  clock.Clock
	dialer transport.Dialer
	auths  []netdoc.Authority
	onDir  func(*netdir.NetDir)
	sched  Schedule
}

func (r *rig) boot(store dircache.Store, o opts) (*Bootstrapper, *chanmgr.Manager) {
	r.t.Helper()
	cm := chanmgr.New(&channel.Config{Clock: o.clock, Dialer: o.dialer})
	auths := o.auths
	if auths == nil {
		auths = r.auths
	}
	b, err := New(Config{
		Authorities: auths, Store: store, Channels: cm, Clock: o.clock,
		StallTimeout: 5 * time.Second, OnNetDir: o.onDir, Schedule: o.sched,
		Logf: r.t.Logf,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { b.Close(); cm.Close() })
	return b, cm
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, dir string) *dircache.DB {
	t.Helper()
	db, err := dircache.Open(dir, dircache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestColdWarmStale is the bootstrap acceptance path against real tor: a
// cold start fetches everything and stores a consensus that verifies; a
// warm start within its freshness reads no directory bytes at all; a
// restart once the cached consensus has expired gets a diff.
func TestColdWarmStale(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	dir := t.TempDir()

	// Cold.
	db := openStore(t, dir)
	b, cm := r.boot(db, opts{})
	var phases []Phase
	var mu sync.Mutex
	b.cfg.OnProgress = func(p Progress) {
		mu.Lock()
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		mu.Unlock()
	}
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("cold bootstrap: %v", err)
	}
	st := b.Stats()
	nd := b.NetDir()
	nodes := len(r.net.Nodes())
	if st.ConsensusSource != SourceFull || nd.Len() != nodes || nd.NumMicrodescs() != nodes || st.MicrodescsFetched != nodes {
		t.Fatalf("cold: source %q, %d relays, %d mds, %d fetched; want full, %d", st.ConsensusSource, nd.Len(), nd.NumMicrodescs(), st.MicrodescsFetched, nodes)
	}
	if st.DirBytesByKind["consensus"] == 0 || st.DirBytesByKind["microdescriptors"] == 0 || st.DirBytesByKind["certificates"] == 0 {
		t.Fatalf("cold: directory bytes by kind %v", st.DirBytesByKind)
	}
	if p := b.Progress(); p.Phase != PhaseReady || p.Percent != 100 {
		t.Fatalf("progress at the end: %+v", p)
	}
	mu.Lock()
	if phases[len(phases)-1] != PhaseReady || !containsPhase(phases, PhaseConsensus) || !containsPhase(phases, PhaseMicrodescs) {
		t.Fatalf("phases reported: %v", phases)
	}
	mu.Unlock()
	// The stored consensus verifies by itself.
	sc, err := db.Consensus("microdesc")
	if err != nil {
		t.Fatal(err)
	}
	certs, _, _ := db.Certs()
	var acs []*netdoc.AuthCert
	for _, c := range certs {
		us, _ := netdoc.ParseAuthCerts(c.Text)
		for _, u := range us {
			if ac, err := u.Check(time.Now()); err == nil {
				acs = append(acs, ac)
			}
		}
	}
	u, err := netdoc.ParseConsensus(sc.Text)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(time.Now(), r.auths, acs); err != nil {
		t.Fatalf("stored consensus does not verify: %v", err)
	}
	b.Close()
	cm.Close()
	db.Close()

	// Warm, inside the consensus's freshness (the clock is set there, so
	// the test does not race the 20 s voting interval).
	db = openStore(t, dir)
	b, cm = r.boot(db, opts{clock: clock.At(nd.ValidAfter().Add(time.Second))})
	if err := b.Bootstrap(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("warm bootstrap: %v", err)
	}
	st = b.Stats()
	if st.DirBytes != 0 || st.ConsensusSource != SourceCache || st.MicrodescsLoaded != nodes {
		t.Fatalf("warm: %d directory bytes, source %q, %d mds loaded", st.DirBytes, st.ConsensusSource, st.MicrodescsLoaded)
	}
	if cs := cm.Stats(); cs.Opened != 0 {
		t.Fatalf("warm: %d channels opened", cs.Opened)
	}
	b.Close()
	cm.Close()
	db.Close()

	// Stale: wait until the network has made a newer consensus, then
	// restart with a clock just past the cached one's valid-until.
	waitUntil(t, nd.FreshUntil().Add(3*time.Second))
	db = openStore(t, dir)
	defer db.Close()
	var views []*netdir.NetDir
	b, cm = r.boot(db, opts{clock: clock.At(nd.ValidUntil().Add(time.Second)), onDir: func(v *netdir.NetDir) {
		mu.Lock()
		views = append(views, v)
		mu.Unlock()
	}})
	// Directory answers wait until release: the view seen below is the
	// one published at ready, whatever the speed of the network.
	release := make(chan struct{})
	b.fetch.hook = func(_ docKind, _ *source, resp *dirclient.Response, err error) (*dirclient.Response, error) {
		<-release
		return resp, err
	}
	if err := b.Bootstrap(ctxFor(t, time.Minute)); err != nil {
		close(release)
		t.Fatalf("stale bootstrap: %v", err)
	}
	// Ready at once from the expired (reasonably live) consensus and the
	// stored microdescriptors; the newer consensus comes after.
	st = b.Stats()
	if cur := b.NetDir(); st.DirBytes != 0 || cur.ValidAfter() != nd.ValidAfter() || cur.NumMicrodescs() != nodes {
		close(release)
		t.Fatalf("stale, at ready: %d directory bytes, view of %v with %d mds; want 0 bytes, the cached view (%v, %d mds)",
			st.DirBytes, cur.ValidAfter(), cur.NumMicrodescs(), nd.ValidAfter(), nodes)
	}
	refreshed := make(chan error, 1)
	go func() { refreshed <- b.Refresh(ctxFor(t, time.Minute)) }()
	time.Sleep(200 * time.Millisecond) // Refresh takes the expired view as its base and waits for the lock
	close(release)
	select {
	case <-b.Complete():
	case <-ctxFor(t, time.Minute).Done():
		t.Fatal("stale: the newer consensus did not arrive in the background")
	}
	mu.Lock()
	if len(views) != 2 || views[0].ValidAfter() != nd.ValidAfter() || views[1] != b.NetDir() {
		t.Fatalf("stale: %d views published; want the cached one, then the newer one", len(views))
	}
	mu.Unlock()
	st = b.Stats()
	if st.ConsensusSource != SourceDiff || st.DiffsApplied != 1 || st.DirBytesByKind["consensus"] != 0 || st.DirBytesByKind["consensus_diff"] < 500 {
		t.Fatalf("stale: source %q, %d diffs, bytes %v", st.ConsensusSource, st.DiffsApplied, st.DirBytesByKind)
	}
	if !b.NetDir().ValidAfter().After(nd.ValidAfter()) {
		t.Fatal("stale: consensus did not move forward")
	}
	// A Refresh made while the background fetch ran (Run makes one at
	// once: the view it sees has expired) waited for the lock, found the
	// newer view and asked nobody for another (without that check it
	// made a second refresh, or failed when no source had a newer one).
	if err := <-refreshed; err != nil {
		t.Fatalf("Refresh during the background fetch: %v", err)
	}
	if st := b.Stats(); st.Refreshes != 1 || st.DiffsApplied != 1 {
		t.Fatalf("stale: %d refreshes, %d diffs; want the background's one", st.Refreshes, st.DiffsApplied)
	}
}

// TestStaleNotEnoughFetches: against the real test network, a restart
// whose cached consensus has expired but whose store kept too few
// microdescriptors for the expired view to be enough (one here) is not
// ready from the store: it publishes no view of the expired consensus,
// fetches the newer consensus as a diff from the stored one, fetches only
// the microdescriptors it lacks, and counts the stored one it used once.
func TestStaleNotEnoughFetches(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	db := openStore(t, t.TempDir())
	defer db.Close()
	b, cm := r.boot(db, opts{})
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("cold bootstrap: %v", err)
	}
	nd := b.NetDir()
	nodes := len(r.net.Nodes())
	if nd.NumMicrodescs() != nodes {
		t.Fatalf("cold: %d microdescriptors; want %d", nd.NumMicrodescs(), nodes)
	}
	b.Close()
	cm.Close()
	kept := nd.MicrodescDigest(0)
	if n, err := db.PruneMicrodescs(func(d [32]byte) bool { return d == kept }, time.Time{}); err != nil || n != nodes-1 {
		t.Fatalf("pruning all but one microdescriptor: %d removed, %v", n, err)
	}

	waitUntil(t, nd.FreshUntil().Add(3*time.Second))
	var mu sync.Mutex
	var views []*netdir.NetDir
	b, _ = r.boot(db, opts{clock: clock.At(nd.ValidUntil().Add(time.Second)), onDir: func(v *netdir.NetDir) {
		mu.Lock()
		views = append(views, v)
		mu.Unlock()
	}})
	if err := b.Bootstrap(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("stale bootstrap: %v", err)
	}
	select {
	case <-b.Complete():
	case <-ctxFor(t, time.Minute).Done():
		t.Fatal("the remaining microdescriptors did not arrive")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(views) == 0 {
		t.Fatal("no view published")
	}
	for _, v := range views {
		if !v.ValidAfter().After(nd.ValidAfter()) {
			t.Fatalf("a view of the expired consensus (%v) was published with one microdescriptor of %d stored", v.ValidAfter(), nodes)
		}
	}
	cur := b.NetDir()
	if cur != views[len(views)-1] || cur.Len() != nodes || cur.NumMicrodescs() != nodes {
		t.Fatalf("final view: %d relays, %d microdescriptors; want %d of each, published", cur.Len(), cur.NumMicrodescs(), nodes)
	}
	st := b.Stats()
	if st.ConsensusSource != SourceDiff || st.DiffsApplied != 1 || st.DirBytesByKind["consensus"] != 0 {
		t.Fatalf("consensus: source %q, %d diffs, bytes %v; want a diff from the stored one", st.ConsensusSource, st.DiffsApplied, st.DirBytesByKind)
	}
	// The stored microdescriptor was read twice (for the expired view,
	// then for the newer one) and counts once.
	if st.MicrodescsLoaded != 1 || st.MicrodescsFetched != nodes-1 {
		t.Fatalf("microdescriptors: %d loaded, %d fetched; want 1 and %d", st.MicrodescsLoaded, st.MicrodescsFetched, nodes-1)
	}
	want := make([][32]byte, cur.Len())
	for i := range want {
		want[i] = cur.MicrodescDigest(netdir.RelayIndex(i))
	}
	if missing, err := db.MissingMicrodescs(want); err != nil || len(missing) != 0 {
		t.Fatalf("store after the bootstrap: %d microdescriptors missing, %v", len(missing), err)
	}
}

// TestEarlyReady: against the real test network, microdescriptors one per
// request so that the order shows. The directory is ready once the view is
// Enough with the primary guards' microdescriptors in it (here the relay
// bandwidth order would fetch last), before every microdescriptor has
// arrived; the rest arrive in the background, the whole view is published,
// the store holds them all, and Complete closes.
func TestEarlyReady(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	db := openStore(t, t.TempDir())
	defer db.Close()
	var (
		mu    sync.Mutex
		views []*netdir.NetDir
	)
	b, _ := r.boot(db, opts{onDir: func(nd *netdir.NetDir) {
		mu.Lock()
		views = append(views, nd)
		mu.Unlock()
	}})
	b.mdPerRequest = 1
	var lastID [20]byte
	b.cfg.PrimaryGuards = func(nd *netdir.NetDir) []netdir.Relay {
		m := nd.MissingMicrodescs()
		for i := range nd.Len() {
			if rl := nd.Relay(netdir.RelayIndex(i)); len(m) > 0 && rl.MicrodescDigest == m[len(m)-1] {
				lastID = rl.ID
				return []netdir.Relay{rl}
			}
		}
		return nil
	}
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	nodes := len(r.net.Nodes())
	nd := b.NetDir()
	di := nd.DirInfo()
	t.Logf("ready with %d of %d microdescriptors: %+v", nd.NumMicrodescs(), nodes, di)
	if !di.Enough(0) {
		t.Fatalf("ready with a view that is not enough: %+v", di)
	}
	if i, ok := nd.ByID(lastID); !ok || !nd.Relay(i).Flags.Has(netdir.FlagHasMicrodesc) {
		t.Fatal("ready without the primary guard's microdescriptor")
	}
	if nd.NumMicrodescs() >= nodes {
		t.Fatalf("ready only with all %d microdescriptors", nodes)
	}
	if err := b.Bootstrap(ctxFor(t, time.Second)); err != nil {
		t.Fatalf("Bootstrap after ready, while the rest downloads: %v", err)
	}
	select {
	case <-b.Complete():
	case <-time.After(time.Minute):
		t.Fatal("Complete did not close")
	}
	final := b.NetDir()
	if final.NumMicrodescs() != nodes || b.Stats().MicrodescsFetched != nodes {
		t.Fatalf("complete: %d microdescriptors in the view, %d fetched; want %d", final.NumMicrodescs(), b.Stats().MicrodescsFetched, nodes)
	}
	mu.Lock()
	if len(views) != 2 || views[0] != nd || views[1] != final {
		t.Errorf("%d views published, want the snapshot then the whole view", len(views))
	}
	mu.Unlock()
	stored := 0
	if _, err := db.ForEachMicrodesc(func([32]byte, []byte) error { stored++; return nil }); err != nil || stored != nodes {
		t.Fatalf("store holds %d microdescriptors (%v), want %d", stored, err, nodes)
	}
	// The background download released the bootstrap lock.
	if err := b.lockBoot(ctxFor(t, time.Second), false); err != nil {
		t.Fatalf("bootstrap lock after the background download: %v", err)
	}
	b.unlockBoot()

	// Close during the background download ends it (CheckGoroutines
	// checks nothing is left running).
	b2, _ := r.boot(dircache.NewMemStore(), opts{})
	b2.mdPerRequest = 1
	b2.cfg.PrimaryGuards = b.cfg.PrimaryGuards
	// Answers that arrive after ready are held a while, so that Close
	// meets the background download still running.
	b2.fetch.hook = func(kind docKind, _ *source, resp *dirclient.Response, err error) (*dirclient.Response, error) {
		select {
		case <-b2.Ready():
			if kind == kindMicrodescs {
				time.Sleep(2 * time.Second)
			}
		default:
		}
		return resp, err
	}
	if err := b2.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b2.Complete():
		t.Fatal("the background download ended before Close: nothing tested")
	default:
	}
	b2.Close()
	select {
	case <-b2.Complete():
	default:
		t.Fatal("Close returned with the background download still running")
	}
}

func containsPhase(ps []Phase, p Phase) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, when time.Time) {
	if d := time.Until(when); d > 0 {
		t.Logf("waiting %v for the network's next consensus", d.Round(time.Second))
		time.Sleep(d)
	}
}

// TestRefreshAcrossPeriods leaves a client running across consensus
// periods: each new consensus arrives as a diff, and only microdescriptors
// the previous view lacked are fetched.
func TestRefreshAcrossPeriods(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	var mu sync.Mutex
	var views []*netdir.NetDir
	store := &markCount{Store: dircache.NewMemStore()}
	b, _ := r.boot(store, opts{onDir: func(nd *netdir.NetDir) {
		mu.Lock()
		views = append(views, nd)
		mu.Unlock()
	}})
	ctx := ctxFor(t, 3*time.Minute)
	if err := b.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	base := b.Stats()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	// A refresh may find no newer consensus (the caches it asks have not
	// fetched the network's newest yet); wait for two that applied one.
	for b.Stats().DiffsApplied < 2 {
		select {
		case <-ctx.Done():
			st := b.Stats()
			t.Fatalf("only %d diffs in %d refreshes before the deadline", st.DiffsApplied, st.Refreshes)
		case <-time.After(time.Second):
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	st := b.Stats()
	if st.DiffsApplied < 2 || st.ConsensusSource != SourceDiff {
		t.Fatalf("refreshes: %d diffs applied, source %q", st.DiffsApplied, st.ConsensusSource)
	}
	// Every refresh asked for a diff; a whole consensus may only have
	// come as a source's answer to such a request (an authority that has
	// not computed its diffs for the new consensus yet serves it whole),
	// never because the client asked for one.
	if st.DirBytesByKind["consensus"] != base.DirBytesByKind["consensus"] && st.DiffsDeclined == base.DiffsDeclined {
		t.Fatalf("a full consensus was fetched during refresh: %v then %v", base.DirBytesByKind, st.DirBytesByKind)
	}
	if st.DiffsDeclined > base.DiffsDeclined {
		t.Logf("%d diff requests were answered with the whole consensus", st.DiffsDeclined-base.DiffsDeclined)
	}
	// Microdescriptors fetched after the bootstrap are exactly those the
	// previous view did not have.
	mu.Lock()
	defer mu.Unlock()
	newMDs := 0
	for i := 1; i < len(views); i++ {
		have := map[[32]byte]bool{}
		for j := 0; j < views[i-1].Len(); j++ {
			have[views[i-1].MicrodescDigest(netdir.RelayIndex(j))] = true
		}
		for j := 0; j < views[i].Len(); j++ {
			if !have[views[i].MicrodescDigest(netdir.RelayIndex(j))] {
				newMDs++
			}
		}
	}
	if got := st.MicrodescsFetched - base.MicrodescsFetched; got != newMDs {
		t.Fatalf("refreshes fetched %d microdescriptors; the consensuses added %d", got, newMDs)
	}
	for i := 1; i < len(views); i++ {
		if !views[i].ValidAfter().After(views[i-1].ValidAfter()) {
			t.Fatalf("view %d does not move forward", i)
		}
	}
	// The listing times were written once, after the cold bootstrap;
	// the refreshes, minutes apart, rewrote none, and pruned nothing
	// the newest view lists.
	last := views[len(views)-1]
	if got := store.calls(); len(got) != 1 || got[0] != views[0].Len() {
		t.Fatalf("MarkListed calls %v; want one, of the first view's %d digests", got, views[0].Len())
	}
	want := make([][32]byte, last.Len())
	for i := range want {
		want[i] = last.MicrodescDigest(netdir.RelayIndex(i))
	}
	if missing, err := store.MissingMicrodescs(want); err != nil || len(missing) != 0 {
		t.Fatalf("%d of the newest view's microdescriptors not stored, %v", len(missing), err)
	}
}

// TestWrongIdentityRejected: authorities whose ORPort answers with another
// relay's identity are refused; with every authority wrong, the bootstrap
// fails with the identity error.
func TestWrongIdentityRejected(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	bad := make([]netdoc.Authority, len(r.auths))
	copy(bad, r.auths)
	for i := range bad {
		bad[i].Fingerprint = r.auths[(i+1)%len(bad)].Fingerprint
	}
	b, _ := r.boot(dircache.NewMemStore(), opts{auths: bad})
	err := b.Bootstrap(ctxFor(t, time.Minute))
	if !errors.Is(err, channel.ErrIdentity) {
		t.Fatalf("all identities wrong: err = %v, want one wrapping channel.ErrIdentity", err)
	}
	// One right authority among wrong ones is enough.
	mixed := make([]netdoc.Authority, len(r.auths))
	copy(mixed, bad)
	mixed[0] = r.auths[0]
	b, _ = r.boot(dircache.NewMemStore(), opts{auths: mixed})
	if err := b.Bootstrap(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("one good authority: %v", err)
	}
}

// TestBadSourcesAbandoned: answers replaced by garbage, a 404 and a stall
// make the bootstrap move to other sources and still finish.
func TestBadSourcesAbandoned(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	b, _ := r.boot(dircache.NewMemStore(), opts{})
	var mu sync.Mutex
	seen := map[docKind]int{}
	used := map[string]bool{}
	b.fetch.hook = func(kind docKind, src *source, resp *dirclient.Response, err error) (*dirclient.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		seen[kind]++
		used[src.name] = true
		switch {
		case kind == kindConsensus && seen[kind] == 1:
			return &dirclient.Response{Code: 200, Body: []byte("network-status-version 3 microdesc\ngarbage\n")}, nil
		case kind == kindConsensus && seen[kind] == 2:
			return &dirclient.Response{Code: 404}, &dirclient.StatusError{Code: 404, Reason: "Not found"}
		case kind == kindMicrodescs && seen[kind] == 1:
			return nil, errors.New("injected stall: no data")
		case kind == kindMicrodescs && seen[kind] == 2:
			return &dirclient.Response{Code: 200, Body: []byte("onion-key\nnot a key\n")}, nil
		}
		return resp, err
	}
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatalf("bootstrap with bad sources: %v", err)
	}
	st := b.Stats()
	mu.Lock()
	defer mu.Unlock()
	if seen[kindConsensus] < 3 || seen[kindMicrodescs] < 3 || st.RequestFailures < 4 {
		t.Fatalf("requests %v, failures %d: the faults were not all exercised", seen, st.RequestFailures)
	}
	if len(used) < 3 {
		t.Fatalf("only %d sources used: bad ones were not abandoned", len(used))
	}
	if nd := b.NetDir(); nd.NumMicrodescs() != nd.Len() {
		t.Fatalf("%d of %d microdescriptors", nd.NumMicrodescs(), nd.Len())
	}
}

// TestSlowLinkWithResets bootstraps through the shaping proxy at 64 kbit/s
// with 300 ms RTT, resetting a connection every few kilobytes: the
// bootstrap completes and fetches each microdescriptor once.
func TestSlowLinkWithResets(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	p, err := slowlink.New(slowlink.Config{Rate: 64000, Delay: 150 * time.Millisecond, ResetEvery: 15000})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b, _ := r.boot(dircache.NewMemStore(), opts{dialer: &transport.SOCKS5{Addr: p.Addr()}})
	if err := b.Bootstrap(ctxFor(t, 4*time.Minute)); err != nil {
		t.Fatalf("bootstrap over a resetting slow link: %v (proxy %+v)", err, p.Stats())
	}
	ps := p.Stats()
	if ps.Resets == 0 {
		t.Fatalf("no reset happened (proxy %+v): the test proves nothing", ps)
	}
	st := b.Stats()
	nd := b.NetDir()
	if st.MicrodescsFetched != nd.NumMicrodescs() {
		t.Fatalf("%d microdescriptors fetched for %d in the view: something was fetched twice", st.MicrodescsFetched, nd.NumMicrodescs())
	}
	t.Logf("slow link: %d resets, %d B down, %d B up, stats %+v", ps.Resets, ps.Down, ps.Up, st)
}

// TestBridgeOnly: with a bridge configured, every directory request goes
// to it, none to the authorities or other caches.
func TestBridgeOnly(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t))
	r := newRig(t)
	var bridge DirServer
	for _, n := range r.net.Nodes() {
		if n.Role == testnet.Middle {
			fp, err := hex.DecodeString(n.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			copy(bridge.Fingerprint[:], fp)
			bridge.Nickname = "bridge-" + n.Nick
			bridge.Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(n.ORPort))
			break
		}
	}
	cm := chanmgr.New(&channel.Config{})
	b, err := New(Config{Authorities: r.auths, Bridges: []DirServer{bridge}, Store: dircache.NewMemStore(), Channels: cm, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); cm.Close() })
	var mu sync.Mutex
	asked := map[string]int{}
	b.fetch.hook = func(kind docKind, src *source, resp *dirclient.Response, err error) (*dirclient.Response, error) {
		mu.Lock()
		asked[src.name]++
		mu.Unlock()
		return resp, err
	}
	if err := b.Bootstrap(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[bridge.Nickname] < 3 {
		t.Fatalf("requests went to %v; want only %s", asked, bridge.Nickname)
	}
	if cs := cm.Stats(); cs.Opened != 1 {
		t.Fatalf("%d channels opened; want the bridge's only", cs.Opened)
	}
}

// TestMicrodescSizeHint: the body size guessed for a batch follows the
// microdescriptors received so far, and stays within a batch's limit.
func TestMicrodescSizeHint(t *testing.T) {
	b := &Bootstrapper{}
	if got, want := b.mdSizeHint(500), defaultMicrodescSize*500*9/8+1024; got != want {
		t.Errorf("before any arrived: %d, want %d", got, want)
	}
	b.mdBytes, b.mdCount = 3_000_000, 1000 // large families: 3 kB each
	if got := b.mdSizeHint(500); got < 1_500_000 || got > 1_800_000 {
		t.Errorf("after 3 kB each: %d, want about 1.7 MB", got)
	}
	if got := b.mdSizeHint(1 << 20); got != maxMicrodescBatchSize {
		t.Errorf("huge batch: %d, want the limit %d", got, maxMicrodescBatchSize)
	}
}

// TestDiffBaseReload: a diff base let go after a diff applied is read
// back from the store for a later attempt, but only if the store still
// holds the same consensus.
func TestDiffBaseReload(t *testing.T) {
	st := dircache.NewMemStore()
	old := []byte("network-status-version 3 microdesc\nold\ndirectory-signature x\n")
	if err := st.PutConsensus(flavor, old, dircache.ConsensusMeta{}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Consensus(flavor)
	if err != nil {
		t.Fatal(err)
	}
	if d := newDiffBase(nil); d.ok || d.reload(st) {
		t.Fatal("no base: reload must fail")
	}
	d := newDiffBase(c)
	if !d.ok || d.size != len(old) || !d.reload(st) {
		t.Fatalf("held base: %+v", d)
	}
	d.c = nil // a diff applied
	if !d.reload(st) || !bytes.Equal(d.c.Text, old) {
		t.Fatal("the base was not read back")
	}
	d.c = nil
	if err := st.PutConsensus(flavor, []byte("network-status-version 3 microdesc\nnew\ndirectory-signature x\n"), dircache.ConsensusMeta{}); err != nil {
		t.Fatal(err)
	}
	if d.reload(st) {
		t.Fatal("another consensus was taken as the base")
	}
}

// TestStallConn: a read that gets nothing for the stall limit fails with
// the deadline error; with no limit (a request beside another) only the
// caller's deadline ends it.
func TestStallConn(t *testing.T) {
	for _, stall := range []time.Duration{50 * time.Millisecond, 0} {
		a, b := net.Pipe()
		sc := &stallConn{Conn: a, stall: stall, clock: clock.Real{}}
		if stall == 0 {
			sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			b.Write([]byte("x"))
		}()
		n, err := sc.Read(make([]byte, 1))
		if stall > 0 {
			if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("stall %v: read %d, %v; want the deadline error", stall, n, err)
			}
		} else if n != 1 || err != nil {
			t.Errorf("no stall limit: read %d, %v; want the byte sent after 100 ms", n, err)
		}
		a.Close()
		b.Close()
	}
}
