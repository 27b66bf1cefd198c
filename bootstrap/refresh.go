package bootstrap

import (
	"context"
	"errors"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
)

// Run keeps the directory current until ctx ends or the Bootstrapper is
// closed: it bootstraps if needed (retrying with backoff), then fetches
// each new consensus on the configured Schedule. It returns ctx's error or
// ErrClosed.
func (b *Bootstrapper) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	failures := 0
	for {
		for b.dormant.Load() {
			// Dormant: no wake-ups, no traffic, until SetDormant(false).
			select {
			case <-b.kick:
			case <-ctx.Done():
				return b.runErr(ctx)
			}
		}
		var wait time.Duration
		nd := b.NetDir()
		select {
		case <-b.ready:
		default:
			nd = nil
		}
		if nd == nil {
			if err := b.Bootstrap(ctx); err != nil {
				if ctx.Err() != nil {
					return b.runErr(ctx)
				}
				failures++
				wait = backoff(failures, 5*time.Second, 5*time.Minute)
				b.logf("bootstrap: failed (%v); retrying in %v", err, wait)
				if b.cfg.OnBootstrapError != nil {
					b.cfg.OnBootstrapError(err)
				}
			} else {
				failures = 0
				continue
			}
		} else if failures > 0 {
			wait = backoff(failures, retryBase(nd), retryBase(nd)*16)
		} else {
			wait = b.nextFetch(nd).Sub(b.clock.Now())
		}
		if wait > 0 {
			select {
			case <-b.clock.After(wait):
			case <-b.kick:
				// Woken (network back, app resumed): refresh only if the
				// consensus is no longer fresh; otherwise recompute.
				if nd != nil && b.clock.Now().Before(nd.FreshUntil()) {
					failures = 0
					continue
				}
			case <-ctx.Done():
				return b.runErr(ctx)
			}
		}
		if nd == nil || b.dormant.Load() {
			continue
		}
		if err := b.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return b.runErr(ctx)
			}
			failures++
			b.logf("bootstrap: refresh failed (%v)", err)
			continue
		}
		failures = 0
	}
}

func (b *Bootstrapper) runErr(ctx context.Context) error {
	if b.isClosed() {
		return ErrClosed
	}
	return ctx.Err()
}

// SetDormant stops (true) or resumes (false) Run's directory fetches, for
// an app in the background. Resuming checks for a new consensus at once
// if the current one is no longer fresh.
func (b *Bootstrapper) SetDormant(dormant bool) {
	b.dormant.Store(dormant)
	if !dormant {
		b.Kick()
	}
}

// Kick makes Run check for a new consensus now (for example after the
// network came back or the app woke up).
func (b *Bootstrapper) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func backoff(n int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// retryBase is the first retry delay after a failed refresh: a thirtieth
// of the fresh interval (two minutes on the live network), at least 2 s.
func retryBase(nd *netdir.NetDir) time.Duration {
	return max(nd.FreshUntil().Sub(nd.ValidAfter())/30, 2*time.Second)
}

// nextFetch is when the next consensus should be fetched.
func (b *Bootstrapper) nextFetch(nd *netdir.NetDir) time.Time {
	va, fu, vu := nd.ValidAfter(), nd.FreshUntil(), nd.ValidUntil()
	interval := fu.Sub(va)
	var t time.Time
	switch b.cfg.Schedule {
	case ScheduleDirSpec:
		start := fu.Add(interval * 3 / 4)
		end := start.Add(vu.Sub(start) * 7 / 8)
		t = start.Add(b.randDuration(end.Sub(start)))
	default:
		// Caches need a moment to get the new consensus; spreading over
		// the first twelfth of the interval avoids swarming them.
		t = fu.Add(b.randDuration(interval / 12))
	}
	if now := b.clock.Now(); t.Before(now) {
		return now
	}
	return t
}

// Refresh fetches a newer consensus (as a diff when the cached one is
// recent) and the microdescriptors it adds, and publishes the new view.
// It fails if no source has a newer consensus.
func (b *Bootstrapper) Refresh(ctx context.Context) error {
	prev := b.NetDir()
	if prev == nil {
		return b.Bootstrap(ctx)
	}
	if err := b.lockBoot(ctx, false); err != nil {
		return err
	}
	defer b.unlockBoot()
	if cur := b.NetDir(); cur.ValidAfter().After(prev.ValidAfter()) {
		// A newer consensus was published while this call waited for
		// the lock (the background fetch after a start from an expired
		// consensus): what was asked for is done.
		return nil
	}
	return b.refreshLocked(ctx, prev)
}

// refreshLocked is Refresh with the bootstrap lock held. Success also
// closes Complete (a start from an expired consensus is complete once a
// newer one is in).
func (b *Bootstrapper) refreshLocked(ctx context.Context, prev *netdir.NetDir) error {
	if b.isClosed() {
		return ErrClosed
	}
	defer b.fetch.closeAll()
	cached, err := b.cfg.Store.Consensus(flavor)
	if err != nil {
		if !errors.Is(err, dircache.ErrNotFound) {
			b.logf("bootstrap: stored consensus unusable as a diff base: %v", err)
		}
		cached = nil
	}
	if cached != nil && cached.SignedDigest != prev.ConsensusDigests().SignedSHA3 {
		// The store lost or replaced our consensus (a full disk, say):
		// a diff from something we did not verify is not wanted.
		cached = nil
	}
	sources := preferSources(b.dirGuardSources(prev), b.bootstrapSources(prev))
	cons, src, err := b.fetchConsensus(ctx, sources, cached, true, true)
	if err != nil {
		return err
	}
	bld, err := netdir.NewBuilder(cons, prev)
	cons = nil // bld has what it needs of it
	if err != nil {
		return err
	}
	if err := b.completeMicrodescs(ctx, bld, prev, nil); err != nil {
		return err
	}
	nd, err := bld.Build()
	if err != nil {
		return err
	}
	b.publish(nd)
	b.markStored(nd)
	b.count(func(s *Stats) { s.Refreshes++; s.ConsensusSource = src })
	b.markComplete()
	return nil
}
