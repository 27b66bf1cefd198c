package circmgr

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/pathsel"
	"github.com/onionlite/onionlite/pathsel/guard"
)

// build is a circuit under construction. Its fields are guarded by
// Manager.mu, except done, err and failedHop, which are set before done
// closes and read after.
type build struct {
	id     uint64
	key    IsolationKey
	forKey bool // built for a request of key; false: preemptive
	ids    [3][20]byte
	relays [3]circuit.Relay
	policy *netdoc.PortPolicy
	stable bool // every hop has the Stable flag
	ticket guard.Ticket

	started time.Time
	waiters int
	// released: no longer offered to requests (done is closed): the
	// build finished, or passed the usage timeout and goes on only to
	// be measured.
	released bool
	timedOut bool
	done     chan struct{}

	err       error // why the build is of no use (nil on success)
	failedHop int   // the hop that failed, -1 if none is to blame

	// leg2 is the second leg of a conflux set, built beside the first
	// (Config.Conflux); nil for a plain circuit.
	leg2 *leg2Plan
}

// leg2Plan is the second leg of a conflux build: its own guard and
// middle, the same exit.
type leg2Plan struct {
	relays [3]circuit.Relay
	ticket guard.Ticket
	// Set by buildSet, read by buildDone: how the leg went, and
	// whether its guard is to blame for a failure.
	err   error
	blame bool
	used  bool // the leg is in the set
}

func (b *build) exit() [20]byte { return b.ids[pathsel.HopExit] }

// errBuildTimeout ends a build at the close timeout; errUsageTimeout is the
// error requests waiting for a build see at the usage timeout.
var (
	errBuildTimeout = errors.New("circuit build timed out")
	errUsageTimeout = errors.New("circuit build passed the build timeout")
)

// kindError carries a Kind from the pool to the request that reports it.
type kindError struct {
	kind, err error
}

func (e *kindError) Error() string { return fmt.Sprintf("%v: %v", e.kind, e.err) }
func (e *kindError) Unwrap() error { return e.err }

// pendingForLocked returns a build under way that will serve key and port:
// one built for key, or a preemptive one (which any key may take).
func (m *Manager) pendingForLocked(key IsolationKey, port uint16) *build {
	for _, b := range m.pending {
		if b.released || (b.forKey && b.key != key) {
			continue
		}
		if (b.stable || !longLived(port)) && m.exitServesLocked(b.exit(), b.policy, nil, port) {
			return b
		}
	}
	return nil
}

// launchLocked chooses a path and starts building it. avoid lists relays
// the request would rather not use (they failed it before).
func (m *Manager) launchLocked(t pathsel.Target, key IsolationKey, forKey bool, avoid map[[20]byte]bool, now time.Time) (*build, error) {
	if m.ndErr != nil {
		return nil, &kindError{ErrDirectoryNotReady, m.ndErr}
	}
	ticket, err := m.guards.Select(guard.Usage{}, now, m.rnd)
	switch {
	case errors.Is(err, guard.ErrMissingDescriptors), errors.Is(err, guard.ErrNoNetDir):
		return nil, &kindError{ErrDirectoryNotReady, err}
	case err != nil:
		return nil, &kindError{ErrNoPath, err}
	}
	path, err := m.choosePathLocked(ticket.Relay, t, avoid, now)
	switch {
	case errors.Is(err, pathsel.ErrNoExitForPort):
		return nil, &kindError{ErrNoExitForPort, err}
	case err != nil:
		return nil, &kindError{ErrNoPath, err}
	}
	m.lastID++
	b := &build{id: m.lastID, key: key, forKey: forKey, ticket: ticket, started: now,
		done: make(chan struct{}), failedHop: -1, policy: m.nd.ExitPolicy(path[pathsel.HopExit])}
	b.stable = true
	for k, i := range path {
		b.relays[k] = relayOf(m.nd, i)
		b.ids[k] = b.relays[k].RSAID
		b.stable = b.stable && m.nd.Flags(i).Has(netdir.FlagStable)
	}
	// Congestion control (prop 324) with the exit when it offers it
	// (FlowCtrl=2), with the consensus's parameters over tor 0.4.9's
	// defaults, as C tor does.
	b.relays[pathsel.HopExit].CongestionControl = m.nd.Flags(path[pathsel.HopExit]).Has(netdir.FlagCongestionControl)
	cfg := *m.cfg.Circuit
	if cfg.CongestionControl == nil {
		cc := circuit.CCParamsFrom(m.nd.Params().Lookup)
		cfg.CongestionControl = &cc
	}
	if cfg.CircWindow == 0 {
		cfg.CircWindow = int(m.nd.Params().Get(netdir.ParamCircWindow))
	}
	if cfg.SendmeAcceptMinVersion == 0 {
		cfg.SendmeAcceptMinVersion = int(m.nd.Params().Get(netdir.ParamSendmeAcceptMinVersion))
	}
	b.leg2 = m.planLeg2Locked(path, ticket, now)
	usage, closeAt := m.cbt.timeouts()
	m.pending = append(m.pending, b)
	m.wg.Add(1)
	go m.runBuild(b, &cfg, usage, closeAt)
	return b, nil
}

