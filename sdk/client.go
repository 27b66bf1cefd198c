package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/bootstrap"
	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/chanmgr"
	"github.com/onionlite/onionlite/internal/channel"
	"github.com/onionlite/onionlite/internal/circmgr"
	"github.com/onionlite/onionlite/internal/circuit"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/memquota"
	"github.com/onionlite/onionlite/transport"
)

// Clock tells the time. It exists so that replays of old Tor documents and
// tests can run at another date; nil means the system clock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RefreshPolicy chooses when a running client fetches new consensuses.
type RefreshPolicy int

const (
	// RefreshPrompt fetches each new consensus shortly after the current
	// one stops being fresh (hourly on the live network), as a diff.
	RefreshPrompt RefreshPolicy = iota
	// RefreshDirSpec follows dir-spec's randomised client schedule: about
	// half as many wake-ups and diffs, with a directory up to three hours
	// old. Thriftier on metered links and batteries.
	RefreshDirSpec
)

// Client is a Tor client. Configure it by setting fields, then call any
// method; the first call starts it (Start is optional). Fields must not
// change after that. The zero value is not usable: DataDir (or Store) is
// required.
type Client struct {
	// DataDir holds the directory cache and client state (guards). Put it
	// in a no-backup cache directory on mobile. Required unless Store is
	// set.
	DataDir string
	// Store, if set, is used instead of the cache under DataDir.
	Store dircache.Store
	// Authorities are torrc-style "DirAuthority ..." lines (one per
	// element, or several per element separated by newlines). Nil means
	// the real Tor network's authorities; test networks pass theirs.
	Authorities []string
	// Fallbacks are torrc-style "FallbackDir ..." lines: directory caches
	// tried before the authorities for the first consensus. Nil means the
	// built-in list when Authorities is nil (the real network) and none
	// otherwise.
	Fallbacks []string
	// Bridges, if set, are torrc-style bridge lines ("IP:ORPORT
	// FINGERPRINT"): the client fetches its directory only from them,
	// never from authorities or other caches.
	Bridges []string
	// Dialer reaches relays' ORPorts. Nil means direct TCP; use
	// &transport.SOCKS5{Addr: "host:port"} for an upstream proxy.
	Dialer transport.Dialer
	// TestNetwork relaxes the rules a loopback test network cannot meet
	// (all relays share one /16), like C tor's TestingTorNetwork. Never
	// set it for the real network.
	TestNetwork bool
	// Refresh is the consensus refresh policy.
	Refresh RefreshPolicy
	// MemoryBudget is the whole-process memory budget in bytes: the
	// dirty memory iOS counts against an app or a Network Extension. The
	// queue quota, the cell pool, badger's memtable and the Go runtime's
	// memory limit are sized from it (PlanMemory; Stats().Memory shows
	// the split and the use). Zero means DefaultMemoryBudget: 16 MiB on
	// iOS and Android, 128 MiB elsewhere. Below MinMemoryBudget (12 MiB)
	// is a configuration error.
	MemoryBudget int64
	// KeepGoMemoryLimit leaves the Go runtime's soft memory limit alone.
	// Otherwise the client sets it (debug.SetMemoryLimit) to the budget
	// less a reserve for non-Go memory, unless GOMEMLIMIT is in the
	// environment (any value, "off" included) or the limit was already
	// set; it is process-wide, so set this when the app manages the
	// limit itself or keeps a large heap of its own. Close restores it.
	// Below SmallMemoryBudget the client also sets GOGC to 50 with the
	// limit (unless GOGC is in the environment or already changed);
	// KeepGoMemoryLimit leaves that alone too.
	KeepGoMemoryLimit bool
	// KeepPadding keeps Tor's link padding on. By default the client asks
	// relays to stop padding its links (PADDING_NEGOTIATE STOP), as C
	// tor's ReducedConnectionPadding does for mobile, which saves bytes
	// and battery at some cost against traffic analysis by netflow logs.
	KeepPadding bool
	// PreemptiveCircuits is how many built circuits are kept ready for
	// web ports so the first dial is fast. Zero means 1; negative means
	// none (thriftiest on a metered link).
	PreemptiveCircuits int
	// Conflux says whether exit circuits are conflux sets (two circuits
	// through different guards to one exit, which spreads downloads
	// over both: faster bulk transfers on a fast link, at the cost of a
	// second circuit and guard connection). ConfluxAuto, the zero value,
	// uses them except on Android and iOS, where bytes and battery come
	// first, and under a MemoryBudget below ConfluxMinBudget (64 MiB); an
	// app can choose ConfluxOn on Wi-Fi.
	Conflux ConfluxMode
	// Clock is the time source. Nil means the system clock.
	Clock Clock
	// Logf receives debugging logs. Nil discards them. Destinations and
	// addresses are scrubbed.
	Logf func(format string, args ...any)

	once    sync.Once
	core    *core
	initErr error
	iso     circmgr.IsolationKey // isolation group; zero is the default

	// cacheIdleClose is the store's dircache.Options.IdleClose (zero: its
	// default). Tests that read badger's state set it.
	cacheIdleClose time.Duration
}

