package circmgr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/stream"
	"github.com/onionlite/onionlite/internal/torcrypto"
	"github.com/onionlite/onionlite/pathsel"
	"github.com/onionlite/onionlite/pathsel/guard"
)

// circHandle is what the manager needs from a built circuit;
// *circuit.Circuit satisfies it.
type circHandle interface {
	Begin(ctx context.Context, host string, port uint16, flags uint32) (*stream.Stream, error)
	Resolve(ctx context.Context, host string) ([]cell.Answer, error)
	Close() error
	Err() error
	Streams() int
}

var _ circHandle = (*circuit.Circuit)(nil)

// builder builds a three-hop circuit. It returns how many hops were
// built: on failure, 0 blames the guard and k > 0 the extension to hop k.
type builder interface {
	build(ctx context.Context, hops [3]circuit.Relay, cfg *circuit.Config) (circHandle, int, error)
}

// Manager builds, shares and retires circuits. Create it with New; its
// methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	clk     clock.Clock
	logf    func(format string, args ...any)
	builder builder

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the loop and builds
	kick   chan struct{}

	saveMu   sync.Mutex
	savedGen uint64 // guarded by saveMu

	mu           sync.Mutex
	closed       bool
	rnd          *rand.Rand
	nd           *netdir.NetDir
	sel          *pathsel.Selector
	ndErr        error // why nd cannot be used, nil when it can
	guards       *guard.Manager
	circs        []*circ
	pending      []*build
	bans         map[[20]byte]*exitBan
	avoid        map[[20]byte]time.Time
	cbt          *buildTimes
	dormant      bool
	lastActivity time.Time
	preemptAt    time.Time // no preemptive build before this
	preemptFails int
	lastID       uint64
	st           Stats
	// avail is closed (and replaced) when a circuit may have become
	// usable, so that requests waiting for a build look again.
	avail chan struct{}

	// attached, if set (tests), sees every stream opened and the circuit
	// it went on.
	attached func(c *circ, key IsolationKey)
}

// circ is a built circuit in the pool. Its fields are guarded by
// Manager.mu.
type circ struct {
	id     uint64
	h      circHandle
	path   [3][20]byte
	path2  [3][20]byte        // a conflux set's second leg; zero otherwise
	policy *netdoc.PortPolicy // the exit's IPv4 summary when built
	stable bool               // every hop had the Stable flag
	ticket guard.Ticket

	key     IsolationKey
	claimed bool // key is set: the circuit carried a stream or was built for one
	// undecided: built through a non-primary guard whose usability is
	// not known yet (proposal 337); no stream may use it.
	undecided  bool
	unusable   bool // takes no new streams
	rejected   []uint16
	built      time.Time
	dirtySince time.Time // first stream; zero while clean
	idleSince  time.Time // zero while it has streams
	inflight   int       // requests between choice and answer
}

func (c *circ) exit() [20]byte { return c.path[pathsel.HopExit] }

// exitBan records that an exit refused a port (EXITPOLICY) or everything
// (HIBERNATING, RESOURCELIMIT) until the next directory.
type exitBan struct {
	all   bool
	ports []uint16
}

// New returns a Manager. It loads the guard state and starts the
// background goroutine; it builds nothing until a network view exists.
func New(cfg Config) (*Manager, error) {
	return newManager(cfg, nil)
}

// newManager is New with another builder (tests); nil means the real one.
func newManager(cfg Config, b builder) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	if err := torcrypto.RandomBytes(torcrypto.Rand(cfg.Rand), seed[:]); err != nil {
		return nil, fmt.Errorf("circmgr: seeding: %w", err)
	}
	m := &Manager{
		cfg: cfg, clk: cfg.Clock, logf: cfg.Logf,
		kick:   make(chan struct{}, 1),
		rnd:    rand.New(rand.NewChaCha8(seed)),
		guards: guard.New(guard.Config{AllowSameSubnet: cfg.AllowSameSubnet}),
		bans:   make(map[[20]byte]*exitBan),
		avoid:  make(map[[20]byte]time.Time),
		cbt:    newBuildTimes(cbtParamsFrom(netdir.Params{}), cfg.BuildTimeout),
		ndErr:  errors.New("no network directory yet"),
		avail:  make(chan struct{}),
	}
	m.builder = b
	if b == nil {
		m.builder = realBuilder{m}
	}
	if cfg.LoadGuards != nil {
		data, err := cfg.LoadGuards()
		if err != nil {
			return nil, fmt.Errorf("circmgr: loading guard state: %w", err)
		}
		if len(data) > 0 {
			if err := m.guards.UnmarshalBinary(data); err != nil {
				m.logf("circmgr: guard state unusable, sampling new guards: %v", err)
			} else {
				m.savedGen = m.guards.Generation()
			}
		}
	}
	m.lastActivity = m.clk.Now()
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.loop()
	return m, nil
}