// cfxEnabled is the consensus parameter that turns conflux on or off for
// clients (default 1).
const paramCfxEnabled = "cfx_enabled"

// planLeg2Locked chooses the second leg of a conflux set for path, or
// returns nil when the set is not to be: conflux off, the exit without
// conflux or congestion control, no second primary guard, no middle.
func (m *Manager) planLeg2Locked(path [3]netdir.RelayIndex, t1 guard.Ticket, now time.Time) *leg2Plan {
	if !m.cfg.Conflux {
		return nil
	}
	if v, ok := m.nd.Params().Lookup(paramCfxEnabled); ok && v == 0 {
		return nil
	}
	exit := path[pathsel.HopExit]
	if !m.nd.Flags(exit).Has(netdir.FlagConflux | netdir.FlagCongestionControl) {
		return nil
	}
	t2, err := m.guards.Select(guard.Usage{Exclude: [][20]byte{t1.ID, m.nd.ID(exit), m.nd.ID(path[pathsel.HopMiddle])}}, now, m.rnd)
	if err != nil || !t2.Primary || t2.ID == t1.ID {
		// Only another primary guard: a set must not be what makes the
		// client try guards beyond them.
		return nil
	}
	mid, err := m.sel.Select(pathsel.PosMiddle, pathsel.Options{NeedFast: true,
		Exclude: []netdir.RelayIndex{t2.Relay, exit, path[pathsel.HopGuard], path[pathsel.HopMiddle]},
		Filter:  func(i netdir.RelayIndex) bool { return !m.avoidedLocked(i, nil, now) }}, m.rnd)
	if err != nil {
		return nil
	}
	p := &leg2Plan{ticket: t2}
	for k, i := range [3]netdir.RelayIndex{t2.Relay, mid, exit} {
		p.relays[k] = relayOf(m.nd, i)
	}
	p.relays[pathsel.HopExit].CongestionControl = true
	return p
}

// relayOf describes relay i for the circuit layer.
func relayOf(nd *netdir.NetDir, i netdir.RelayIndex) circuit.Relay {
	r := nd.Relay(i)
	cr := circuit.Relay{RSAID: r.ID, NtorKey: r.NtorKey, NtorV3: r.Flags.Has(netdir.FlagNtorV3),
		Addrs: []netip.AddrPort{r.Addr}}
	if r.Flags.Has(netdir.FlagHasEd25519) {
		cr.Ed25519ID = r.Ed25519
	}
	if r.Flags.Has(netdir.FlagHasIPv6) {
		cr.Addrs = append(cr.Addrs, r.IPv6)
	}
	return cr
}

// pathTries is how many paths pathsel.BuildPath draws before the manager
// chooses the hops itself around the relays to avoid.
const pathTries = 8

// choosePathLocked picks [guard, middle, exit] with pathsel.BuildPath,
// redrawing paths whose exit was banned for the port (a hard rule) or
// whose middle or exit the request or the manager would rather avoid (a
// soft one). Redrawing keeps BuildPath's distribution, restricted; if
// the avoided relays carry most of the weight it chooses hop by hop
// instead.
func (m *Manager) choosePathLocked(g netdir.RelayIndex, t pathsel.Target, avoid map[[20]byte]bool, now time.Time) ([3]netdir.RelayIndex, error) {
	for range pathTries {
		p, err := m.sel.BuildPath(g, t, m.rnd)
		if err != nil {
			return p, err
		}
		if m.exitAllowedLocked(p[pathsel.HopExit], t) && !m.avoidedLocked(p[pathsel.HopMiddle], avoid, now) &&
			!m.avoidedLocked(p[pathsel.HopExit], avoid, now) {
			return p, nil
		}
	}
	return m.choosePathByHopLocked(g, t, avoid, now)
}