// core is the state shared by a Client and its Isolated views.
type core struct {
	logf      func(format string, args ...any)
	clock     clock.Clock
	store     dircache.Store
	ownStore  bool
	chans     *chanmgr.Manager
	boot      *bootstrap.Bootstrapper
	circs     *circmgr.Manager
	events    *broadcaster
	storeWarn error

	// Memory: the budget's split, the queue quota, the cell pool, and the
	// Go memory limit this client set (0: none).
	plan    MemoryPlan
	quota   *memquota.Tracker
	pool    *cell.Pool
	goLimit int64
	// gcPercent is the GOGC the client set with the limit, or 0.
	gcPercent int
	// goLimitNow is the limit in force: goLimit, or more while gcGuard
	// holds it raised.
	goLimitNow atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// skewErr is the clock-skew error of the latest failed background
	// bootstrap (nil if it failed otherwise); failed is closed and
	// replaced at every failure, waking dials that wait for the
	// directory.
	skewErr error
	failed  chan struct{}
}

// Start validates the configuration and starts the client in the
// background: it loads the cache and begins bootstrapping. It returns at
// once; use Bootstrap to wait. Calling it again returns the first result.
func (c *Client) Start() error {
	c.once.Do(func() {
		if c.core != nil { // an Isolated view: shares a started core
			return
		}
		c.core, c.initErr = c.start()
	})
	return c.initErr
}

