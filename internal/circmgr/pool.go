package circmgr

import (
	"slices"
	"time"

	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/pathsel"
)

// openLocked reports whether c may take a new stream of some key: alive,
// through a usable guard, not retired and not too dirty.
func (m *Manager) openLocked(c *circ, now time.Time) bool {
	if c.unusable || c.undecided || c.h.Err() != nil {
		return false
	}
	return c.dirtySince.IsZero() || now.Sub(c.dirtySince) < m.cfg.MaxDirtiness
}

// usableForLocked reports whether c may carry a stream of key to port
// (port 0: a RESOLVE, which any exit serves).
func (m *Manager) usableForLocked(c *circ, key IsolationKey, port uint16, now time.Time) bool {
	if c.claimed && c.key != key {
		return false
	}
	if !m.openLocked(c, now) || (longLived(port) && !c.stable) {
		return false
	}
	return m.exitServesLocked(c.exit(), c.policy, c.rejected, port)
}

// longLived reports whether streams to port need a circuit of Stable
// relays (path-spec 2.2's LongLivedPorts).
func longLived(port uint16) bool {
	return port != 0 && slices.Contains(pathsel.LongLivedPorts, port)
}

// exitServesLocked reports whether an exit with the given policy summary
// serves port, given what it refused before.
func (m *Manager) exitServesLocked(exit [20]byte, policy *netdoc.PortPolicy, rejected []uint16, port uint16) bool {
	ban := m.bans[exit]
	if ban != nil && ban.all {
		return false
	}
	if port == 0 {
		return policy.AllowsAny()
	}
	if !policy.Allows(port) || slices.Contains(rejected, port) {
		return false
	}
	return ban == nil || !slices.Contains(ban.ports, port)
}

// banLocked records that exit refused port (0: everything) until the next
// network view.
func (m *Manager) banLocked(exit [20]byte, port uint16) {
	b := m.bans[exit]
	if b == nil {
		b = &exitBan{}
		m.bans[exit] = b
	}
	if port == 0 {
		b.all = true
	} else if !slices.Contains(b.ports, port) {
		b.ports = append(b.ports, port)
	}
}

// pickLocked chooses the circuit for a stream of key to port, as C tor's
// circuit_is_better does: a circuit already dirty is preferred to a clean
// one (clean ones stay available to other keys), the most recently
// dirtied first; among clean ones the newest.
func (m *Manager) pickLocked(key IsolationKey, port uint16, now time.Time) *circ {
	var best *circ
	for _, c := range m.circs {
		if !m.usableForLocked(c, key, port, now) {
			continue
		}
		if best == nil || better(c, best) {
			best = c
		}
	}
	return best
}

func better(a, b *circ) bool {
	ad, bd := !a.dirtySince.IsZero(), !b.dirtySince.IsZero()
	switch {
	case ad && bd:
		return a.dirtySince.After(b.dirtySince)
	case ad != bd:
		return ad
	case a.claimed != b.claimed:
		return a.claimed // built for this key
	}
	return a.built.After(b.built)
}

// claimLocked gives c to key and marks it dirty: it now carries (or is
// about to carry) a request.
func (m *Manager) claimLocked(c *circ, key IsolationKey, now time.Time) {
	c.claimed, c.key = true, key
	if c.dirtySince.IsZero() {
		c.dirtySince = now
	}
	c.inflight++
	c.idleSince = time.Time{}
}

// undecidedForLocked reports whether a circuit that would serve key and
// port waits only for its guard to be judged usable.
func (m *Manager) undecidedForLocked(key IsolationKey, port uint16, now time.Time) bool {
	for _, c := range m.circs {
		if !c.undecided {
			continue
		}
		c.undecided = false
		ok := m.usableForLocked(c, key, port, now)
		c.undecided = true
		if ok {
			return true
		}
	}
	return false
}
