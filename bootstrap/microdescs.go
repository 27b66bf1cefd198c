package bootstrap

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/dirclient"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// loadChunk is how much stored microdescriptor text is parsed at once on a
// warm start.
const loadChunk = 256 << 10

// addStoredMicrodescs feeds every stored microdescriptor to bld, which
// keeps those its consensus lists. The store re-hashes each one; parsing
// re-derives every digest again, so nothing unverified reaches the view.
func (b *Bootstrapper) addStoredMicrodescs(bld *netdir.Builder) {
	buf := make([]byte, 0, loadChunk+16<<10)
	loaded := 0
	flush := func() {
		if len(buf) == 0 {
			return
		}
		mds, err := netdoc.ParseMicrodescs(buf)
		if err != nil {
			b.logf("bootstrap: stored microdescriptors: %v", err)
		}
		n, err := bld.AddMicrodescs(mds)
		if err != nil {
			b.logf("bootstrap: stored microdescriptors: %v", err)
		}
		loaded += n
		buf = buf[:0]
	}
	dropped, err := b.cfg.Store.ForEachMicrodesc(func(_ [32]byte, text []byte) error {
		buf = append(buf, text...)
		if len(buf) >= loadChunk {
			flush()
		}
		return nil
	})
	flush()
	if err != nil {
		b.logf("bootstrap: reading stored microdescriptors: %v", err)
	}
	if dropped > 0 {
		b.logf("bootstrap: %d stored microdescriptors failed verification and were dropped", dropped)
	}
	// Set, not added: a bootstrap may build a view and drop it (an
	// expired consensus that was not enough with what is stored, a cached
	// one that failed) before the one it uses, and reads the store again.
	b.count(func(s *Stats) { s.MicrodescsLoaded = loaded })
	b.mdProgress(bld.DirInfo())
}

func (b *Bootstrapper) mdProgress(di netdir.DirInfo) {
	b.setProgress(func(p *Progress) {
		p.Microdescs, p.MicrodescsWanted = di.Present, di.Usable
		// Towards ready: the fraction of paths the view allows, against
		// the fraction that is enough (microdescriptors arrive highest
		// bandwidth first, so this runs ahead of their count).
		if p.Phase == PhaseMicrodescs && di.Threshold > 0 {
			p.Percent = 50 + int(49*min(1, di.Paths/di.Threshold))
		}
	})
}

// preferSources returns first followed by the rest of all, without
// repeating a relay.
func preferSources(first, all []*source) []*source {
	if len(first) == 0 {
		return all
	}
	seen := make(map[[20]byte]bool, len(first))
	out := make([]*source, 0, len(first)+len(all))
	for _, s := range first {
		if !seen[s.relay.RSAID] {
			seen[s.relay.RSAID] = true
			out = append(out, s)
		}
	}
	for _, s := range all {
		if !seen[s.relay.RSAID] {
			seen[s.relay.RSAID] = true
			out = append(out, s)
		}
	}
	return out
}

// dirGuardSources asks the DirGuards hook for the directory guards of nd.
func (b *Bootstrapper) dirGuardSources(nd *netdir.NetDir) []*source {
	if b.cfg.DirGuards == nil || len(b.cfg.Bridges) > 0 || nd == nil {
		return nil
	}
	var out []*source
	for _, r := range b.cfg.DirGuards(nd) {
		s := cacheSourceFromRelay(r)
		s.name = fmt.Sprintf("dirguard %X", r.ID[:4])
		out = append(out, s)
	}
	return out
}

// mdBatch is a list of wanted digests and how often it was tried.
type mdBatch struct {
	digests [][32]byte
	tries   int
}

