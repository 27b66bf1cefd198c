package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// flavor is the only consensus flavor onionlite uses.
const flavor = "microdesc"

// Errors. Match them with errors.Is / errors.As; text is not stable.
var (
	// ErrNoDirectory: no usable consensus could be obtained this round.
	ErrNoDirectory = errors.New("bootstrap: no usable directory")
	// ErrNotEnoughDirInfo: a consensus was obtained but too few
	// microdescriptors to build paths.
	ErrNotEnoughDirInfo = errors.New("bootstrap: not enough microdescriptors to build circuits")
	// ErrClosed: the Bootstrapper was closed.
	ErrClosed = errors.New("bootstrap: closed")
)

// ClockSkewError reports that the directory looks wrong only because the
// local clock is: consensuses fresh from the network are outside their
// validity by our clock, and the relays' NETINFO times agree.
type ClockSkewError struct {
	// Skew is how far the local clock is ahead of the network's
	// (negative: behind).
	Skew time.Duration
	Err  error
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("bootstrap: local clock is off by %v compared with the Tor network: %v", e.Skew.Round(time.Second), e.Err)
}

func (e *ClockSkewError) Unwrap() error { return e.Err }

// Stats counts the directory traffic of a Bootstrapper.
type Stats struct {
	// DirBytes counts directory responses as read from their streams:
	// HTTP headers plus (compressed) bodies, by document kind in
	// DirBytesByKind ("consensus", "consensus_diff", "certificates",
	// "microdescriptors").
	DirBytes       int64
	DirBytesByKind map[string]int64
	// ConsensusSource is where the current consensus came from.
	ConsensusSource Source
	// MicrodescsFetched counts microdescriptors downloaded;
	// MicrodescsLoaded those read from the store into the view the
	// bootstrap used (a view it built and dropped does not count).
	MicrodescsFetched, MicrodescsLoaded int
	// Requests counts directory requests; RequestFailures those that
	// failed (and were retried elsewhere).
	Requests, RequestFailures int
	// DiffsApplied and DiffsFailed count consensus diffs.
	DiffsApplied, DiffsFailed int
	// DiffsDeclined counts requests for a diff that a source answered
	// with the whole consensus (a directory cache serves the whole
	// document when it has no diff from our base, for example while it
	// is still computing its diffs for a new consensus).
	DiffsDeclined int
	// Refreshes counts completed refresh rounds after the bootstrap.
	Refreshes int
	// StoreErrors counts failed writes to the store (the client keeps
	// working from memory).
	StoreErrors int
	// Duration is how long Bootstrap took to reach ready.
	Duration time.Duration
}

// Bootstrapper obtains and refreshes the directory. Create it with New.
type Bootstrapper struct {
	cfg            Config
	clock          clock.Clock
	rand           io.Reader
	circCfg        *circuit.Config
	stallTimeout   time.Duration
	requestTimeout time.Duration
	parallel       int
	fetch          *fetcher

	cur     atomic.Pointer[netdir.NetDir]
	dormant atomic.Bool
	ready   chan struct{} // closed once the first usable NetDir is published
	// complete is closed once the bootstrap that made the directory
	// ready has every microdescriptor it could get (completeOnce).
	complete     chan struct{}
	completeOnce sync.Once

	// boot holds a token while a Bootstrap or refresh round runs,
	// including the microdescriptors a bootstrap fetches in the
	// background after ready.
	boot chan struct{}
	// bg counts background microdescriptor downloads; Close waits for
	// them.
	bg sync.WaitGroup
	// mdPerRequest bounds a microdescriptor batch
	// (maxMicrodescsPerRequest; tests set less).
	mdPerRequest int

	mu       sync.Mutex
	progress Progress
	stats    Stats
	// mdBytes and mdCount: microdescriptor bytes and descriptors
	// received, for mdSizeHint.
	mdBytes, mdCount int64
	byKind           [numKinds]int64
	certs            map[netdoc.CertKey]*netdoc.AuthCert
	skew             time.Duration
	skewSeen         bool
	// lastSource served the latest consensus: its circuit is open, so
	// it is the cheapest first source for microdescriptors.
	lastSource *source
	// listedMarked is the valid-after of the consensus whose
	// microdescriptors markStored last marked listed in the store.
	listedMarked time.Time
	closed       bool
	kick         chan struct{}
	stop         chan struct{}
}