func (m *Manager) exitAllowedLocked(i netdir.RelayIndex, t pathsel.Target) bool {
	id := m.nd.ID(i)
	ban := m.bans[id]
	if ban == nil {
		return true
	}
	if ban.all {
		return false
	}
	return t.Port == 0 || !slices.Contains(ban.ports, t.Port)
}

func (m *Manager) avoidedLocked(i netdir.RelayIndex, avoid map[[20]byte]bool, now time.Time) bool {
	id := m.nd.ID(i)
	if avoid[id] {
		return true
	}
	until, ok := m.avoid[id]
	return ok && now.Before(until)
}

// choosePathByHopLocked is BuildPath's order (exit, then middle) with the
// bans and avoidances as filters: the avoidances are dropped first, then
// the Fast and Stable requirements, as BuildPath drops those.
func (m *Manager) choosePathByHopLocked(g netdir.RelayIndex, t pathsel.Target, avoid map[[20]byte]bool, now time.Time) ([3]netdir.RelayIndex, error) {
	path := [3]netdir.RelayIndex{g, netdir.NoRelay, netdir.NoRelay}
	stable := t.NeedStable || (t.Port != 0 && slices.Contains(pathsel.LongLivedPorts, t.Port))
	choose := func(pos pathsel.Position, o pathsel.Options, hard func(netdir.RelayIndex) bool) (netdir.RelayIndex, error) {
		var err error
		var i netdir.RelayIndex
		for _, soft := range []bool{true, false} {
			for _, flags := range []bool{true, false} {
				o := o
				o.NeedFast, o.NeedStable = flags, flags && stable
				o.Filter = func(i netdir.RelayIndex) bool {
					return (hard == nil || hard(i)) && (!soft || !m.avoidedLocked(i, avoid, now))
				}
				if i, err = m.sel.Select(pos, o, m.rnd); err == nil {
					return i, nil
				}
			}
		}
		return i, err
	}
	eo := pathsel.Options{Exclude: []netdir.RelayIndex{g}}
	allowed := func(i netdir.RelayIndex) bool { return m.exitAllowedLocked(i, t) }
	var err error
	if t.Port != 0 {
		eo.Port = t.Port
		path[pathsel.HopExit], err = choose(pathsel.PosExit, eo, allowed)
		if errors.Is(err, pathsel.ErrNoCandidate) {
			err = &pathsel.SelectError{Position: pathsel.PosExit, Port: t.Port}
		}
	} else {
		eo.AnyPort = t.Ports
		if eo.AnyPort == nil {
			eo.AnyPort = pathsel.DefaultPreemptivePorts
		}
		path[pathsel.HopExit], err = choose(pathsel.PosExit, eo, allowed)
		if err != nil {
			eo.AnyPort = nil
			path[pathsel.HopExit], err = choose(pathsel.PosExit, eo, allowed)
		}
	}
	if err != nil {
		return path, err
	}
	mo := pathsel.Options{Exclude: []netdir.RelayIndex{g, path[pathsel.HopExit]}}
	path[pathsel.HopMiddle], err = choose(pathsel.PosMiddle, mo, nil)
	return path, err
}

// runBuild builds b and hands the result to the pool. The usage timeout
// releases the requests waiting for it; the close timeout abandons it.
func (m *Manager) runBuild(b *build, cfg *circuit.Config, usage, closeAt time.Duration) {
	defer m.wg.Done()
	ctx, cancel := context.WithCancelCause(m.ctx)
	defer cancel(nil)
	finished := make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-finished:
			return
		case <-m.clk.After(usage):
		}
		m.usageTimeout(b)
		if closeAt > usage {
			select {
			case <-finished:
				return
			case <-m.clk.After(closeAt - usage):
			}
		}
		cancel(errBuildTimeout)
	}()
	var h circHandle
	var hops int
	var err error
	if b.leg2 != nil {
		h, hops, err = m.buildSet(ctx, b, cfg)
	} else {
		h, hops, err = m.builder.build(ctx, b.relays, cfg)
	}
	close(finished)
	if err != nil && context.Cause(ctx) == errBuildTimeout {
		err = fmt.Errorf("%w after %v (hop %d): %w", errBuildTimeout, closeAt, hops, err)
	}
	m.buildDone(b, h, hops, err)
}