func (c *Client) start() (*core, error) {
	logf := c.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var auths []netdoc.Authority
	if c.Authorities == nil {
		auths = netdoc.DefaultAuthorities()
	} else {
		var err error
		auths, err = netdoc.ParseAuthorityFile(strings.Join(c.Authorities, "\n"))
		if err != nil {
			return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
		}
		if len(auths) == 0 {
			return nil, &Error{Kind: KindConfig, Op: "start", Err: errors.New("no DirAuthority lines")}
		}
	}
	var bridges []bootstrap.DirServer
	for _, l := range c.Bridges {
		d, err := parseBridge(l)
		if err != nil {
			return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
		}
		bridges = append(bridges, d)
	}
	var fallbacks []bootstrap.DirServer
	fbs := c.Fallbacks
	if fbs == nil && c.Authorities == nil {
		for _, f := range netdoc.DefaultFallbacks() {
			fallbacks = append(fallbacks, bootstrap.DirServer{Nickname: f.Nickname, Fingerprint: f.Fingerprint, Addr: f.Addr})
		}
	}
	for _, l := range fbs {
		f, err := netdoc.ParseFallbackLine(l)
		if err != nil {
			return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
		}
		fallbacks = append(fallbacks, bootstrap.DirServer{Nickname: f.Nickname, Fingerprint: f.Fingerprint, Addr: f.Addr})
	}
	plan, err := PlanMemory(c.MemoryBudget)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
	}
	k := &core{logf: logf, clock: clock.OrReal(c.Clock), events: newBroadcaster(), failed: make(chan struct{}), plan: plan}
	k.quota, err = memquota.New(memquota.Config{
		Limit: plan.QueueLimit, LowWater: plan.QueueLowWater, HardLimit: plan.QueueHardLimit,
		Now: k.clock.Now, Logf: logf,
	})
	if err != nil {
		return nil, &Error{Kind: KindInternal, Op: "start", Err: err}
	}
	k.pool = cell.NewPool(plan.PoolCells)
	switch {
	case c.Store != nil:
		k.store = c.Store
	case c.DataDir != "":
		db, err := openStore(c.DataDir, plan.Budget, c.cacheIdleClose, logf)
		if err != nil {
			// A read-only or full data directory: keep working from
			// memory, and tell the app.
			k.storeWarn = err
			logf("onionlite: data directory unusable, running from memory: %v", err)
			k.store = dircache.NewMemStore()
		} else {
			k.store = db
		}
		k.ownStore = true
	default:
		k.quota.Close()
		return nil, &Error{Kind: KindConfig, Op: "start", Err: errors.New("DataDir or Store is required")}
	}
	padding := channel.PaddingOff
	if c.KeepPadding {
		padding = channel.PaddingDefault
	}
	k.chans = chanmgr.New(&channel.Config{Dialer: c.Dialer, Clock: c.Clock, Padding: padding, Logf: logf,
		Memory: k.quota, Pool: k.pool})
	sched := bootstrap.SchedulePrompt
	if c.Refresh == RefreshDirSpec {
		sched = bootstrap.ScheduleDirSpec
	}
	boot, err := bootstrap.New(bootstrap.Config{
		Authorities: auths,
		Bridges:     bridges,
		Fallbacks:   fallbacks,
		Store:       k.store,
		Channels:    k.chans,
		Circuit:     &circuit.Config{Clock: c.Clock},
		Clock:       c.Clock,
		Schedule:    sched,
		OnProgress:  func(p bootstrap.Progress) { k.events.publish(Event{Kind: EventProgress, Progress: progressOf(p)}) },
		DirGuards: func(nd *netdir.NetDir) []netdir.Relay {
			if k.circs == nil {
				return nil
			}
			return k.circs.DirGuards(nd, 3)
		},
		PrimaryGuards: func(nd *netdir.NetDir) []netdir.Relay {
			if k.circs == nil {
				return nil
			}
			return k.circs.PrimaryGuardRelays(nd)
		},
		OnBootstrapError: k.bootFailed,
		Logf:             logf,
	})
	if err != nil {
		k.close()
		return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
	}
	k.boot = boot
	k.circs, err = circmgr.New(circmgr.Config{
		Channels:        k.chans,
		NetDir:          boot,
		LoadGuards:      func() ([]byte, error) { return loadState(k.store, guardStateKey) },
		SaveGuards:      func(b []byte) error { return k.store.PutState(guardStateKey, b) },
		Circuit:         &circuit.Config{Clock: c.Clock},
		Clock:           c.Clock,
		Logf:            logf,
		AllowSameSubnet: c.TestNetwork || allLoopback(auths),
		Preemptive:      c.PreemptiveCircuits,
		Conflux:         c.Conflux.enabled(runtime.GOOS, plan.Budget),
	})
	if err != nil {
		k.close()
		return nil, &Error{Kind: KindConfig, Op: "start", Err: err}
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.goLimit = setGoMemoryLimit(c, plan, logf)
	k.goLimitNow.Store(k.goLimit)
	k.gcPercent = setGCPercent(plan, k.goLimit)
	if k.goLimit != 0 {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			gcGuard(k.ctx, k.goLimit, &k.goLimitNow, logf)
		}()
	}
	if k.storeWarn != nil {
		k.events.publish(Event{Kind: EventWarning, Err: &Error{Kind: KindStorage, Op: "start", Err: k.storeWarn}})
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.run()
	}()
	return k, nil
}

// guardStateKey names the guard state in the store's key/value area.
const guardStateKey = "guards"

func loadState(st dircache.Store, key string) ([]byte, error) {
	b, err := st.GetState(key)
	switch {
	case errors.Is(err, dircache.ErrNotFound):
		return nil, nil
	case errors.Is(err, dircache.ErrCorrupt):
		return nil, nil // dropped by the store; a fresh sample follows
	}
	return b, err
}