// New returns a Bootstrapper. It does no I/O until Bootstrap.
func New(cfg Config) (*Bootstrapper, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Bootstrapper{
		cfg:            cfg,
		clock:          clock.OrReal(cfg.Clock),
		rand:           torcrypto.Rand(cfg.Rand),
		circCfg:        cfg.Circuit,
		stallTimeout:   cfg.StallTimeout,
		requestTimeout: cfg.RequestTimeout,
		parallel:       cfg.Parallel,
		ready:          make(chan struct{}),
		complete:       make(chan struct{}),
		boot:           make(chan struct{}, 1),
		mdPerRequest:   maxMicrodescsPerRequest,
		certs:          map[netdoc.CertKey]*netdoc.AuthCert{},
		kick:           make(chan struct{}, 1),
		stop:           make(chan struct{}),
	}
	if b.circCfg == nil {
		b.circCfg = &circuit.Config{Clock: cfg.Clock, Rand: cfg.Rand}
	}
	if b.stallTimeout <= 0 {
		b.stallTimeout = defaultStallTimeout
	}
	if b.requestTimeout <= 0 {
		b.requestTimeout = defaultRequestTimeout
	}
	if b.parallel <= 0 {
		b.parallel = defaultParallel
	}
	b.fetch = newFetcher(b)
	return b, nil
}

func (b *Bootstrapper) logf(format string, args ...any) {
	if b.cfg.Logf != nil {
		b.cfg.Logf(format, args...)
	}
}

// NetDir returns the current network view, or nil before the first one.
func (b *Bootstrapper) NetDir() *netdir.NetDir { return b.cur.Load() }

// Ready is closed once a usable directory exists.
func (b *Bootstrapper) Ready() <-chan struct{} { return b.ready }

// Complete is closed once the bootstrap that made the directory ready has
// all the microdescriptors it could get. A bootstrap declares the
// directory ready as soon as the microdescriptors in hand are enough to
// build circuits (the consensus's min_paths_for_circs_pct, as C tor's
// "enough directory info") and the primary guards' are among them; it
// fetches the highest-bandwidth relays' first, and the rest in the
// background. A process about to exit that wants a complete cache for its
// next start waits for Complete.
func (b *Bootstrapper) Complete() <-chan struct{} { return b.complete }

func (b *Bootstrapper) markComplete() { b.completeOnce.Do(func() { close(b.complete) }) }

// errReady: the directory became ready while a Bootstrap waited for the
// bootstrap lock.
var errReady = errors.New("bootstrap: ready")

// lockBoot takes the bootstrap lock. With orReady it gives up, returning
// errReady, once the directory is ready.
func (b *Bootstrapper) lockBoot(ctx context.Context, orReady bool) error {
	var ready <-chan struct{}
	if orReady {
		ready = b.ready
	}
	select {
	case b.boot <- struct{}{}:
		return nil
	case <-ready:
		return errReady
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Bootstrapper) unlockBoot() { <-b.boot }

// Progress returns the latest progress report.
func (b *Bootstrapper) Progress() Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.progress
}

// Stats returns a snapshot of the counters.
func (b *Bootstrapper) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.DirBytesByKind = make(map[string]int64, numKinds)
	for k, n := range b.byKind {
		s.DirBytesByKind[kindNames[k]] = n
		s.DirBytes += n
	}
	return s
}

// ClockSkew returns the largest clock difference relays reported in their
// NETINFO cells (positive: our clock is ahead), and whether any was seen.
func (b *Bootstrapper) ClockSkew() (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.skew, b.skewSeen
}

