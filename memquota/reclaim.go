package memquota

import (
	"cmp"
	"slices"
	"sync"
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
			if t.total.Load() > t.limits.Load().limit && !t.stopping() {
				t.reclaim(-1, nil)
			}
		case r := <-t.reqs:
			// The caller waits until the participants are told, but we do
			// not: a callback may claim, and may need us to make progress.
			told := new(sync.WaitGroup)
			t.reclaim(r.target, told)
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				told.Wait()
				close(r.done)
			}()
		}
		// Claims waiting on the hard limit kick us before they wait; usage
		// may have fallen below it by releases alone, with nothing to
		// reclaim. Either way, they look again.
		t.signalProgress()
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
// low-water mark, re-read at each pass so SetLimits applies at once).
// Participants are told on other goroutines; if told is not nil, it counts
// them.
func (t *Tracker) reclaim(target int64, told *sync.WaitGroup) {
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
	t.logf("memquota: reclaiming: %d bytes used, limit %d, target %d", t.total.Load(), t.Limits().Limit, goal())
	for !t.stopping() {
		cands := t.candidates()
		n := t.collapse(cands, goal(), told)
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
// if its account went, or it drained its data, since it was listed. It
// then wakes claims waiting on the hard limit, and starts a goroutine that
// tells every participant of every collapsed account: the bytes are
// already forgotten, and a participant's Reclaimed may need a lock held by
// a claimer that is waiting for exactly that. It returns the number of
// subtrees collapsed.
func (t *Tracker) collapse(cands []candidate, goal int64, told *sync.WaitGroup) int {
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
		v := victim{err: &ReclaimedError{Account: a.name, Seq: t.collapseSeq.Add(1)}}
		if c.known {
			v.err.Age = max(now.Sub(c.oldest), 0)
			v.err.Oldest = c.oldest
		}
		v.parts, v.freed, v.accounts = t.detachLocked(a, v.err, nil)
		t.pruneLocked(a.parent) // a retired parent may now be empty
		victims = append(victims, v)
	}
	t.mu.Unlock()
	if len(victims) == 0 {
		return 0
	}
	t.signalProgress()

	for _, v := range victims {
		t.collapsed.Add(v.accounts)
		t.freed.Add(v.freed)
		t.logf("memquota: collapsed account %q (%d accounts, %d bytes; oldest data %v old)", v.err.Account, v.accounts, v.freed, v.err.Age)
	}
	t.wg.Add(1)
	if told != nil {
		told.Add(1)
	}
	go func() {
		defer t.wg.Done()
		if told != nil {
			defer told.Done()
		}
		for _, v := range victims {
			for _, p := range v.parts {
				p.p.Reclaimed(v.err)
			}
		}
	}()
	return len(victims)
}
