package bootstrap

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/consdiff"
	"github.com/onionlite/onionlite/internal/dirclient"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// consensusPath asks for the microdesc consensus.
const consensusPath = "/tor/status-vote/current/consensus-microdesc"

// diffHorizon is how old a cached consensus may be and still be offered as
// a diff base (param try-diff-for-consensus-newer-than, 72 hours).
const diffHorizon = 72 * time.Hour

// bootstrapSources lists where to fetch a consensus: the bridges only, if
// any are configured; otherwise caches from the current view in random
// bandwidth-weighted order when there is one, then the fallbacks, then the
// authorities, each group in random order.
func (b *Bootstrapper) bootstrapSources(nd *netdir.NetDir) []*source {
	if len(b.cfg.Bridges) > 0 {
		return b.shuffle(dirServerSources(b.cfg.Bridges))
	}
	var out []*source
	if nd != nil {
		out = b.cacheSources(nd, maxAttempts, nil)
	}
	out = append(out, b.shuffle(dirServerSources(b.cfg.Fallbacks))...)
	auths := make([]*source, 0, len(b.cfg.Authorities))
	for _, a := range b.cfg.Authorities {
		if a.Bridge || !a.Addr.IsValid() || a.ORPort == 0 {
			continue
		}
		auths = append(auths, authoritySource(a))
	}
	return append(out, b.shuffle(auths)...)
}

func dirServerSources(ds []DirServer) []*source {
	out := make([]*source, 0, len(ds))
	for _, d := range ds {
		if !d.Addr.IsValid() {
			continue
		}
		out = append(out, &source{name: d.Nickname, addr: d.Addr,
			relay: circuit.Relay{RSAID: d.Fingerprint, Handshake: circuit.HandshakeFast}})
	}
	return out
}

// shuffle puts s in random order (Fisher–Yates) and returns it.
func (b *Bootstrapper) shuffle(s []*source) []*source {
	for i := len(s) - 1; i > 0; i-- {
		j := b.randIntn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
	return s
}

// cacheSources picks up to n distinct directory caches (Running, Valid,
// V2Dir) from nd, weighted for one-hop directory use, skipping those in
// avoid.
func (b *Bootstrapper) cacheSources(nd *netdir.NetDir, n int, avoid map[[20]byte]bool) []*source {
	if len(b.cfg.Bridges) > 0 {
		return nil // a bridge user asks nobody else
	}
	type cand struct {
		i netdir.RelayIndex
		w uint64
	}
	var cands []cand
	var total uint64
	for i := 0; i < nd.Len(); i++ {
		ri := netdir.RelayIndex(i)
		f := nd.Flags(ri)
		if !f.Has(netdir.FlagRunning|netdir.FlagValid|netdir.FlagV2Dir) || avoid[nd.ID(ri)] {
			continue
		}
		w := nd.Weight(netdir.RoleBeginDir, ri)
		if w == 0 {
			w = 1 // unweighted networks (tiny test networks) still get picked
		}
		cands = append(cands, cand{ri, w})
		total += w
	}
	var out []*source
	for len(out) < n && len(cands) > 0 {
		x := uint64(b.randIntn(int(min(total, 1<<62))))
		k := 0
		for acc := uint64(0); k < len(cands)-1; k++ {
			acc += cands[k].w
			if x < acc {
				break
			}
		}
		r := nd.Relay(cands[k].i)
		out = append(out, cacheSourceFromRelay(r))
		total -= cands[k].w
		cands = append(cands[:k], cands[k+1:]...)
	}
	return out
}

// consensusCacheSources lists the caches of a consensus that has no
// NetDir yet (a cold bootstrap), by bandwidth.
func (b *Bootstrapper) consensusCacheSources(c *netdoc.Consensus, n int, avoid map[[20]byte]bool) []*source {
	if len(b.cfg.Bridges) > 0 {
		return nil
	}
	type cand struct {
		i int
		w uint64
	}
	var cands []cand
	var total uint64
	for i := range c.Relays {
		rs := &c.Relays[i]
		if !rs.Flags.Has(netdoc.FlagRunning|netdoc.FlagValid|netdoc.FlagV2Dir) || avoid[rs.Identity] || !rs.Addr.IsValid() {
			continue
		}
		w := uint64(rs.Bandwidth) + 1
		cands = append(cands, cand{i, w})
		total += w
	}
	var out []*source
	for len(out) < n && len(cands) > 0 {
		x := uint64(b.randIntn(int(min(total, 1<<62))))
		k := 0
		for acc := uint64(0); k < len(cands)-1; k++ {
			acc += cands[k].w
			if x < acc {
				break
			}
		}
		out = append(out, cacheSource(&c.Relays[cands[k].i], nil))
		total -= cands[k].w
		cands = append(cands[:k], cands[k+1:]...)
	}
	return out
}

// fetchConsensus downloads a consensus from the sources in turn, as a
// diff from cached (nil: none) when it is recent enough, fetching missing
// certificates, and returns it checked and stored. With needNewer (a
// refresh) the consensus must be newer than cached; a bootstrap takes any
// that checks, since its cached one did not (it may be forged or its
// certificates lost, and the network may have nothing newer yet).
// SourceCache with a nil consensus means every source said cached is
// current (304) and cached is still live.
//
// baseChecked says cached verified (it may have expired): a source
// answering 304 to a diff request from it is merely behind, and the next
// one is asked for a diff too. A base that did not verify is asked for
// whole from the source that says it is current.
func (b *Bootstrapper) fetchConsensus(ctx context.Context, sources []*source, cached *dircache.Consensus, needNewer, baseChecked bool) (*netdoc.Consensus, Source, error) {
	if len(sources) == 0 {
		return nil, SourceNone, fmt.Errorf("%w: no directory sources", ErrNoDirectory)
	}
	b.phase(PhaseConnecting, 5, "connecting to a directory server")
	var lastErr error
	base := newDiffBase(cached)
	cached = nil // base holds it, and lets it go once a diff applied
	useDiff := base.ok && b.clock.Now().Sub(base.validAfter) < diffHorizon
	for attempt := 0; attempt < maxAttempts && attempt < 2*len(sources); attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, SourceNone, err
		}
		if useDiff && !base.reload(b.cfg.Store) {
			useDiff = false
		}
		src := sources[attempt%len(sources)]
		c, how, err := b.consensusFrom(ctx, sources, attempt%len(sources), base, useDiff, attempt == 0, needNewer, baseChecked)
		if err == nil {
			return c, how, nil
		}
		var skew *ClockSkewError
		if errors.As(err, &skew) {
			return nil, SourceNone, err
		}
		if errors.Is(err, errDiffFailed) {
			useDiff = false // the next attempt asks for the full document
		}
		b.count(func(s *Stats) { s.RequestFailures++ })
		b.logf("bootstrap: consensus from %s failed: %v", src.name, err)
		lastErr = err
	}
	return nil, SourceNone, fmt.Errorf("%w: %w", ErrNoDirectory, lastErr)
}

