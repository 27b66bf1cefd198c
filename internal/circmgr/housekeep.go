package circmgr

import (
	"time"

	"github.com/onionlite/onionlite/pathsel"
	"github.com/onionlite/onionlite/pathsel/guard"
)

// loop is the background goroutine: it retires circuits and keeps the
// preemptive ones coming, waking when something changed or when the next
// deadline comes.
func (m *Manager) loop() {
	defer m.wg.Done()
	for {
		d := m.housekeep()
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		case <-m.clk.After(d):
		}
	}
}

// housekeep does one pass over the pool and returns how long it may sleep.
func (m *Manager) housekeep() time.Duration {
	m.refreshNetDir()
	var closing []circHandle
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return netDirPoll
	}
	now := m.clk.Now()
	next := netDirPoll
	soon := func(d time.Duration) { next = max(min(next, d), 10*time.Millisecond) }
	preempt := m.preemptActiveLocked(now)
	kept := 0
	keep := m.circs[:0]
	for _, c := range m.circs {
		if c.h.Err() != nil {
			m.st.Lost++
			continue
		}
		if c.undecided {
			switch m.guards.Usable(c.ticket, now) {
			case guard.Usable:
				c.undecided = false
				m.notifyLocked()
			case guard.Unusable:
				closing = append(closing, c.h)
				m.notifyLocked()
				continue
			default:
				soon(undecidedPoll)
			}
		}
		if c.inflight > 0 || c.h.Streams() > 0 {
			c.idleSince = time.Time{}
			keep = append(keep, c)
			continue
		}
		if c.idleSince.IsZero() {
			c.idleSince = now
		}
		dirty := !c.dirtySince.IsZero()
		if c.unusable || (dirty && now.Sub(c.dirtySince) >= m.cfg.MaxDirtiness) {
			closing = append(closing, c.h)
			continue
		}
		if !c.claimed && preempt && kept < m.cfg.Preemptive {
			kept++
			keep = append(keep, c)
			continue
		}
		idle := now.Sub(c.idleSince)
		if idle >= m.cfg.IdleTimeout {
			closing = append(closing, c.h)
			continue
		}
		soon(m.cfg.IdleTimeout - idle)
		if dirty {
			soon(m.cfg.MaxDirtiness - now.Sub(c.dirtySince))
		}
		keep = append(keep, c)
	}
	clear(m.circs[len(keep):])
	m.circs = keep
	m.st.Closed += int64(len(closing))
	if preempt {
		if d := m.preemptLocked(now); d > 0 {
			soon(d)
		}
	}
	m.mu.Unlock()
	for _, h := range closing {
		h.Close()
	}
	return next
}

// preemptActiveLocked reports whether clean circuits should be kept ready:
// configured, not dormant, a usable directory, and a request in the last
// PredictionWindow (or the manager is that new).
func (m *Manager) preemptActiveLocked(now time.Time) bool {
	return m.cfg.Preemptive > 0 && !m.dormant && m.nd != nil && m.ndErr == nil &&
		now.Sub(m.lastActivity) < PredictionWindow
}

// preemptLocked starts builds until Preemptive clean circuits exist or are
// under way. After failures it backs off; it returns how long until it
// may try again (0: no wait).
func (m *Manager) preemptLocked(now time.Time) time.Duration {
	if now.Before(m.preemptAt) {
		return m.preemptAt.Sub(now)
	}
	have := 0
	for _, c := range m.circs {
		if !c.claimed && m.openLocked(c, now) {
			have++
		}
	}
	for _, b := range m.pending {
		if !b.forKey && !b.released {
			have++
		}
	}
	for ; have < m.cfg.Preemptive; have++ {
		if _, err := m.launchLocked(pathsel.Target{Ports: m.cfg.PreemptivePorts}, IsolationKey{}, false, nil, now); err != nil {
			m.preemptFails++
			m.preemptAt = now.Add(min(5*time.Second<<min(m.preemptFails-1, 6), 5*time.Minute))
			m.logf("circmgr: no preemptive circuit: %v", err)
			return m.preemptAt.Sub(now)
		}
	}
	return 0
}
