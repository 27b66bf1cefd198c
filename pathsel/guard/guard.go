package guard

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/pathsel"
)

// Errors; match them with errors.Is.
var (
	// ErrNoNetDir: Select was called before SetNetDir.
	ErrNoNetDir = errors.New("guard: no network directory yet")
	// ErrNoGuard: no sampled guard fits the usage (every one is
	// excluded by its restrictions, or the sample is empty).
	ErrNoGuard = errors.New("guard: no usable guard")
	// ErrMissingDescriptors: the first usable primary guards lack
	// microdescriptors; guard-spec 4.12 says to build no circuit until
	// they are fetched. The error is a *MissingDescriptorsError.
	ErrMissingDescriptors = errors.New("guard: primary guards lack microdescriptors")
	// ErrBadState: persisted state that cannot be loaded.
	ErrBadState = errors.New("guard: bad persisted state")
)

// MissingDescriptorsError lists the microdescriptors to fetch before
// circuits can use the primary guards.
type MissingDescriptorsError struct{ Digests [][32]byte }

func (e *MissingDescriptorsError) Error() string {
	return fmt.Sprintf("guard: %d primary guards lack microdescriptors", len(e.Digests))
}

// Is matches ErrMissingDescriptors.
func (e *MissingDescriptorsError) Is(target error) bool { return target == ErrMissingDescriptors }

// Reachability is what is known about reaching a guard (guard-spec
// is_reachable).
type Reachability uint8

const (
	// Unknown: worth trying ("maybe").
	Unknown Reachability = iota
	// Reachable: the last attempt succeeded.
	Reachable
	// Unreachable: the last attempt failed; retried after a randomized
	// delay (proposal 336).
	Unreachable
)

func (r Reachability) String() string {
	return [...]string{"unknown", "reachable", "unreachable"}[min(int(r), 2)]
}

// Config is fixed for a Manager. The zero value is Tor's default.
type Config struct {
	// Filter, if not nil, restricts which sampled guards may be used
	// (guard-spec FILTERED_GUARDS: reachable addresses and similar
	// configuration). Sampling ignores it, as the spec says.
	Filter func(nd *netdir.NetDir, i netdir.RelayIndex) bool
	// AllowSameSubnet: a guard may share a subnet with an excluded relay
	// (test networks on 127.0.0.1; see pathsel.Config).
	AllowSameSubnet bool
	// Params, if not nil, replaces the consensus parameters.
	Params *Params
}

// Usage says what a guard is wanted for.
type Usage struct {
	// Dir: a one-hop directory request. Directory requests spread over
	// more primary guards and need no microdescriptor.
	Dir bool
	// Exclude lists relays the guard must not be, nor share a family or
	// subnet with (for example the exit already chosen for the circuit).
	Exclude [][20]byte
}

// Ticket is a guard handed out by Select. Report how using it went with
// Succeeded or Failed; for a non-primary guard, ask Usable before using
// the circuit.
type Ticket struct {
	ID [20]byte
	// Relay is the guard's index in the NetDir current when Select ran.
	Relay netdir.RelayIndex
	// Primary tickets are usable as soon as the circuit completes.
	Primary bool
	usage   Usage
	issued  time.Time
}

// Status is the answer of Usable.
type Status uint8

const (
	// Undecided: keep the circuit but do not use it yet; ask again.
	Undecided Status = iota
	// Usable: use the circuit.
	Usable
	// Unusable: a better guard is known to work (or the wait timed
	// out); close the circuit.
	Unusable
)

func (s Status) String() string {
	return [...]string{"undecided", "usable", "unusable"}[min(int(s), 2)]
}

// entry is one sampled guard.
type entry struct {
	// Persistent (guard-spec 4.1, 4.3).
	id            [20]byte
	addedOn       time.Time
	listed        bool
	unlistedSince time.Time // zero while listed
	confirmedOn   time.Time // zero unless confirmed
	extra         []string  // unrecognized K=V fields, kept verbatim

	// Transient.
	idx          netdir.RelayIndex
	reach        Reachability
	failingSince time.Time
	lastTried    time.Time
	pending      bool
	pendingSince time.Time
	retryAt      time.Time
	lastDelay    time.Duration
	primary      bool
}