// leg2Grace is how long a conflux build waits for its second leg after
// the first is built, beyond the first leg's own build time.
const leg2Grace = 500 * time.Millisecond

// linkTimeout bounds the CONFLUX_LINK exchange (one round trip on each
// leg) of a conflux build.
const linkTimeout = 10 * time.Second

// buildSet builds b's two legs side by side and links them. The first leg
// decides the build's outcome: when the second fails, or is not built
// within the first's build time plus leg2Grace, or linking fails on it,
// the first leg is used alone (without conflux when it was not linked).
func (m *Manager) buildSet(ctx context.Context, b *build, cfg *circuit.Config) (circHandle, int, error) {
	start := m.clk.Now()
	ctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	type result struct {
		h    circHandle
		hops int
		err  error
	}
	leg2 := make(chan result, 1)
	go func() {
		h, hops, err := m.builder.build(ctx2, b.leg2.relays, cfg)
		leg2 <- result{h, hops, err}
	}()
	h, hops, err := m.builder.build(ctx, b.relays, cfg)
	var r2 result
	if err != nil {
		cancel2()
		r2 = <-leg2
	} else {
		select {
		case r2 = <-leg2:
		case <-m.clk.After(m.clk.Now().Sub(start) + leg2Grace):
			cancel2()
			r2 = <-leg2
			// A leg built just as it was given up is used anyway.
			if r2.err != nil {
				r2.err = fmt.Errorf("second conflux leg slower than the first: %w", r2.err)
				r2.hops = -1 // not the guard's fault
			}
		}
	}
	// The guard learns about the second leg in buildDone, after the
	// first: the first leg's guard must be confirmed first.
	b.leg2.err = r2.err
	b.leg2.blame = r2.err != nil && r2.hops == 0 && ctx2.Err() == nil
	if err != nil {
		if r2.h != nil {
			r2.h.Close()
		}
		return nil, hops, err
	}
	fallback := func(why error) (circHandle, int, error) {
		m.logf("circmgr: build %d: conflux not used: %v", b.id, why)
		m.mu.Lock()
		m.st.ConfluxFallbacks++
		m.mu.Unlock()
		return h, hops, nil
	}
	if r2.err != nil {
		return fallback(r2.err)
	}
	c1, ok1 := h.(*circuit.Circuit)
	c2, ok2 := r2.h.(*circuit.Circuit)
	if !ok1 || !ok2 {
		r2.h.Close()
		return fallback(errors.New("legs are not circuits"))
	}
	lctx, lcancel := context.WithTimeout(ctx, linkTimeout)
	x, err := circuit.LinkConflux(lctx, []*circuit.Circuit{c1, c2}, circuit.LinkOptions{})
	lcancel()
	if err != nil {
		// Both legs are closed; the exit would not link.
		return nil, len(b.relays), fmt.Errorf("conflux link: %w", err)
	}
	if len(x.Legs()) < 2 {
		m.mu.Lock()
		m.st.ConfluxFallbacks++
		m.mu.Unlock()
		return x, hops, nil
	}
	b.leg2.used = true
	m.mu.Lock()
	m.st.ConfluxSets++
	m.mu.Unlock()
	return x, hops, nil
}

// usageTimeout releases the requests waiting for b: it took longer than
// the build timeout. It goes on, to measure the build time, until the
// close timeout.
func (m *Manager) usageTimeout(b *build) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.released {
		return
	}
	b.timedOut = true
	m.st.TimedOut++
	m.releaseLocked(b, errUsageTimeout, -1)
}

// blamed returns the relay a request that waited for b should avoid on
// its next attempt: the hop past the guard at which the build failed
// (the guard's failures go to the guard manager). None when no hop is
// to blame, and none when the circuit was built and a later step failed
// (a conflux link reports the path's length as the hop).
func (b *build) blamed() ([20]byte, bool) {
	if b.failedHop <= 0 || b.failedHop >= len(b.ids) {
		return [20]byte{}, false
	}
	return b.ids[b.failedHop], true
}

func (m *Manager) releaseLocked(b *build, err error, failedHop int) {
	if b.released {
		return
	}
	b.released = true
	b.err = err
	b.failedHop = failedHop
	close(b.done)
}