func (b *Bootstrapper) noteSkew(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.skewSeen || abs(d) > abs(b.skew) {
		b.skew, b.skewSeen = d, true
	}
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func (b *Bootstrapper) addDirBytes(k docKind, n int64) {
	b.mu.Lock()
	b.byKind[k] += n
	b.stats.Requests++
	var total int64
	for _, v := range b.byKind {
		total += v
	}
	b.progress.DirBytes = total
	p := b.progress
	b.mu.Unlock()
	b.emit(p)
}

func (b *Bootstrapper) count(f func(s *Stats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

// setProgress updates the phase and percent (which never goes down) and
// reports the change.
func (b *Bootstrapper) setProgress(f func(p *Progress)) {
	b.mu.Lock()
	before := b.progress
	f(&b.progress)
	if b.progress.Percent < before.Percent {
		b.progress.Percent = before.Percent
	}
	p := b.progress
	b.mu.Unlock()
	if p != before {
		b.emit(p)
	}
}

func (b *Bootstrapper) emit(p Progress) {
	if b.cfg.OnProgress != nil {
		b.cfg.OnProgress(p)
	}
}

// phase reports a bootstrap step. After the first ready, refresh rounds
// only log: the application's progress stays at ready.
func (b *Bootstrapper) phase(ph Phase, pct int, msg string) {
	b.logf("bootstrap: %s: %s", ph, msg)
	select {
	case <-b.ready:
		return
	default:
	}
	b.setProgress(func(p *Progress) { p.Phase, p.Percent, p.Message = ph, pct, msg })
}

// publish makes nd the current view.
func (b *Bootstrapper) publish(nd *netdir.NetDir) {
	b.cur.Store(nd)
	if b.cfg.OnNetDir != nil {
		b.cfg.OnNetDir(nd)
	}
}

func (b *Bootstrapper) markReady(start time.Time) {
	select {
	case <-b.ready:
		return
	default:
	}
	b.count(func(s *Stats) { s.Duration = b.clock.Now().Sub(start) })
	b.setProgress(func(p *Progress) {
		p.Phase, p.Percent, p.Message = PhaseReady, 100, "directory ready"
	})
	close(b.ready)
}

// Bootstrap blocks until the client has a usable directory: a verified
// consensus, live or (from the store) expired less than a day ago, and
// enough microdescriptors to build circuits. It uses the store first and
// fetches only what is missing; a newer consensus for an expired one, and
// microdescriptors beyond enough, come in the background (Complete). Calling it again
// after success returns at once.
func (b *Bootstrapper) Bootstrap(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	default:
	}
	if err := b.lockBoot(ctx, true); err != nil {
		if err == errReady {
			return nil
		}
		return err
	}
	handedOff := false // the background download releases the lock
	defer func() {
		if !handedOff {
			b.fetch.closeAll()
			b.unlockBoot()
		}
	}()
	if b.isClosed() {
		return ErrClosed
	}
	select {
	case <-b.ready:
		return nil
	default:
	}
	start := b.clock.Now()

	b.phase(PhaseLoadingCache, 2, "loading cached directory")
	cached, live, recent := b.loadCache()
	// Caches of a recent consensus are the first sources if a fetch is
	// needed; choose them now so that the parse (live and recent are the
	// same one on a warm start) is not held while the view is built.
	var recentSources []*source
	if recent != nil {
		recentSources = b.consensusCacheSources(recent, maxAttempts/2, nil)
	}
	baseChecked := recent != nil
	if live != nil {
		recent = nil // the same consensus as live
	}

	if live != nil {
		// The stored text (2–3 MB for a full consensus) is only a diff
		// base for the fetch below; let it go while the view is built
		// and read it again if that fails.
		cached = nil
		b.count(func(s *Stats) { s.ConsensusSource = SourceCache })
		bld, err := netdir.NewBuilder(live, nil)
		live = nil // bld has what it needs; let the parse go
		if err != nil {
			return err
		}
		b.addStoredMicrodescs(bld)
		if handedOff, err = b.finishDirectory(ctx, bld, start, false); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return err
		} else {
			b.logf("bootstrap: cached consensus unusable (%v); fetching a new one", err)
		}
		if c, err := b.cfg.Store.Consensus(flavor); err == nil {
			cached = c
		}
	}

	if recent != nil {
		// As on a warm start, the stored text is not held while the
		// view is built; the refresh reads it again as its diff base.
		cached = nil
		nd := b.staleView(recent)
		recent = nil
		if nd == nil {
			if c, err := b.cfg.Store.Consensus(flavor); err == nil {
				cached = c
			}
		} else {
			// Ready now, from a consensus that expired less than a day
			// ago, as C tor (a "reasonably live" consensus is enough to
			// build circuits) and Arti (its post-valid tolerance) do; a
			// newer one comes in the background.
			b.count(func(s *Stats) { s.ConsensusSource = SourceCache })
			b.publish(nd)
			b.markReady(start)
			di := nd.DirInfo()
			b.logf("bootstrap: directory ready from the cached consensus, expired %v ago (paths %.0f%%); fetching a newer one in the background",
				b.clock.Now().Sub(nd.ValidUntil()).Round(time.Second), 100*di.Paths)
			handedOff = true
			b.bg.Add(1)
			go b.refreshInBackground(nd)
			return nil
		}
	}

	// Caches of a recent consensus first, authorities after them.
	sources := append(recentSources, b.bootstrapSources(nil)...)
	cons, src, err := b.fetchConsensus(ctx, sources, cached, false, baseChecked)
	if err != nil {
		return err
	}
	b.count(func(s *Stats) { s.ConsensusSource = src })
	bld, err := netdir.NewBuilder(cons, nil)
	// The parsed consensus (over a megabyte at full scale) is not held
	// while microdescriptors download: bld has what it needs of it.
	cons = nil
	if err != nil {
		return err
	}
	b.addStoredMicrodescs(bld)
	handedOff, err = b.finishDirectory(ctx, bld, start, true)
	return err
}

// finishDirectory fetches the microdescriptors bld lacks, publishes the
// view and marks the directory ready (and, with stored, records the
// listing times and prunes the store). It returns as soon as the view is
// usable: when the microdescriptors in hand are enough (the primary
// guards' among them) and more are still missing, it publishes a snapshot,
// marks ready and returns handedOff: a background goroutine then owns the
// bootstrap lock, fetches the rest, publishes the whole view, closes the
// directory circuits, releases the lock and closes Complete. ctx bounds
// the fetch until ready; after that only Close ends it.
func (b *Bootstrapper) finishDirectory(ctx context.Context, bld *netdir.Builder, start time.Time, stored bool) (handedOff bool, err error) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopCaller := context.AfterFunc(ctx, cancel)
	go func() { // Close ends the fetch whoever waits for it
		select {
		case <-b.stop:
			cancel()
		case <-fctx.Done():
		}
	}()
	enough := make(chan *netdir.NetDir, 1)
	done := make(chan error, 1)
	go func() {
		done <- b.completeMicrodescs(fctx, bld, nil, func(nd *netdir.NetDir) {
			select {
			case enough <- nd:
			default:
			}
		})
	}()
	finish := func(err error) error {
		if err != nil {
			return err
		}
		nd, err := bld.Build()
		if err != nil {
			return err
		}
		b.publish(nd)
		if stored {
			b.markStored(nd)
		}
		return nil
	}
	// ended: the fetch ended before the directory was ready.
	ended := func(err error) (bool, error) {
		stopCaller()
		cancel()
		if err != nil {
			// fctx only says "canceled"; say why.
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			} else if b.isClosed() {
				err = ErrClosed
			}
		}
		if err = finish(err); err != nil {
			return false, err
		}
		b.markReady(start)
		b.markComplete()
		return false, nil
	}
	select {
	case err := <-done:
		return ended(err)
	case snap := <-enough:
		select {
		case err := <-done: // the last batch made it enough
			return ended(err)
		default:
		}
		stopCaller() // from now on only Close cancels fctx
		b.publish(snap)
		b.markReady(start)
		di := snap.DirInfo()
		b.logf("bootstrap: directory ready with %d of %d microdescriptors (paths %.0f%%); fetching the rest in the background",
			di.Present, di.Usable, 100*di.Paths)
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			err := <-done
			cancel()
			if err != nil {
				b.logf("bootstrap: fetching the rest of the microdescriptors: %v", err)
			}
			if !b.isClosed() {
				// Whatever arrived is published, even after an error:
				// the view only gains relays.
				if err := finish(nil); err != nil {
					b.logf("bootstrap: finishing the directory in the background: %v", err)
				}
			}
			b.fetch.closeAll()
			b.unlockBoot()
			b.markComplete()
		}()
		return true, nil
	}
}