// completeMicrodescs fetches every microdescriptor bld still misses, in
// large batches spread over up to Parallel caches, and fails only if the
// result is not enough to build circuits. nd, when not nil, is the
// previous view: it names caches with known keys; when nil, caches and
// directory guards are chosen from bld's view of the consensus alone.
//
// The primary guards' microdescriptors are asked for first, then the
// rest highest bandwidth first. onEnough, if not nil, is called once
// with a snapshot of the view as soon as it is enough to build circuits
// with the primary guards' microdescriptors in it, while more are still
// missing (at once if that holds before any fetch); the fetch goes on.
func (b *Bootstrapper) completeMicrodescs(ctx context.Context, bld *netdir.Builder, nd *netdir.NetDir, onEnough func(*netdir.NetDir)) error {
	missing := bld.MissingMicrodescs()
	if len(missing) > 0 {
		view := nd
		if view == nil {
			// A cold bootstrap: the consensus alone (dropped once bld
			// was made) names the caches and guards.
			prov, err := bld.Provisional()
			if err != nil {
				return err
			}
			view = prov
		}
		first := b.primaryDigests(view)
		missing, first = putFirst(missing, first)
		if onEnough != nil && len(first) == 0 {
			if di := bld.DirInfo(); di.Enough(0) {
				snap, err := bld.Snapshot()
				if err != nil {
					return err
				}
				onEnough(snap)
				onEnough = nil
			}
		}
		b.phase(PhaseMicrodescs, 50, fmt.Sprintf("downloading %d microdescriptors", len(missing)))
		b.fetchMicrodescs(ctx, bld, view, missing, first, onEnough)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	di := bld.DirInfo()
	b.mdProgress(di)
	if !di.Enough(di.Threshold) {
		return fmt.Errorf("%w: %d of %d usable relays have one (paths %.0f%%, need %.0f%%)",
			ErrNotEnoughDirInfo, di.Present, di.Usable, 100*di.Paths, 100*di.Threshold)
	}
	return nil
}

// primaryDigests returns the microdescriptor digests of the primary
// guards in nd (Config.PrimaryGuards).
func (b *Bootstrapper) primaryDigests(nd *netdir.NetDir) [][32]byte {
	if b.cfg.PrimaryGuards == nil {
		return nil
	}
	var out [][32]byte
	for _, r := range b.cfg.PrimaryGuards(nd) {
		out = append(out, r.MicrodescDigest)
	}
	return out
}

// putFirst moves the digests of first that missing holds to its front,
// keeping the order of the rest, and returns the new list and those moved.
func putFirst(missing, first [][32]byte) (_, moved [][32]byte) {
	if len(first) == 0 {
		return missing, nil
	}
	want := make(map[[32]byte]bool, len(first))
	for _, d := range first {
		want[d] = true
	}
	out := make([][32]byte, 0, len(missing))
	for _, d := range missing {
		if want[d] {
			out = append(out, d)
			delete(want, d)
		}
	}
	moved = out[:len(out):len(out)]
	for _, d := range missing {
		if !slices.Contains(moved, d) {
			out = append(out, d)
		}
	}
	return out, moved
}

// fetchMicrodescs fetches missing, in order, from the caches of nd (the
// directory guards first). first are the digests onEnough waits for
// besides DirInfo's Enough.
func (b *Bootstrapper) fetchMicrodescs(ctx context.Context, bld *netdir.Builder, nd *netdir.NetDir, missing, first [][32]byte, onEnough func(*netdir.NetDir)) {
	// How many caches to use: enough that each gets a batch that
	// compresses well, at most Parallel.
	k := min(b.parallel, (len(missing)+minMicrodescsPerSource-1)/minMicrodescsPerSource)
	k = max(k, 1)
	per := min(b.mdPerRequest, (len(missing)+k-1)/k)
	var queue []*mdBatch
	for i := 0; i < len(missing); i += per {
		queue = append(queue, &mdBatch{digests: missing[i:min(i+per, len(missing))]})
	}
	waitFor := make(map[[32]byte]bool, len(first))
	for _, d := range first {
		waitFor[d] = true
	}

	sources := b.cacheSources(nd, 4*b.parallel, nil)
	sources = append(sources, b.bootstrapSources(nil)...) // authorities last
	guards := b.dirGuardSources(nd)
	nd = nil
	// The cache that just served the consensus goes first: reusing its
	// open circuit saves a TLS handshake and several round trips, which
	// on a slow link cost more than the parallelism gains. Authorities
	// are not asked again (dir-spec 5.1).
	b.mu.Lock()
	last := b.lastSource
	b.lastSource = nil
	b.mu.Unlock()
	if last != nil && !last.authority {
		sources = preferSources([]*source{last}, sources)
	}
	// Directory guards go before everything: the first of them will be
	// the first hop of circuits too, so its connection is not wasted.
	sources = preferSources(guards, sources)

	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		inflight int
		next     int
		bldMu    sync.Mutex
		wg       sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer stop()
	nextSource := func() *source { // mu held
		if next >= len(sources) {
			return nil
		}
		next++
		return sources[next-1]
	}
	worker := func(src *source) {
		defer wg.Done()
		for src != nil {
			mu.Lock()
			for len(queue) == 0 && inflight > 0 && ctx.Err() == nil {
				cond.Wait()
			}
			if len(queue) == 0 || ctx.Err() != nil {
				mu.Unlock()
				return
			}
			bt := queue[0]
			queue = queue[1:]
			inflight++
			mu.Unlock()

			rest, err := b.microdescBatch(ctx, src, bt.digests, bld, &bldMu)

			mu.Lock()
			inflight--
			if len(rest) > 0 {
				if bt.tries+1 < maxAttempts {
					queue = append(queue, &mdBatch{digests: rest, tries: bt.tries + 1})
				} else {
					b.logf("bootstrap: giving up on %d microdescriptors after %d attempts", len(rest), maxAttempts)
				}
			}
			if err != nil {
				b.count(func(s *Stats) { s.RequestFailures++ })
				b.logf("bootstrap: microdescriptors from %s: %v", src.name, err)
				src = nextSource()
			}
			if onEnough != nil && len(rest) < len(bt.digests) {
				for _, d := range bt.digests {
					if waitFor[d] && !slices.Contains(rest, d) {
						delete(waitFor, d)
					}
				}
				if len(waitFor) == 0 && len(queue)+inflight > 0 {
					bldMu.Lock()
					var snap *netdir.NetDir
					if bld.DirInfo().Enough(0) {
						var serr error
						if snap, serr = bld.Snapshot(); serr != nil {
							b.logf("bootstrap: %v", serr)
						}
					}
					bldMu.Unlock()
					if snap != nil {
						onEnough(snap)
						onEnough = nil
					}
				}
			}
			cond.Broadcast()
			mu.Unlock()
		}
	}
	mu.Lock()
	for i := 0; i < k; i++ {
		if src := nextSource(); src != nil {
			wg.Add(1)
			go worker(src)
		}
	}
	mu.Unlock()
	wg.Wait()
}

// mdSizeHint guesses the decoded size of n microdescriptors from the
// average of those received so far (defaultMicrodescSize before that),
// with an eighth to spare. A zstd body larger than its hint is decoded
// again into a buffer twice as large, so a low guess costs a second
// decode and a buffer of twice the size; the average is far from
// constant (about 560 bytes in 2019, several times that for networks
// whose operators list large families).
func (b *Bootstrapper) mdSizeHint(n int) int {
	b.mu.Lock()
	sum, count := b.mdBytes, b.mdCount
	b.mu.Unlock()
	per := int64(defaultMicrodescSize)
	if count >= minMicrodescsPerSource {
		per = sum/count + 1
	}
	return int(min(per*int64(n)*9/8+1024, maxMicrodescBatchSize))
}

// microdescBatch fetches digests from src, adds what arrives to bld and the
// store, and returns the digests still missing. Complete descriptors of a
// truncated answer are kept.
func (b *Bootstrapper) microdescBatch(ctx context.Context, src *source, digests [][32]byte, bld *netdir.Builder, bldMu *sync.Mutex) ([][32]byte, error) {
	var path strings.Builder
	path.Grow(len("/tor/micro/d/") + 44*len(digests))
	path.WriteString("/tor/micro/d/")
	for i, d := range digests {
		if i > 0 {
			path.WriteByte('-')
		}
		path.WriteString(base64.RawStdEncoding.EncodeToString(d[:]))
	}
	req := &dirclient.Request{Path: path.String(), MaxBody: maxMicrodescBatchSize, SizeHint: b.mdSizeHint(len(digests))}
	resp, fetchErr := b.fetch.do(ctx, src, kindMicrodescs, req)
	if resp == nil || len(resp.Body) == 0 {
		if fetchErr == nil {
			fetchErr = errors.New("empty answer")
		}
		return digests, fetchErr
	}
	body := resp.Body
	mds, perr := netdoc.ParseMicrodescs(body)
	if len(mds) > 0 {
		b.mu.Lock()
		b.mdBytes += int64(len(body))
		b.mdCount += int64(len(mds))
		b.mu.Unlock()
	}
	if perr != nil && fetchErr == nil {
		b.logf("bootstrap: microdescriptors from %s: %v", src.name, perr)
	}
	want := make(map[[32]byte]bool, len(digests))
	for _, d := range digests {
		want[d] = true
	}
	keep := mds[:0]
	var toStore []dircache.Microdesc
	for _, md := range mds {
		if !want[md.Digest] {
			continue // unrequested, duplicate, or cut short: discard
		}
		delete(want, md.Digest)
		keep = append(keep, md)
		s, e := md.Extent()
		toStore = append(toStore, dircache.Microdesc{Digest: md.Digest, Text: body[s:e]})
	}
	bldMu.Lock()
	_, aerr := bld.AddMicrodescs(keep)
	di := bld.DirInfo()
	bldMu.Unlock()
	if aerr != nil {
		b.logf("bootstrap: adding microdescriptors: %v", aerr)
	}
	b.count(func(s *Stats) { s.MicrodescsFetched += len(keep) })
	b.mdProgress(di)
	if len(toStore) > 0 {
		b.storeErr("microdescriptors", b.cfg.Store.PutMicrodescs(b.clock.Now(), toStore))
	}
	var rest [][32]byte
	for _, d := range digests {
		if want[d] {
			rest = append(rest, d)
		}
	}
	if fetchErr == nil && len(rest) > 0 {
		fetchErr = fmt.Errorf("answer lacked %d of %d microdescriptors", len(rest), len(digests))
	}
	return rest, fetchErr
}