// Close closes every circuit, stops building, waits for the manager's
// goroutines and saves the guard state. Channels belong to the caller.
// A second Close returns an error wrapping net.ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("circmgr: already closed: %w", net.ErrClosed)
	}
	m.closed = true
	circs := m.circs
	m.circs = nil
	m.mu.Unlock()
	m.cancel()
	for _, c := range circs {
		c.h.Close()
	}
	m.wg.Wait()
	m.saveGuards()
	return nil
}

// SetDormant stops (true) or resumes (false) preemptive circuit building,
// for an app in the background. Dial still works while dormant.
func (m *Manager) SetDormant(dormant bool) {
	m.mu.Lock()
	m.dormant = dormant
	m.mu.Unlock()
	m.wake()
}

// TrimMemory closes every circuit that carries no stream, the preemptive
// ones included, and holds off preemptive builds for IdleTimeout (for OS
// memory pressure). It returns how many circuits it closed.
func (m *Manager) TrimMemory() int {
	m.mu.Lock()
	now := m.clk.Now()
	var closing []circHandle
	keep := m.circs[:0]
	for _, c := range m.circs {
		if c.inflight == 0 && c.h.Streams() == 0 {
			closing = append(closing, c.h)
			continue
		}
		keep = append(keep, c)
	}
	clear(m.circs[len(keep):])
	m.circs = keep
	m.preemptAt = now.Add(m.cfg.IdleTimeout)
	m.st.Closed += int64(len(closing))
	m.mu.Unlock()
	for _, h := range closing {
		h.Close()
	}
	return len(closing)
}

// notifyLocked tells waiting requests that a circuit may have become
// usable.
func (m *Manager) notifyLocked() {
	close(m.avail)
	m.avail = make(chan struct{})
}

// wake makes the background goroutine look at the pool now.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// refreshNetDir asks the provider for the current view and adopts it.
func (m *Manager) refreshNetDir() {
	nd := m.cfg.NetDir.NetDir()
	m.mu.Lock()
	changed := m.installLocked(nd, m.clk.Now())
	m.mu.Unlock()
	if changed {
		m.saveGuards()
	}
}

// installLocked adopts nd if it is new and reasonably live, and reports
// whether it did.
func (m *Manager) installLocked(nd *netdir.NetDir, now time.Time) bool {
	if nd == nil {
		if m.nd == nil {
			m.ndErr = errors.New("no network directory yet")
		}
		return false
	}
	if now.After(nd.ValidUntil().Add(reasonablyLive)) {
		m.ndErr = fmt.Errorf("the consensus expired at %v", nd.ValidUntil().UTC().Format(time.RFC3339))
		return false
	}
	m.ndErr = nil
	if nd == m.nd {
		return false
	}
	m.nd = nd
	m.sel = pathsel.New(nd, pathsel.Config{AllowSameSubnet: m.cfg.AllowSameSubnet})
	m.guards.SetNetDir(nd, now, m.rnd)
	clear(m.bans)
	clear(m.avoid)
	m.cbt.setParams(cbtParamsFrom(nd.Params()))
	m.logf("circmgr: new network view: %d relays, valid until %v", nd.Len(), nd.ValidUntil().UTC().Format(time.RFC3339))
	return true
}