// staleView builds the view of c (a verified consensus that has expired,
// but less than a day ago) from the stored microdescriptors, and returns
// it if it is enough to build circuits with the primary guards'
// microdescriptors in it; otherwise nil (the bootstrap then fetches first).
func (b *Bootstrapper) staleView(c *netdoc.Consensus) *netdir.NetDir {
	bld, err := netdir.NewBuilder(c, nil)
	if err != nil {
		return nil
	}
	b.addStoredMicrodescs(bld)
	if di := bld.DirInfo(); !di.Enough(0) {
		b.logf("bootstrap: the expired cached consensus is not enough with the stored microdescriptors (paths %.0f%%)", 100*di.Paths)
		return nil
	}
	nd, err := bld.Build()
	if err != nil {
		return nil
	}
	if b.cfg.PrimaryGuards != nil {
		for _, r := range b.cfg.PrimaryGuards(nd) {
			if i, ok := nd.ByID(r.ID); !ok || !nd.Flags(i).Has(netdir.FlagHasMicrodesc) {
				b.logf("bootstrap: a primary guard's microdescriptor is not stored; fetching before ready")
				return nil
			}
		}
	}
	return nd
}

// refreshInBackground fetches a consensus newer than prev (published by a
// bootstrap from an expired cached one) and its microdescriptors, holding
// the bootstrap lock it was handed, until done or Close. If it fails, Run
// tries again on its retry schedule.
func (b *Bootstrapper) refreshInBackground(prev *netdir.NetDir) {
	defer b.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := b.refreshLocked(ctx, prev)
	b.unlockBoot()
	if err != nil && !b.isClosed() {
		b.logf("bootstrap: fetching a newer consensus after starting from an expired one: %v", err)
	}
}