// allLoopback reports whether every authority is on a loopback address:
// a private test network (the real authorities never are), whose relays
// all share 127.0.0.1 and so one /16.
func allLoopback(auths []netdoc.Authority) bool {
	for _, a := range auths {
		if !a.Addr.Addr().IsLoopback() {
			return false
		}
	}
	return len(auths) > 0
}

func openStore(dataDir string, budget int64, idleClose time.Duration, logf func(string, ...any)) (*dircache.DB, error) {
	dir := filepath.Join(dataDir, "cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", dircache.ErrReadOnly, err)
	}
	db, err := dircache.Open(dir, dircache.Options{Logf: logf, MemoryBudget: budget, IdleClose: idleClose})
	if err != nil {
		return nil, err
	}
	if rerr := db.Recovery(); rerr != nil {
		logf("onionlite: the cache was repaired on open: %v", rerr)
	}
	return db, nil
}

// bootFailed records a failed background bootstrap. A clock-skew failure
// is announced as a warning (once, until the failure changes) and ends the
// dials waiting for the directory, which could otherwise only time out.
func (k *core) bootFailed(err error) {
	var skew *bootstrap.ClockSkewError
	isSkew := errors.As(err, &skew)
	k.mu.Lock()
	wasSkew := k.skewErr != nil
	k.skewErr = nil
	if isSkew {
		k.skewErr = err
	}
	close(k.failed)
	k.failed = make(chan struct{})
	k.mu.Unlock()
	if isSkew && !wasSkew {
		k.events.publish(Event{Kind: EventWarning, Err: bootstrapError(err)})
	}
}

// run keeps the directory current, announces readiness, and closes idle
// channels.
func (k *core) run() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := k.boot.Run(k.ctx); err != nil && k.ctx.Err() == nil {
			k.logf("onionlite: directory refresh stopped: %v", err)
		}
	}()
	ready := k.boot.Ready()
	for {
		select {
		case <-k.ctx.Done():
			<-done
			return
		case <-ready:
			ready = nil
			k.fitQueues()
			k.events.publish(Event{Kind: EventReady, Progress: progressOf(k.boot.Progress())})
		case <-k.clock.After(30 * time.Second):
			k.chans.CloseIdle(2 * time.Minute)
			k.fitQueues()
		}
	}
}

func (k *core) close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return ErrClosed
	}
	k.closed = true
	k.mu.Unlock()
	if k.cancel != nil {
		k.cancel()
	}
	if k.boot != nil {
		k.boot.Close()
	}
	k.wg.Wait()
	if k.circs != nil {
		k.circs.Close()
	}
	if k.chans != nil {
		k.chans.Close()
	}
	k.quota.Close()
	restoreGoMemoryLimit(k.goLimitNow.Load())
	restoreGCPercent(k.gcPercent)
	k.events.close()
	if k.ownStore && k.store != nil {
		k.store.Close()
	}
	return nil
}

func (c *Client) started(op string) (*core, error) {
	if err := c.Start(); err != nil {
		return nil, err
	}
	k := c.core
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if closed {
		return nil, &Error{Kind: KindClosed, Op: op}
	}
	return k, nil
}

// Bootstrap blocks until the client has a usable directory, fetching what
// the cache lacks; microdescriptors beyond those needed for a usable
// directory, and a newer consensus when the cached one expired less than
// a day ago, keep downloading in the background (WaitDirectoryComplete).
// It returns nil at once when the directory is ready. It
// returns an error when ctx ends, or when one round of attempts failed at
// every source (KindBootstrapFailed, KindClockSkew): the client goes on
// retrying in the background with backoff, and a later Bootstrap or dial
// waits for that.
func (c *Client) Bootstrap(ctx context.Context) error {
	k, err := c.started("bootstrap")
	if err != nil {
		return err
	}
	if err := k.boot.Bootstrap(ctx); err != nil {
		return bootstrapError(err)
	}
	return nil
}

// WaitReady blocks until the directory is usable, however many bootstrap
// rounds that takes: where Bootstrap returns KindBootstrapFailed after a
// round failed at every source, WaitReady waits for the rounds the client
// goes on making in the background (with backoff). It returns early only
// when ctx ends (KindTimeout for a deadline), the client is closed, or the
// local clock is found to be wrong (KindClockSkew). Dials wait the same
// way.
func (c *Client) WaitReady(ctx context.Context) error {
	_, err := c.ready(ctx, "bootstrap")
	return err
}