// diffBase is the stored consensus a fetch may ask a diff from. Its text
// (2–3 MB at full scale) is let go as soon as a diff has been applied to
// it, so the old and the new text are not both held while the new one is
// parsed, checked and stored; an attempt after that reads it back from
// the store, which keeps it until a newer consensus is stored.
type diffBase struct {
	c          *dircache.Consensus // nil: not held now
	ok         bool                // there is a base
	validAfter time.Time
	digest     [32]byte // its signed digest (SHA3-256)
	size       int      // its text's length
}

func newDiffBase(c *dircache.Consensus) *diffBase {
	if c == nil {
		return &diffBase{}
	}
	return &diffBase{c: c, ok: true, validAfter: c.ValidAfter, digest: c.SignedDigest, size: len(c.Text)}
}

// reload reads the base back from st if it was let go, and reports
// whether it is held.
func (d *diffBase) reload(st dircache.Store) bool {
	if d.c != nil || !d.ok {
		return d.c != nil
	}
	c, err := st.Consensus(flavor)
	if err != nil || c.SignedDigest != d.digest {
		return false
	}
	d.c = c
	return true
}

var (
	errDiffFailed  = errors.New("consensus diff did not apply")
	errNotNewer    = errors.New("source has no newer consensus")
	diffPrefix     = []byte("network-status-diff-version ")
	consensusStart = []byte("network-status-version ")
)

func kindOf(body []byte) docKind {
	if bytes.HasPrefix(body, diffPrefix) {
		return kindDiff
	}
	return kindConsensus
}