func (b *Bootstrapper) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops Run and closes directory circuits. The store and the channel
// manager belong to the caller.
func (b *Bootstrapper) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	close(b.stop)
	b.mu.Unlock()
	b.fetch.closeAll()
	b.bg.Wait() // a background download ends with its circuits
	return nil
}

// storeErr counts and logs a failed store write: the client keeps working
// from memory.
func (b *Bootstrapper) storeErr(what string, err error) {
	if err == nil {
		return
	}
	b.count(func(s *Stats) { s.StoreErrors++ })
	b.logf("bootstrap: storing %s failed (continuing from memory): %v", what, err)
}

// loadCache reads the stored certificates and consensus. It returns the
// stored consensus document (a diff base, nil if none); when that consensus
// is live now and verifies, its checked form (live); and when it is at
// least reasonably live (expired less than a day ago), that form too
// (recent), whose caches are better first sources than the authorities.
func (b *Bootstrapper) loadCache() (stored *dircache.Consensus, live, recent *netdoc.Consensus) {
	now := b.clock.Now()
	certs, dropped, err := b.cfg.Store.Certs()
	if err != nil {
		b.logf("bootstrap: reading stored certificates: %v", err)
	}
	if dropped > 0 {
		b.logf("bootstrap: %d stored certificates failed their checksum and were dropped", dropped)
	}
	for _, c := range certs {
		b.addCertText(c.Text, now, false)
	}
	stored, err = b.cfg.Store.Consensus(flavor)
	if err != nil {
		if !errors.Is(err, dircache.ErrNotFound) {
			b.logf("bootstrap: stored consensus unusable: %v", err)
		}
		return nil, nil, nil
	}
	u, err := netdoc.ParseConsensus(stored.Text)
	if err != nil {
		b.logf("bootstrap: stored consensus does not parse, ignoring it: %v", err)
		return nil, nil, nil
	}
	c, err := u.Check(now, b.cfg.Authorities, b.certList())
	if err == nil {
		return stored, c, c
	}
	b.logf("bootstrap: stored consensus not live (%v); it serves as a diff base", err)
	if c, err := u.CheckWithTolerance(now, b.cfg.Authorities, b.certList(), netdoc.ReasonablyLive); err == nil {
		return stored, nil, c
	}
	return stored, nil, nil
}

// certList returns the checked certificates held.
func (b *Bootstrapper) certList() []*netdoc.AuthCert {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*netdoc.AuthCert, 0, len(b.certs))
	for _, c := range b.certs {
		out = append(out, c)
	}
	return out
}

// addCertText parses and checks certificates, keeps those of trusted
// authorities valid now, and stores them when store is set. It returns how
// many it kept.
func (b *Bootstrapper) addCertText(text []byte, now time.Time, store bool) int {
	us, err := netdoc.ParseAuthCerts(text)
	if err != nil && len(us) == 0 {
		b.logf("bootstrap: certificates do not parse: %v", err)
		return 0
	}
	kept := 0
	for _, u := range us {
		c, err := u.Check(now)
		if err != nil {
			b.logf("bootstrap: certificate rejected: %v", err)
			continue
		}
		if !b.trusted(c.Fingerprint) {
			continue
		}
		b.mu.Lock()
		b.certs[c.Key()] = c
		b.mu.Unlock()
		kept++
		if store {
			b.storeErr("certificate", b.cfg.Store.PutCert(dircache.Cert{Identity: c.Fingerprint, SigningKey: c.SigningKeyDigest, Text: c.Raw}))
		}
	}
	return kept
}

func (b *Bootstrapper) trusted(v3 [20]byte) bool {
	for _, a := range b.cfg.Authorities {
		if a.V3Ident == v3 && !a.Bridge {
			return true
		}
	}
	return false
}

// randIntn returns a uniform int in [0, n).
func (b *Bootstrapper) randIntn(n int) int {
	if n <= 1 {
		return 0
	}
	v, err := torcrypto.Uint64n(b.rand, uint64(n))
	if err != nil {
		return 0
	}
	return int(v)
}

// randDuration returns a uniform duration in [0, d).
func (b *Bootstrapper) randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	v, err := torcrypto.Uint64n(b.rand, uint64(d))
	if err != nil {
		return 0
	}
	return time.Duration(v)
}
