package memquota

import (
	"cmp"
	"slices"
	"time"
)

// candidate is a participation that held bytes when reclamation started.
type candidate struct {
	p      *Participation
	oldest time.Time
	known  bool // false: it held bytes but reported no data age
	used   int64
}

// run is the reclaim goroutine. It sleeps until a claim crosses the limit,
// a ReclaimTo request arrives, or Close.
func (t *Tracker) run() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case <-t.wake:
			if t.total.Load() > t.limits.Load().limit {
				t.reclaim(-1)
			}
		case r := <-t.reqs:
			t.reclaim(r.target)
			close(r.done)
		}
	}
}

func (t *Tracker) stopping() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// reclaim collapses accounts, the one whose participant holds the oldest
// data first, until usage is at or below target (target < 0: the current
// low-water mark, re-read at each pass so SetLimit applies at once).
func (t *Tracker) reclaim(target int64) {
	goal := func() int64 {
		if target >= 0 {
			return target
		}
		return t.limits.Load().lowWater
	}
	if t.total.Load() <= goal() {
		return
	}
	t.reclaims.Add(1)
	limit, _ := t.Limits()
	t.logf("memquota: reclaiming: %d bytes used, limit %d, target %d", t.total.Load(), limit, goal())
	for !t.stopping() {
		cands := t.candidates()
		n := t.collapse(cands, goal())
		clear(cands) // drop pointers to dead participations
		switch {
		case t.total.Load() <= goal():
			t.logf("memquota: reclaimed down to %d bytes", t.total.Load())
			return
		case n == 0:
			// What is left is in flight between a participation's
			// counter and the total; nothing holds it that we can collapse.
			t.logf("memquota: reclaim stopped at %d bytes: nothing left to collapse", t.total.Load())
			return
		}
		// Claims arrived while we were collapsing: look again.
	}
}

// candidates lists every participation holding bytes, oldest data first;
// those that hold bytes but report no data come last, largest first. It
// asks participants for their ages without holding the tree lock.
func (t *Tracker) candidates() []candidate {
	cands := t.cands[:0]
	t.mu.Lock()
	for p := range t.parts {
		if u := p.Used(); u > 0 {
			cands = append(cands, candidate{p: p, used: u})
		}
	}
	t.mu.Unlock()
	for i := range cands {
		c := &cands[i]
		c.oldest, c.known = c.p.p.Oldest()
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.known != b.known:
			if a.known {
				return -1
			}
			return 1
		case a.known:
			if c := a.oldest.Compare(b.oldest); c != 0 {
				return c
			}
		default:
			if c := cmp.Compare(b.used, a.used); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.p.id, b.p.id)
	})
	t.cands = cands
	return cands
}

// victim is one collapsed subtree, for the callbacks and the log.
type victim struct {
	err      *ReclaimedError
	parts    []*Participation
	accounts int64
	freed    int64
}

// collapse walks the candidates in order and collapses each one's account
// and descendants until usage is at or below goal, all under one hold of
// the tree lock so claimers cannot stretch the pass. A candidate is skipped
// if its account went, or it drained its data, since it was listed. Then,
// with the lock released, it tells every participant of every collapsed
// account. It returns the number of subtrees collapsed.
func (t *Tracker) collapse(cands []candidate, goal int64) int {
	now := t.now()
	var victims []victim
	t.mu.Lock()
	for i := range cands {
		if t.total.Load() <= goal {
			break
		}
		c := &cands[i]
		a := c.p.acct
		if a.Err() != nil || c.p.used.Load() <= 0 {
			continue
		}
		v := victim{err: &ReclaimedError{Account: a.name}}
		if c.known {
			v.err.Age = max(now.Sub(c.oldest), 0)
		}
		v.parts, v.freed, v.accounts = t.detachLocked(a, v.err, nil)
		victims = append(victims, v)
	}
	t.mu.Unlock()

	for _, v := range victims {
		t.collapsed.Add(v.accounts)
		t.freed.Add(v.freed)
		t.logf("memquota: collapsed account %q (%d accounts, %d bytes; oldest data %v old)", v.err.Account, v.accounts, v.freed, v.err.Age)
		for _, p := range v.parts {
			p.p.Reclaimed(v.err)
		}
	}
	return len(victims)
}