// buildDone files the result of b: the circuit joins the pool, or the
// failure is reported to the guard manager and the timeout learner.
func (m *Manager) buildDone(b *build, h circHandle, hops int, err error) {
	now := m.clk.Now()
	var toClose circHandle
	m.mu.Lock()
	if k := slices.Index(m.pending, b); k >= 0 {
		m.pending = slices.Delete(m.pending, k, k+1)
	}
	elapsed := now.Sub(b.started)
	closing := m.closed || m.ctx.Err() != nil
	if err == nil && closing {
		toClose, err = h, ErrClosed
	}
	switch {
	case err != nil:
		m.st.Failed++
		if !closing {
			if hops == 0 {
				m.guards.Failed(b.ticket, now, m.rnd)
			} else if hops < 3 {
				m.avoid[b.ids[hops]] = now.Add(relayAvoidTime)
			}
			if errors.Is(err, errBuildTimeout) && hops >= 1 && m.cbt.addTimeout(elapsed, false) {
				m.logf("circmgr: too many build timeouts; build timeout reset to %v", m.cbt.timeout)
			}
		}
		if !b.forKey {
			m.preemptFails++
			m.preemptAt = now.Add(min(5*time.Second<<min(m.preemptFails-1, 6), 5*time.Minute))
		}
		m.logf("circmgr: build %d failed after %v at hop %d: %v", b.id, elapsed.Round(time.Millisecond), hops, err)
		m.releaseLocked(b, err, hops)
	case b.timedOut:
		// A measurement circuit (path-spec 2.4.4): recorded, not used.
		m.st.Built++
		m.guards.Succeeded(b.ticket, now, m.rnd)
		if m.cbt.addTimeout(elapsed, true) {
			m.logf("circmgr: too many build timeouts; build timeout reset to %v", m.cbt.timeout)
		}
		m.st.LastBuild = elapsed
		toClose = h
	default:
		m.st.Built++
		m.st.LastBuild = elapsed
		m.guards.Succeeded(b.ticket, now, m.rnd)
		m.cbt.addTime(elapsed)
		if !b.forKey {
			m.preemptFails = 0
		}
		c := &circ{id: b.id, h: h, path: b.ids, policy: b.policy, stable: b.stable, ticket: b.ticket, built: now}
		if b.leg2 != nil && b.leg2.used {
			for k, r := range b.leg2.relays {
				c.path2[k] = r.RSAID
			}
		}
		if !b.ticket.Primary {
			switch m.guards.Usable(b.ticket, now) {
			case guard.Unusable:
				toClose, c = h, nil
			case guard.Undecided:
				c.undecided = true
			}
		}
		if c == nil {
			m.releaseLocked(b, errors.New("a better guard is usable"), -1)
			break
		}
		if b.forKey && b.waiters > 0 {
			c.claimed, c.key = true, b.key
		}
		m.circs = append(m.circs, c)
		m.notifyLocked()
		m.logf("circmgr: circuit %d built in %v: %s", b.id, elapsed.Round(time.Millisecond), pathString(b.ids))
		m.releaseLocked(b, nil, -1)
	}
	if b.leg2 != nil && !closing {
		switch {
		case b.leg2.err == nil:
			m.guards.Succeeded(b.leg2.ticket, now, m.rnd)
		case b.leg2.blame:
			m.guards.Failed(b.leg2.ticket, now, m.rnd)
		}
	}
	m.mu.Unlock()
	if toClose != nil {
		toClose.Close()
	}
	m.saveGuards()
	m.wake()
}

func pathString(ids [3][20]byte) string {
	return fmt.Sprintf("%s %s %s", hex.EncodeToString(ids[0][:4]), hex.EncodeToString(ids[1][:4]), hex.EncodeToString(ids[2][:4]))
}

// realBuilder builds over the manager's channels.
type realBuilder struct{ m *Manager }

func (rb realBuilder) build(ctx context.Context, hops [3]circuit.Relay, cfg *circuit.Config) (circHandle, int, error) {
	g := hops[0]
	ch, err := rb.m.cfg.Channels.Get(ctx, channel.Target{Addr: g.Addrs[0].String(), RSAID: g.RSAID, Ed25519ID: g.Ed25519ID})
	if err != nil {
		return nil, 0, err
	}
	c, err := circuit.Create(ctx, ch, g, cfg)
	if err != nil {
		return nil, 0, err
	}
	for k := 1; k < len(hops); k++ {
		if err := c.Extend(ctx, hops[k]); err != nil {
			c.Close()
			return nil, k, err
		}
	}
	return c, len(hops), nil
}
