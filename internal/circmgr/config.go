package circmgr

import (
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/safelog"
	"github.com/onionlite/onionlite/pathsel"
)

// NetDirProvider gives the current network view; nil means none yet.
// *bootstrap.Bootstrapper satisfies it. The manager asks for it before
// every circuit it builds and about once a minute, and adopts a new view
// when the pointer changes.
type NetDirProvider interface {
	NetDir() *netdir.NetDir
}

// NetDirFunc adapts a function to NetDirProvider.
type NetDirFunc func() *netdir.NetDir

// NetDir calls f.
func (f NetDirFunc) NetDir() *netdir.NetDir { return f() }

// Defaults for the zero values of Config.
const (
	DefaultPreemptive   = 1
	DefaultMaxDirtiness = 10 * time.Minute // C tor's MaxCircuitDirtiness
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultDialTimeout  = 2 * time.Minute // C tor's SocksTimeout
	DefaultMaxAttempts  = 4
	DefaultMaxBuilds    = 8 // enough to get past a few dead relays; C tor keeps building until SocksTimeout
	// BEGIN waits this long for CONNECTED on the first circuit tried, and
	// beginRetryTimeout on later ones (C tor's
	// connection_ap_expire_beginning).
	DefaultBeginTimeout = 10 * time.Second
	beginRetryTimeout   = 15 * time.Second
	// PredictionWindow: preemptive circuits are kept only while a stream
	// was asked for this recently (C tor's PredictedPortsRelevanceTime),
	// or this soon after New.
	PredictionWindow = time.Hour
	// maxResolveFailures bounds retries after RESOLVEFAILED, MISC and
	// NOROUTE (C tor's MAX_RESOLVE_FAILURES).
	maxResolveFailures = 3
	// relayAvoidTime: a relay that an EXTEND2 could not reach is avoided
	// this long (a soft preference) or until the next directory.
	relayAvoidTime = 2 * time.Minute
	// undecidedPoll: how often a circuit through a non-primary guard is
	// asked about again while its usability is undecided (proposal 337).
	undecidedPoll = time.Second
	// undecidedWait: a request waits this long for circuits whose guard
	// is undecided before it has another built (the guard manager may
	// meanwhile have put the primary guards back in play).
	undecidedWait = 15 * time.Second
	// netDirPoll: how often the background goroutine asks for a new
	// network view when nothing else wakes it.
	netDirPoll = time.Minute
	// reasonablyLive: a consensus this far past valid-until is still used
	// (path-spec 2.1.0 REASONABLY_LIVE_TIME).
	reasonablyLive = 24 * time.Hour
)