// consensusFrom fetches a consensus from sources[at] and checks it,
// fetching the certificates it needs from that source or, if that fails,
// the others: a consensus that arrived is not downloaded again because a
// certificate request was lost.
func (b *Bootstrapper) consensusFrom(ctx context.Context, sources []*source, at int, base *diffBase, useDiff, prefetch, needNewer, baseChecked bool) (*netdoc.Consensus, Source, error) {
	src := sources[at]
	req := &dirclient.Request{Path: consensusPath, MaxBody: maxConsensusSize}
	if base.ok {
		req.SizeHint = base.size + base.size/16
		if useDiff && base.c != nil {
			d := base.digest
			req.DiffFrom = &d
		}
	}
	b.phase(PhaseConsensus, 10, "downloading the consensus")
	// With no certificate at all (a cold start) every authority's will be
	// needed: ask for them on a second stream of the same circuit while
	// the consensus downloads, saving a round trip and a request later.
	// Only on the first attempt: if that connection died, the link may
	// be one that cannot carry both at once, and asking for them one at a
	// time (from different sources if need be) makes progress.
	waitCerts := func() {}
	if prefetch && len(b.certList()) == 0 {
		if _, err := b.fetch.circuitTo(ctx, src); err != nil {
			return nil, SourceNone, &sourceError{src: src, err: err}
		}
		done := make(chan struct{})
		cctx, cancel := context.WithCancel(ctx)
		defer func() {
			// A failed attempt does not wait for the certificates: the
			// request has no stall limit of its own (fetchAuthorityCerts).
			cancel()
			<-done
		}()
		go func() {
			defer close(done)
			if err := b.fetchAuthorityCerts(cctx, src); err != nil {
				b.logf("bootstrap: certificates from %s: %v", src.name, err)
			}
		}()
		waitCerts = func() { <-done }
	}
	// A request for a diff is charged to diffs unless a whole consensus
	// comes back, and the other way round.
	kind := kindConsensus
	if req.DiffFrom != nil {
		kind = kindDiff
	}
	resp, err := b.fetch.do(ctx, src, kind, req)
	if err != nil {
		return nil, SourceNone, err
	}
	if resp.Code == 304 {
		if !needNewer && !baseChecked {
			// Our base is the current consensus, but it did not check
			// (its certificates were lost, say): ask for it whole.
			return nil, SourceNone, fmt.Errorf("%w: the source says our unchecked consensus is current", errDiffFailed)
		}
		return nil, SourceNone, errNotNewer
	}
	text, how := resp.Body, SourceFull
	if got := kindOf(text); got != kind {
		b.mu.Lock()
		b.byKind[kind] -= resp.WireBytes
		b.byKind[got] += resp.WireBytes
		if kind == kindDiff && got == kindConsensus {
			b.stats.DiffsDeclined++
		}
		b.mu.Unlock()
	}
	if bytes.HasPrefix(text, diffPrefix) {
		if base.c == nil {
			return nil, SourceNone, fmt.Errorf("%w: a diff arrived but no base is held", errDiffFailed)
		}
		out, err := consdiff.Apply(base.c.Text, text)
		if err != nil {
			b.count(func(s *Stats) { s.DiffsFailed++ })
			return nil, SourceNone, fmt.Errorf("%w: %v", errDiffFailed, err)
		}
		b.count(func(s *Stats) { s.DiffsApplied++ })
		base.c = nil // the old text is not needed while the new one is checked
		text, how = out, SourceDiff
	} else if !bytes.HasPrefix(text, consensusStart) {
		return nil, SourceNone, fmt.Errorf("answer is neither a consensus nor a diff")
	}
	resp = nil
	b.setProgress(func(p *Progress) { p.Percent = 40 })

	u, err := netdoc.ParseConsensus(text)
	if err != nil {
		return nil, SourceNone, err
	}
	if needNewer && base.ok && !u.ValidAfter().After(base.validAfter) {
		return nil, SourceNone, errNotNewer
	}
	waitCerts()
	c, err := b.checkConsensus(ctx, sources, at, u)
	if err != nil {
		return nil, SourceNone, err
	}
	b.mu.Lock()
	b.lastSource = src
	b.mu.Unlock()
	b.storeErr("consensus", b.cfg.Store.PutConsensus(flavor, text, dircache.ConsensusMeta{
		ValidAfter: c.ValidAfter, FreshUntil: c.FreshUntil, ValidUntil: c.ValidUntil,
	}))
	return c, how, nil
}

// checkConsensus verifies u, first fetching the certificates it names that
// we lack, from sources[at] and then the next sources in turn.
func (b *Bootstrapper) checkConsensus(ctx context.Context, sources []*source, at int, u *netdoc.UncheckedConsensus) (*netdoc.Consensus, error) {
	now := b.clock.Now()
	have := b.certList()
	for i := 0; i < maxAttempts && i < 2*len(sources); i++ {
		missing := u.MissingCerts(b.cfg.Authorities, have)
		if len(missing) == 0 || ctx.Err() != nil {
			break
		}
		src := sources[(at+i)%len(sources)]
		b.phase(PhaseCertificates, 42, "downloading authority certificates")
		if err := b.fetchCerts(ctx, src, missing); err != nil {
			b.count(func(s *Stats) { s.RequestFailures++ })
			b.logf("bootstrap: certificates from %s: %v", src.name, err)
		}
		have = b.certList()
	}
	c, err := u.Check(now, b.cfg.Authorities, have)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, netdoc.ErrNotYetValid) || errors.Is(err, netdoc.ErrExpired) {
		// A consensus straight from the network that our clock calls
		// invalid: if its signatures are good and the relays' clocks
		// agree it is our clock that is wrong.
		if _, tolErr := u.CheckWithTolerance(now, b.cfg.Authorities, have, netdoc.Tolerance{Early: 30 * 24 * time.Hour, Late: 30 * 24 * time.Hour}); tolErr == nil {
			skew, seen := b.ClockSkew()
			if !seen {
				// Estimate from the consensus: the network made it
				// within the last fresh interval.
				skew = now.Sub(u.ValidAfter())
			}
			if abs(skew) > time.Hour {
				return nil, &ClockSkewError{Skew: skew, Err: err}
			}
		}
	}
	return nil, err
}