// Manager keeps one guard state instance (guard-spec section 2: the
// default instance). It is not safe for concurrent use; time and
// randomness are arguments.
type Manager struct {
	cfg            Config
	params         Params
	nd             *netdir.NetDir
	sampled        []*entry // sample order
	confirmed      []*entry // confirmation order
	primary        []*entry
	lastOnInternet time.Time
	gen            uint64
}

// New returns a Manager with an empty sample.
func New(cfg Config) *Manager {
	m := &Manager{cfg: cfg, params: DefaultParams()}
	if cfg.Params != nil {
		m.params = *cfg.Params
	}
	return m
}

// Generation increases whenever the persistent state changes: save
// MarshalBinary's output when it differs from the last saved one.
func (m *Manager) Generation() uint64 { return m.gen }

// Params returns the parameters in force.
func (m *Manager) Params() Params { return m.params }

// SetNetDir installs a new, reasonably live network directory
// (guard-spec 4.10): it updates which sampled guards are listed, drops
// expired ones, recomputes the primary guards and, if needed, samples
// more guards.
func (m *Manager) SetNetDir(nd *netdir.NetDir, now time.Time, rnd pathsel.Rand) {
	m.nd = nd
	if m.cfg.Params == nil {
		m.params = ParamsFrom(nd.Params())
	}
	for _, e := range m.sampled {
		i, ok := nd.ByID(e.id)
		if !ok {
			i = netdir.NoRelay
		}
		e.idx = i
		listed := ok && isGuard(nd, i)
		if listed == e.listed {
			continue
		}
		e.listed = listed
		if listed {
			e.unlistedSince = time.Time{}
		} else {
			e.unlistedSince = randPast(now, m.params.RemoveUnlistedAfter/5, rnd)
		}
		m.gen++
	}
	m.expire(now)
	m.updatePrimary()
	m.expand(now, rnd)
}

// isGuard is membership of guard-spec's GUARDS: Guard, Stable, Fast,
// Valid and V2Dir (C tor's node_is_possible_guard), and Running.
func isGuard(nd *netdir.NetDir, i netdir.RelayIndex) bool {
	return nd.Flags(i).Has(netdir.FlagGuard | netdir.FlagStable | netdir.FlagFast | netdir.FlagValid | netdir.FlagV2Dir | netdir.FlagRunning)
}

// expire drops sampled guards as guard-spec 4.1 says.
func (m *Manager) expire(now time.Time) {
	p := m.params
	keep := m.sampled[:0]
	for _, e := range m.sampled {
		gone := (!e.listed && !e.unlistedSince.IsZero() && !now.Before(e.unlistedSince.Add(p.RemoveUnlistedAfter))) ||
			(!now.Before(e.addedOn.Add(p.Lifetime)) && (e.confirmedOn.IsZero() || !now.Before(e.confirmedOn.Add(p.ConfirmedMinLifetime))))
		if gone {
			m.gen++
			if i := slices.Index(m.confirmed, e); i >= 0 {
				m.confirmed = slices.Delete(m.confirmed, i, i+1)
			}
			if i := slices.Index(m.primary, e); i >= 0 {
				m.primary = slices.Delete(m.primary, i, i+1)
			}
			continue
		}
		keep = append(keep, e)
	}
	clear(m.sampled[len(keep):])
	m.sampled = keep
}

// filtered: sampled, listed, present in the NetDir and allowed by the
// configuration (guard-spec 4.2).
func (m *Manager) filtered(e *entry) bool {
	return m.nd != nil && e.listed && e.idx != netdir.NoRelay && (m.cfg.Filter == nil || m.cfg.Filter(m.nd, e.idx))
}

func (m *Manager) usableFiltered(e *entry) bool { return m.filtered(e) && e.reach != Unreachable }

