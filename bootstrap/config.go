package bootstrap

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
)

// Schedule chooses when a running client fetches the next consensus.
type Schedule int

const (
	// SchedulePrompt fetches each new consensus shortly after the current
	// one stops being fresh (within the first twelfth of the fresh
	// interval: about five minutes past the hour on the live network). The
	// client is never more than one consensus behind; it wakes once per
	// consensus and downloads every hourly diff.
	SchedulePrompt Schedule = iota
	// ScheduleDirSpec follows dir-spec section 5.1: a uniformly random
	// time from 3/4 of a fresh interval after fresh-until up to 7/8 of the
	// time left before valid-until (2:45–3:50 for a consensus valid 1:00–
	// 4:00). A client on this schedule skips about every other consensus:
	// fewer wake-ups and one diff spanning two hours instead of two hourly
	// diffs, at the cost of a directory up to three hours old.
	ScheduleDirSpec
)

func (s Schedule) String() string {
	switch s {
	case SchedulePrompt:
		return "prompt"
	case ScheduleDirSpec:
		return "dir-spec"
	}
	return fmt.Sprintf("schedule(%d)", int(s))
}

// Phase is a step of the bootstrap.
type Phase int

// Phases, in order.
const (
	PhaseStarting Phase = iota
	PhaseLoadingCache
	PhaseConnecting
	PhaseConsensus
	PhaseCertificates
	PhaseMicrodescs
	PhaseReady
)

var phaseNames = [...]string{"starting", "loading_cache", "connecting", "consensus", "certificates", "microdescriptors", "ready"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) && p >= 0 {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Progress is a bootstrap progress report.
type Progress struct {
	Phase   Phase
	Percent int // 0–100; 100 only when Phase is PhaseReady
	// DirBytes counts directory response bytes read so far (headers and
	// compressed bodies); DirBytesExpected is the current estimate of the
	// total, 0 when unknown.
	DirBytes, DirBytesExpected int64
	// Microdescs is how many of MicrodescsWanted are present.
	Microdescs, MicrodescsWanted int
	// Message is for people; it never contains addresses.
	Message string
}

// Source says where the current consensus came from.
type Source string

// Consensus sources.
const (
	SourceNone  Source = ""
	SourceCache Source = "cache" // the stored one, still usable
	SourceFull  Source = "full"  // downloaded whole
	SourceDiff  Source = "diff"  // downloaded as a diff and applied
)

// Config configures a Bootstrapper. Authorities, Store and Channels are
// required; every other zero value is a documented default.
type Config struct {
	// Authorities are the trusted directory authorities (netdoc.
	// DefaultAuthorities for the real network, or a test network's
	// DirAuthority lines). A consensus needs valid signatures from more
	// than half of them.
	Authorities []netdoc.Authority
	// Fallbacks are directory caches to try before the authorities when
	// no consensus is known (dir-spec 5.1: clients prefer fallbacks).
	Fallbacks []DirServer
	// Bridges, if set, are the only directory sources: everything is
	// fetched from them, never from authorities or other caches, as a
	// bridge user does.
	Bridges []DirServer
	// Store keeps documents between runs.
	Store dircache.Store
	// Channels opens and shares links to relays.
	Channels *chanmgr.Manager
	// Circuit configures directory circuits. Nil means defaults.
	Circuit *circuit.Config
	// Clock is the time used for validity checks and schedules. Nil means
	// the real clock.
	Clock clock.Clock
	// Rand chooses sources and times. Nil means crypto/rand.
	Rand io.Reader
	// Schedule is the refresh policy; the zero value is SchedulePrompt.
	Schedule Schedule
	// Parallel is how many caches microdescriptor batches are spread
	// over at once. Zero means 3.
	Parallel int
	// StallTimeout abandons a request that receives nothing for this long.
	// Zero means 20 seconds.
	StallTimeout time.Duration
	// RequestTimeout bounds one request. Zero means 3 minutes (a
	// consensus over a 50 kbit/s link takes about two).
	RequestTimeout time.Duration
	// OnProgress, if set, receives every progress change, in order, on
	// the bootstrap's goroutine: it must not block.
	OnProgress func(Progress)
	// DirGuards, if set, names the client's directory guards for a view
	// (which may lack microdescriptors): microdescriptors and refreshed
	// consensuses are asked of them first, as C tor does, so that the
	// connection to the first guard serves both directory fetches and
	// circuits. The sdk backs it with the circuit manager's guards.
	DirGuards func(nd *netdir.NetDir) []netdir.Relay
	// PrimaryGuards, if set, names the client's primary guards for a
	// view (which may lack microdescriptors). Their microdescriptors are
	// fetched first, and a bootstrap does not declare the directory
	// ready before they are in: every circuit starts at one of them. The
	// sdk backs it with the circuit manager's guards.
	PrimaryGuards func(nd *netdir.NetDir) []netdir.Relay
	// OnNetDir, if set, is called with every new network view, on the
	// bootstrap's goroutine: it must not block.
	OnNetDir func(*netdir.NetDir)
	// OnBootstrapError, if set, receives the error of every failed
	// bootstrap attempt Run makes (Run then retries with backoff), on
	// Run's goroutine: it must not block.
	OnBootstrapError func(error)
	// Logf receives debugging lines; nil discards them. No addresses or
	// destinations are logged.
	Logf func(format string, args ...any)
}

// DirServer is a relay reached for directory documents by its ORPort and
// RSA identity (a fallback directory or a bridge).
type DirServer struct {
	Nickname    string
	Fingerprint [20]byte
	Addr        netip.AddrPort // IPv4 ORPort
}

const (
	defaultParallel       = 3
	defaultStallTimeout   = 20 * time.Second
	defaultRequestTimeout = 3 * time.Minute
	// maxMicrodescsPerRequest bounds a batch. Over BEGIN_DIR the only
	// limit is the directory server's 50,000-byte header cap; 44 bytes per
	// digest leaves room for 1,000 with margin. Larger batches compress
	// better (zstd saves ~30% going from 100 to one batch).
	maxMicrodescsPerRequest = 1000
	// minMicrodescsPerSource: below this a batch is not split further
	// across caches (dir-spec 5.2's "under 4 descriptors" rule, scaled to
	// what compresses well).
	minMicrodescsPerSource = 64
	maxConsensusSize       = 16 << 20
	maxMicrodescBatchSize  = 16 << 20
	// defaultMicrodescSize is the guess at a microdescriptor's size
	// before any arrived (mdSizeHint).
	defaultMicrodescSize = 600
	maxCertsSize         = 1 << 20
	// maxAttempts is how many sources a document is tried from before the
	// bootstrap gives up for this round.
	maxAttempts = 8
)

func (c *Config) validate() error {
	if len(c.Authorities) == 0 {
		return fmt.Errorf("bootstrap: no directory authorities configured")
	}
	if c.Store == nil {
		return fmt.Errorf("bootstrap: no store")
	}
	if c.Channels == nil {
		return fmt.Errorf("bootstrap: no channel manager")
	}
	return nil
}