// WaitDirectoryComplete waits, after the directory is ready, until the
// bootstrap that made it ready has every microdescriptor it could get
// (and, after a start from a cached consensus that had expired, a newer
// consensus). Bootstrap returns as soon as the microdescriptors in hand
// are enough to build circuits (as C tor's "enough directory info"; they
// are fetched highest-bandwidth first, the primary guards' before all) and
// the rest download in the background; a cached consensus that expired
// less than a day ago is used at once, as C tor does, while a newer one
// downloads. A process that exits soon after
// bootstrapping and wants its next start to read no directory bytes waits
// for this. It returns an error when ctx ends or the client is closed.
func (c *Client) WaitDirectoryComplete(ctx context.Context) error {
	k, err := c.ready(ctx, "bootstrap")
	if err != nil {
		return err
	}
	select {
	case <-k.boot.Complete():
		return nil
	case <-k.ctx.Done():
		return &Error{Kind: KindClosed, Op: "bootstrap"}
	case <-ctx.Done():
		kind := KindBootstrapRequired
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			kind = KindTimeout
		}
		return &Error{Kind: kind, Op: "bootstrap", Err: fmt.Errorf("directory not complete: %w", ctx.Err())}
	}
}

func bootstrapError(err error) error {
	var skew *bootstrap.ClockSkewError
	switch {
	case errors.As(err, &skew):
		return &Error{Kind: KindClockSkew, Op: "bootstrap", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindTimeout, Op: "bootstrap", Err: err}
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, bootstrap.ErrClosed):
		return &Error{Kind: KindClosed, Op: "bootstrap", Err: err}
	}
	return &Error{Kind: KindBootstrapFailed, Op: "bootstrap", Err: err}
}

// Ready reports whether the directory is usable.
func (c *Client) Ready() bool {
	if c.Start() != nil {
		return false
	}
	select {
	case <-c.core.boot.Ready():
		return true
	default:
		return false
	}
}

// Close stops the client, closes every circuit and connection, and
// releases the data directory. A second Close returns an error matching
// ErrClosed. Isolated views share the client: closing any closes all.
func (c *Client) Close() error {
	if err := c.Start(); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Kind == KindConfig {
			return nil // nothing was started
		}
		return err
	}
	return c.core.close()
}

// Memory pressure levels for TrimMemory, mirroring the OS callbacks
// (Android onTrimMemory, iOS didReceiveMemoryWarning).
const (
	// TrimModerate drops idle and preemptive circuits and idle
	// connections.
	TrimModerate = 1
	// TrimCritical also returns freed memory to the OS at once.
	TrimCritical = 2
)

// TrimMemory sheds what can be rebuilt: idle and preemptive circuits and
// idle relay connections. At TrimCritical it also reclaims the queues
// holding the oldest data down to half the quota's low-water mark (those
// streams fail with KindMemory: typically ones whose reader stalled) and
// returns the Go heap's free pages to the OS. It returns how many circuits
// it closed.
func (c *Client) TrimMemory(level int) int {
	k, err := c.started("trim")
	if err != nil {
		return 0
	}
	n := k.circs.TrimMemory()
	k.chans.CloseIdle(0)
	if level >= TrimCritical {
		k.trimQueues()
		debug.FreeOSMemory()
	}
	return n
}

// SetDormant puts the client to sleep (true) or wakes it (false). A
// dormant client builds no preemptive circuits and fetches no directory
// updates, so it causes no wake-ups or traffic of its own; dials still
// work. Call it when an app moves to the background and back.
func (c *Client) SetDormant(dormant bool) {
	k, err := c.started("dormant")
	if err != nil {
		return
	}
	k.circs.SetDormant(dormant)
	k.boot.SetDormant(dormant)
}

// NetworkChanged tells the client the device's network changed (Wi-Fi to
// cellular, say): relay connections made over the old network are closed
// so new ones are made, and the directory is checked for freshness.
func (c *Client) NetworkChanged() {
	k, err := c.started("network")
	if err != nil {
		return
	}
	k.chans.CloseAll()
	k.boot.Kick()
}