// Config configures a Manager. Channels and NetDir are required; every
// other zero value is a documented default. The Manager copies it; it must
// not change while New runs.
type Config struct {
	// Channels opens and shares links to guards. Required.
	Channels *chanmgr.Manager
	// NetDir gives the current network view. Required.
	NetDir NetDirProvider

	// LoadGuards returns the guard state saved by SaveGuards, or nil
	// when there is none. New calls it once; an error fails New (a guard
	// set must not be replaced because a read failed), while state that
	// does not parse is logged and replaced by a fresh sample. Nil means
	// no saved state.
	LoadGuards func() ([]byte, error)
	// SaveGuards stores the guard state. It is called, never
	// concurrently, after the state changed and at Close. Nil means the
	// guards are not persisted (a new sample every run: a privacy loss).
	SaveGuards func([]byte) error

	// Circuit configures circuits. Nil means defaults; its Clock and Rand,
	// if unset, are the ones below, and its CircWindow and
	// SendmeAcceptMinVersion, if zero, come from the consensus.
	Circuit *circuit.Config
	// Clock is the time source. Nil means the real clock.
	Clock clock.Clock
	// Rand seeds path and guard selection (a ChaCha8 generator keyed
	// once from it at New). Nil means crypto/rand.
	Rand io.Reader
	// Logf receives debugging lines; nil discards them. Destinations are
	// scrubbed (internal/safelog) and relays appear as fingerprint
	// prefixes only.
	Logf func(format string, args ...any)
	// AllowSameSubnet lets a path hold relays of one /16: only for test
	// networks, whose relays all sit on 127.0.0.1.
	AllowSameSubnet bool

	// Preemptive is how many clean exit circuits are kept ready for
	// PreemptivePorts so that a first Dial need not wait for a build.
	// Zero means DefaultPreemptive; a negative value builds none (thrifty
	// mobile use).
	Preemptive int
	// PreemptivePorts are the ports preemptive circuits are built for
	// (the exit allows at least one). Nil means 80 and 443.
	PreemptivePorts []uint16
	// MaxDirtiness: a circuit that first carried a stream this long ago
	// takes no new streams. Zero means DefaultMaxDirtiness.
	MaxDirtiness time.Duration
	// IdleTimeout: a circuit that has had no stream this long is closed,
	// except clean circuits kept for preemption. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// BuildTimeout, if positive, is a fixed circuit build timeout instead
	// of the learned one (path-spec 2.4).
	BuildTimeout time.Duration
	// BeginTimeout is how long a BEGIN waits for CONNECTED before the
	// stream is retried on another circuit. Zero means
	// DefaultBeginTimeout for the first circuit tried and 15 s for later
	// ones, as C tor.
	BeginTimeout time.Duration
	// DialTimeout bounds a Dial or Resolve whose context has no deadline.
	// Zero means DefaultDialTimeout; negative means no bound.
	DialTimeout time.Duration
	// MaxAttempts bounds the circuits one Dial or Resolve sends its
	// request on. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBuilds bounds the failed circuit builds one Dial or Resolve
	// waits for before it gives up. Zero means DefaultMaxBuilds.
	MaxBuilds int
	// Conflux makes exit circuits conflux sets (proposal 329) where the
	// consensus allows it (cfx_enabled, default 1) and the exit offers it
	// (Conflux=1, with congestion control): a second leg through another
	// primary guard and middle to the same exit is built beside the
	// first, and the two are linked; the exit spreads its data over
	// both. It costs a second circuit (and often a second guard
	// connection); if the second leg fails or is much slower, the first
	// is used alone.
	Conflux bool
}

// withDefaults returns a copy of cfg with defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Channels == nil {
		return cfg, fmt.Errorf("circmgr: Config.Channels is required")
	}
	if cfg.NetDir == nil {
		return cfg, fmt.Errorf("circmgr: Config.NetDir is required")
	}
	cfg.Clock = clock.OrReal(cfg.Clock)
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Preemptive == 0 {
		cfg.Preemptive = DefaultPreemptive
	}
	if cfg.Preemptive < 0 {
		cfg.Preemptive = 0
	}
	if cfg.PreemptivePorts == nil {
		cfg.PreemptivePorts = pathsel.DefaultPreemptivePorts
	}
	cfg.PreemptivePorts = slices.Clone(cfg.PreemptivePorts)
	if slices.Contains(cfg.PreemptivePorts, 0) {
		return cfg, fmt.Errorf("circmgr: port 0 in PreemptivePorts")
	}
	if cfg.MaxDirtiness <= 0 {
		cfg.MaxDirtiness = DefaultMaxDirtiness
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBuilds <= 0 {
		cfg.MaxBuilds = DefaultMaxBuilds
	}
	var cc circuit.Config
	if cfg.Circuit != nil {
		cc = *cfg.Circuit
	}
	if cc.Clock == nil {
		cc.Clock = cfg.Clock
	}
	if cc.Rand == nil {
		cc.Rand = cfg.Rand
	}
	cfg.Circuit = &cc
	return cfg, nil
}

// IsolationKey names a group of streams that may share circuits: streams
// with different keys never do. The zero value is the default group.
// Keys are comparable.
type IsolationKey struct {
	s     string
	token uint64
}

var lastToken atomic.Uint64

// Key returns the key named s: equal strings give equal keys, and Key("")
// is the zero key. A SOCKS username and password, joined unambiguously,
// make a good s.
func Key(s string) IsolationKey { return IsolationKey{s: s} }

// NewKey returns a key equal to no other key, from NewKey or Key (for
// sdk.Client.Isolated).
func NewKey() IsolationKey { return IsolationKey{token: lastToken.Add(1)} }

// String describes the key for logs without revealing a named key's text.
func (k IsolationKey) String() string {
	switch {
	case k.token != 0:
		return fmt.Sprintf("isolated#%d", k.token)
	case k.s == "":
		return "default"
	}
	return fmt.Sprintf("key(%v)", safelog.S(k.s))
}