// saveGuards stores the guard state if it changed since the last save.
func (m *Manager) saveGuards() {
	if m.cfg.SaveGuards == nil {
		return
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	gen := m.guards.Generation()
	if gen == m.savedGen {
		m.mu.Unlock()
		return
	}
	data, err := m.guards.MarshalBinary()
	m.mu.Unlock()
	if err == nil {
		err = m.cfg.SaveGuards(data)
	}
	if err != nil {
		m.logf("circmgr: saving guard state: %v", err)
		return
	}
	m.savedGen = gen
}

// Stats are the manager's counters and a snapshot of its pool.
type Stats struct {
	// Circuit builds: completed, failed (including timeouts) and timed
	// out (passed the usage timeout; such circuits are measured, then
	// closed).
	Built, Failed, TimedOut int64
	// Closed counts circuits the manager closed (idle, too dirty,
	// unusable, trimmed); circuits that died on their own are Lost.
	Closed, Lost int64
	// Open circuits now; Clean ones have carried no stream and belong to
	// no isolation key; Pending builds under way.
	Open, Clean, Pending int
	// Streams open now on the manager's circuits.
	Streams int
	// StreamsOpened and Resolves count successful requests, Failures the
	// Dial, Resolve and ResolvePTR calls that failed, Retries the times a
	// request was sent again on another circuit.
	StreamsOpened, Resolves, Failures, Retries int64
	// BuildTimeout and CloseTimeout are the current build timeouts;
	// Learned says they come from measured build times.
	BuildTimeout, CloseTimeout time.Duration
	Learned                    bool
	// LastBuild, MedianBuild and P90Build describe the build times
	// recorded (at most the last 1000).
	LastBuild, MedianBuild, P90Build time.Duration
	// ConfluxSets counts circuits that became two-leg conflux sets;
	// ConfluxFallbacks those whose second leg failed or lagged, or whose
	// linking failed, so that one circuit was used alone.
	ConfluxSets, ConfluxFallbacks int64
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.Open = len(m.circs)
	for _, c := range m.circs {
		if !c.claimed {
			s.Clean++
		}
		s.Streams += c.h.Streams()
	}
	for _, b := range m.pending {
		if !b.released {
			s.Pending++
		}
	}
	s.BuildTimeout, s.CloseTimeout = m.cbt.timeouts()
	s.Learned = m.cbt.learned
	s.MedianBuild, s.P90Build = m.cbt.quantiles()
	return s
}

// CircuitInfo describes one open circuit.
type CircuitInfo struct {
	ID   uint64
	Path [3][20]byte // RSA identities: guard, middle, exit
	// Key is the isolation key of its streams; Claimed is false for a
	// clean circuit that no key owns yet.
	Key     IsolationKey
	Claimed bool
	// Usable says new streams may use it.
	Usable  bool
	Streams int
	Built   time.Time
	// DirtySince is when it carried its first stream (zero if never).
	DirtySince time.Time
	// CongestionControl is the SENDME increment the exit agreed to for
	// congestion control (prop 324), or 0 for fixed windows.
	CongestionControl int
	// Leg2 is the path of a conflux set's second leg (same exit); zero
	// for a single circuit.
	Leg2 [3][20]byte
}

// Circuits describes the open circuits.
func (m *Manager) Circuits() []CircuitInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clk.Now()
	out := make([]CircuitInfo, 0, len(m.circs))
	for _, c := range m.circs {
		ci := CircuitInfo{ID: c.id, Path: c.path, Key: c.key, Claimed: c.claimed,
			Usable: m.openLocked(c, now), Streams: c.h.Streams(), Built: c.built, DirtySince: c.dirtySince, Leg2: c.path2}
		if cc, ok := c.h.(interface {
			CongestionControl() (circuit.CCState, bool)
		}); ok {
			if st, on := cc.CongestionControl(); on {
				ci.CongestionControl = st.SendmeInc
			}
		}
		out = append(out, ci)
	}
	return out
}

// PrimaryGuards returns the primary guards in order.
func (m *Manager) PrimaryGuards() []guard.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.guards.Primary()
}

// DirGuards returns up to n directory guards: the primary guards, in
// order, that are directory caches and not known to be unreachable
// (guard-spec: the primaries serve one-hop directory requests too). nd is
// the view to choose from; it may lack microdescriptors, as during a cold
// bootstrap, when the manager has no view of its own yet: then only the
// guard state learns it. Using the same relays for directory requests and
// as first hops means one TLS connection serves both.
func (m *Manager) DirGuards(nd *netdir.NetDir, n int) []netdir.Relay {
	return m.primaryRelays(nd, n, netdir.FlagV2Dir|netdir.FlagRunning)
}

// PrimaryGuardRelays returns the primary guards, in order, that are not
// known to be unreachable, as relays of nd (which may lack
// microdescriptors, as DirGuards). A bootstrap fetches their
// microdescriptors first: without them no circuit can start.
func (m *Manager) PrimaryGuardRelays(nd *netdir.NetDir) []netdir.Relay {
	return m.primaryRelays(nd, math.MaxInt, 0)
}

// primaryRelays returns up to n primary guards with flags, in order.
func (m *Manager) primaryRelays(nd *netdir.NetDir, n int, flags netdir.Flags) []netdir.Relay {
	if nd == nil || n <= 0 {
		return nil
	}
	m.mu.Lock()
	now := m.clk.Now()
	if m.nd == nil {
		m.guards.SetNetDir(nd, now, m.rnd)
	}
	view := m.nd
	if view == nil {
		view = nd
	}
	prim := m.guards.Primary()
	m.mu.Unlock()
	m.saveGuards()
	var out []netdir.Relay
	for _, g := range prim {
		if len(out) == n {
			break
		}
		i, ok := view.ByID(g.ID)
		if !ok || g.Reach == guard.Unreachable {
			continue
		}
		r := view.Relay(i)
		if !r.Flags.Has(flags) {
			continue
		}
		out = append(out, r)
	}
	return out
}