// updatePrimary recomputes PRIMARY_GUARDS (guard-spec 4.4, as C tor's
// entry_guards_update_primary): confirmed filtered guards first, then
// earlier primaries still filtered, then filtered guards in sample order.
func (m *Manager) updatePrimary() {
	old := m.primary
	var out []*entry
	add := func(e *entry) {
		if len(out) < m.params.NPrimary && m.filtered(e) && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	for _, list := range [][]*entry{m.confirmed, old, m.sampled} {
		for _, e := range list {
			add(e)
		}
	}
	for _, e := range m.sampled {
		e.primary = slices.Contains(out, e)
	}
	m.primary = out
}

// maxSample is C tor's get_max_sample_size.
func (m *Manager) maxSample(nGuards int) int {
	mx := min(int(float64(nGuards)*m.params.MaxSampleThreshold), m.params.MaxSampleSize)
	return max(mx, m.params.MinFilteredSample)
}

// expand adds guards to the sample until enough are usable and filtered
// or the sample is full (guard-spec 4.2; C tor's
// entry_guards_expand_sample).
func (m *Manager) expand(now time.Time, rnd pathsel.Rand) {
	if m.nd == nil {
		return
	}
	usable := 0
	for _, e := range m.sampled {
		if m.usableFiltered(e) {
			usable++
		}
	}
	if usable >= m.params.MinFilteredSample {
		return
	}
	nd := m.nd
	in := make([]bool, nd.Len())
	for _, e := range m.sampled {
		if e.idx != netdir.NoRelay {
			in[e.idx] = true
		}
	}
	nGuards := 0
	for i := 0; i < nd.Len(); i++ {
		if isGuard(nd, netdir.RelayIndex(i)) {
			nGuards++
		}
	}
	limit := m.maxSample(nGuards)
	added := false
	for usable < m.params.MinFilteredSample && len(m.sampled) < limit {
		i, ok := pickForSample(nd, in, rnd)
		if !ok {
			break
		}
		in[i] = true
		e := &entry{id: nd.ID(i), addedOn: randPast(now, m.params.Lifetime/10, rnd), listed: true, idx: i}
		m.sampled = append(m.sampled, e)
		added = true
		if m.usableFiltered(e) {
			usable++
		}
	}
	if added {
		m.gen++
		m.updatePrimary()
	}
}

// pickForSample draws a relay from GUARDS minus the sample, weighted by
// guard bandwidth-weights (uniformly if they all weigh 0).
func pickForSample(nd *netdir.NetDir, in []bool, rnd pathsel.Rand) (netdir.RelayIndex, bool) {
	var total uint64
	n := 0
	for i := 0; i < nd.Len(); i++ {
		ri := netdir.RelayIndex(i)
		if !in[i] && isGuard(nd, ri) {
			total += nd.Weight(netdir.RoleGuard, ri)
			n++
		}
	}
	if n == 0 {
		return netdir.NoRelay, false
	}
	var x uint64
	if total > 0 {
		x = pathsel.Uniform(rnd, total)
	} else {
		x = pathsel.Uniform(rnd, uint64(n))
	}
	for i := 0; i < nd.Len(); i++ {
		ri := netdir.RelayIndex(i)
		if in[i] || !isGuard(nd, ri) {
			continue
		}
		w := uint64(1)
		if total > 0 {
			w = nd.Weight(netdir.RoleGuard, ri)
		}
		if x < w {
			return ri, true
		}
		x -= w
	}
	panic("BUG: guard: sample weights inconsistent")
}

// randPast is guard-spec A.2's RAND(now, interval): a time up to interval
// before now, to the second.
func randPast(now time.Time, interval time.Duration, rnd pathsel.Rand) time.Time {
	now = now.UTC().Truncate(time.Second)
	secs := uint64(interval / time.Second)
	return now.Add(-time.Duration(pathsel.Uniform(rnd, secs+1)) * time.Second)
}

// retryDue turns unreachable guards whose retry time has come back into
// unknown ones (guard-spec 4.5).
func (m *Manager) retryDue(now time.Time) {
	for _, e := range m.sampled {
		if e.reach == Unreachable && !now.Before(e.retryAt) {
			e.reach = Unknown
		}
	}
}

// suitable reports whether e may serve usage u in the current NetDir.
func (m *Manager) suitable(e *entry, u *Usage) bool {
	if !m.filtered(e) {
		return false
	}
	if !u.Dir && !m.nd.Flags(e.idx).Has(netdir.FlagHasMicrodesc) && !e.primary {
		return false
	}
	for _, x := range u.Exclude {
		xi, ok := m.nd.ByID(x)
		if !ok {
			continue
		}
		if xi == e.idx || m.nd.InSameFamily(xi, e.idx) || (!m.cfg.AllowSameSubnet && m.nd.SameSubnet(xi, e.idx)) {
			return false
		}
	}
	return true
}

// Select picks a guard for usage u (guard-spec 4.6). A primary guard is
// returned if one of them may be reachable: one of the first
// NUsablePrimary (NUsablePrimaryDir for directory requests) such guards,
// uniformly. Otherwise the first confirmed, then the first sampled,
// usable guard that is not already being tried is marked pending and
// returned as an exploratory (non-primary) ticket. If every sampled
// guard is unreachable, all are marked unknown and tried again.
func (m *Manager) Select(u Usage, now time.Time, rnd pathsel.Rand) (Ticket, error) {
	if m.nd == nil {
		return Ticket{}, ErrNoNetDir
	}
	m.retryDue(now)
	m.expand(now, rnd)
	for attempt := 0; attempt < 2; attempt++ {
		n := m.params.NUsablePrimary
		if u.Dir {
			n = m.params.NUsablePrimaryDir
		}
		var cands []*entry
		for _, e := range m.primary {
			if len(cands) < n && e.reach != Unreachable && m.suitable(e, &u) {
				cands = append(cands, e)
			}
		}
		if len(cands) > 0 {
			if !u.Dir {
				var missing [][32]byte
				for _, e := range cands {
					if !m.nd.Flags(e.idx).Has(netdir.FlagHasMicrodesc) {
						missing = append(missing, m.nd.MicrodescDigest(e.idx))
					}
				}
				if missing != nil {
					return Ticket{}, &MissingDescriptorsError{Digests: missing}
				}
			}
			e := cands[pathsel.Uniform(rnd, uint64(len(cands)))]
			e.lastTried = now
			return m.ticket(e, u, now, true), nil
		}
		for _, list := range [][]*entry{m.confirmed, m.sampled} {
			var first *entry
			for _, e := range list {
				if e.reach == Unreachable || !m.suitable(e, &u) {
					continue
				}
				if !e.pending {
					first = e
					break
				}
				if first == nil {
					first = e
				}
			}
			if first != nil {
				if !first.pending {
					first.pending, first.pendingSince = true, now
				}
				first.lastTried = now
				return m.ticket(first, u, now, false), nil
			}
		}
		// Nothing usable: if every filtered guard is unreachable, we
		// have exhausted the sample; mark them all as worth trying.
		anyUsable := false
		for _, e := range m.sampled {
			if m.usableFiltered(e) {
				anyUsable = true
				break
			}
		}
		if anyUsable {
			break
		}
		for _, e := range m.sampled {
			if e.reach == Unreachable {
				e.reach = Unknown
			}
		}
	}
	return Ticket{}, ErrNoGuard
}

func (m *Manager) ticket(e *entry, u Usage, now time.Time, primary bool) Ticket {
	u.Exclude = slices.Clone(u.Exclude)
	return Ticket{ID: e.id, Relay: e.idx, Primary: primary, usage: u, issued: now}
}

func (m *Manager) find(id [20]byte) *entry {
	for _, e := range m.sampled {
		if e.id == id {
			return e
		}
	}
	return nil
}

// Succeeded records that the ticket's guard worked (guard-spec 4.8):
// it becomes reachable and, if it was not yet, confirmed; after a long
// time without success the primary guards are retried.
func (m *Manager) Succeeded(t Ticket, now time.Time, rnd pathsel.Rand) {
	e := m.find(t.ID)
	if e == nil {
		return // dropped from the sample meanwhile
	}
	e.reach, e.failingSince, e.pending = Reachable, time.Time{}, false
	e.retryAt, e.lastDelay = time.Time{}, 0
	if e.confirmedOn.IsZero() {
		e.confirmedOn = randPast(now, m.params.Lifetime/10, rnd)
		m.confirmed = append(m.confirmed, e)
		m.gen++
		m.updatePrimary()
	}
	if !t.Primary && (m.lastOnInternet.IsZero() || now.Sub(m.lastOnInternet) > m.params.InternetLikelyDown) {
		for _, p := range m.primary {
			if p.reach == Unreachable {
				p.reach = Unknown
			}
		}
	}
	m.lastOnInternet = now
}

// Failed records that the ticket's guard could not be reached
// (guard-spec 4.7). It is retried after a randomized delay (proposal
// 336): decorrelated jitter from 30 s up to 6 h for primary guards, from
// 10 min up to 36 h for others.
func (m *Manager) Failed(t Ticket, now time.Time, rnd pathsel.Rand) {
	e := m.find(t.ID)
	if e == nil {
		return
	}
	e.reach, e.pending = Unreachable, false
	if e.failingSince.IsZero() {
		e.failingSince = now
	}
	base, cap := nonprimaryRetryBase, nonprimaryRetryCap
	if e.primary {
		base, cap = primaryRetryBase, primaryRetryCap
	}
	e.lastDelay = nextDelay(e.lastDelay, base, cap, rnd)
	e.retryAt = now.Add(e.lastDelay)
}

// nextDelay is dir-spec 5.5's decorrelated jitter, in whole seconds:
// min(cap, random in [low, max(low+1, 3·last))), low = max(1 s, base).
func nextDelay(last, base, cap time.Duration, rnd pathsel.Rand) time.Duration {
	low := max(uint64(base/time.Second), 1)
	high := max(low+1, 3*uint64(last/time.Second))
	d := low + pathsel.Uniform(rnd, high-low)
	return min(time.Duration(d)*time.Second, cap)
}

// preference lists the filtered guards in preference order: primary
// guards, then confirmed ones, then the rest in sample order.
func (m *Manager) preference() []*entry {
	out := make([]*entry, 0, len(m.sampled))
	for _, list := range [][]*entry{m.primary, m.confirmed, m.sampled} {
		for _, e := range list {
			if m.filtered(e) && !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return out
}

// Usable decides whether a circuit through the ticket's guard may be
// used (proposal 337). Primary guards always are. A non-primary guard is
// unusable once a guard earlier in the preference order that suits the
// same usage is reachable, or after NonprimaryIdleTimeout; it is usable
// once every earlier suitable guard is unreachable or has been pending
// for NonprimaryConnectTimeout; until then it is undecided.
func (m *Manager) Usable(t Ticket, now time.Time) Status {
	if t.Primary {
		return Usable
	}
	e := m.find(t.ID)
	if e == nil || !m.filtered(e) || now.Sub(t.issued) >= m.params.NonprimaryIdleTimeout {
		return Unusable
	}
	m.retryDue(now)
	undecided := false
	for _, g := range m.preference() {
		if g == e {
			break
		}
		if !m.suitable(g, &t.usage) {
			continue
		}
		switch {
		case g.reach == Reachable:
			return Unusable
		case g.reach == Unreachable:
		case g.pending && now.Sub(g.pendingSince) >= m.params.NonprimaryConnectTimeout:
		default:
			undecided = true
		}
	}
	if undecided {
		return Undecided
	}
	return Usable
}

// Info describes one sampled guard.
type Info struct {
	ID            [20]byte
	Relay         netdir.RelayIndex // netdir.NoRelay if not in the NetDir
	AddedOn       time.Time
	Listed        bool
	UnlistedSince time.Time
	ConfirmedOn   time.Time
	Primary       bool
	Reach         Reachability
	Pending       bool
	RetryAt       time.Time
}

// Sampled returns the sampled guards in sample order.
func (m *Manager) Sampled() []Info {
	out := make([]Info, len(m.sampled))
	for k, e := range m.sampled {
		out[k] = info(e)
	}
	return out
}

// Primary returns the primary guards in order.
func (m *Manager) Primary() []Info {
	out := make([]Info, len(m.primary))
	for k, e := range m.primary {
		out[k] = info(e)
	}
	return out
}

// Confirmed returns the confirmed guards in order.
func (m *Manager) Confirmed() []Info {
	out := make([]Info, len(m.confirmed))
	for k, e := range m.confirmed {
		out[k] = info(e)
	}
	return out
}

func info(e *entry) Info {
	return Info{ID: e.id, Relay: e.idx, AddedOn: e.addedOn, Listed: e.listed, UnlistedSince: e.unlistedSince,
		ConfirmedOn: e.confirmedOn, Primary: e.primary, Reach: e.reach, Pending: e.pending, RetryAt: e.retryAt}
}