// fetchCerts downloads the named certificates from src.
func (b *Bootstrapper) fetchCerts(ctx context.Context, src *source, keys []netdoc.CertKey) error {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strings.ToUpper(hex.EncodeToString(k.Identity[:])) + "-" + strings.ToUpper(hex.EncodeToString(k.SigningKeyDigest[:]))
	}
	req := &dirclient.Request{Path: "/tor/keys/fp-sk/" + strings.Join(parts, "+"), MaxBody: maxCertsSize}
	resp, err := b.fetch.do(ctx, src, kindCerts, req)
	if err != nil {
		return err
	}
	if n := b.addCertText(resp.Body, b.clock.Now(), true); n == 0 {
		return fmt.Errorf("no usable certificate among %d requested", len(keys))
	}
	return nil
}

// fetchAuthorityCerts asks src for the current certificate of every
// trusted authority (/tor/keys/fp/...), beside a consensus download on the
// same circuit (fetcher.doBeside).
func (b *Bootstrapper) fetchAuthorityCerts(ctx context.Context, src *source) error {
	var ids []string
	for _, a := range b.cfg.Authorities {
		var zero [20]byte
		if !a.Bridge && a.V3Ident != zero {
			ids = append(ids, strings.ToUpper(hex.EncodeToString(a.V3Ident[:])))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// Asked beside the consensus on the same circuit (consensusFrom).
	resp, err := b.fetch.doBeside(ctx, src, kindCerts, &dirclient.Request{Path: "/tor/keys/fp/" + strings.Join(ids, "+"), MaxBody: maxCertsSize})
	if err != nil {
		return err
	}
	if n := b.addCertText(resp.Body, b.clock.Now(), true); n == 0 {
		return fmt.Errorf("no usable certificate among %d authorities", len(ids))
	}
	return nil
}

// markListedEvery is how far apart, in consensus time, markStored
// rewrites the last-listed time of every microdescriptor a consensus
// lists. Every hourly consensus lists nearly the same thousands, and
// rewriting all their times each hour was most of the keys a refresh
// wrote to the store (more than a 512 KiB memtable holds at full scale: a
// table build each hour, and level 0 growing towards a compaction, for
// times that only pruning reads).
// Microdescriptors stored during a refresh get their time when stored.
const markListedEvery = 12 * time.Hour

// keepUnlisted is how long the store keeps a microdescriptor no consensus
// lists any more: a week, as C tor does, counted from its last recorded
// listing, which is up to markListedEvery older than its last real one.
const keepUnlisted = 7*24*time.Hour + markListedEvery

// markStored records in the store that the microdescriptors of nd's
// consensus are listed (when markListedEvery has passed since the last
// time it did, in this process), and prunes those no consensus of the
// last week listed.
func (b *Bootstrapper) markStored(nd *netdir.NetDir) {
	digests := make([][32]byte, nd.Len())
	keep := make(map[[32]byte]struct{}, len(digests))
	for i := range digests {
		digests[i] = nd.MicrodescDigest(netdir.RelayIndex(i))
		keep[digests[i]] = struct{}{}
	}
	at := nd.ValidAfter()
	b.mu.Lock()
	due := b.listedMarked.IsZero() || !at.Before(b.listedMarked.Add(markListedEvery))
	b.mu.Unlock()
	if due {
		err := b.cfg.Store.MarkListed(at, digests)
		b.storeErr("listing times", err)
		if err == nil {
			b.mu.Lock()
			b.listedMarked = at
			b.mu.Unlock()
		}
	}
	n, err := b.cfg.Store.PruneMicrodescs(func(d [32]byte) bool { _, ok := keep[d]; return ok }, at.Add(-keepUnlisted))
	b.storeErr("pruning", err)
	if n > 0 {
		b.logf("bootstrap: pruned %d microdescriptors no recent consensus lists", n)
	}
}
