package onionlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/sdk"
)

// Client is a running Tor client. Its methods are safe to call from any
// thread; the blocking ones (Bootstrap, Dial, Download, Stream reads and
// writes) must not be called on the app's main thread.
type Client struct {
	sdk  *sdk.Client
	set  *settings
	log  *logSink
	http *http.Client

	// ctx ends when Stop is called; every blocking call runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	stopped   bool
	listeners []net.Listener

	// stopping is set at the start of Stop: no callback starts after it.
	stopping atomic.Bool
	// servers counts SOCKS serving goroutines (Stop waits for them) and
	// watchers the goroutines that call back into the app (Stop does not
	// wait for them: the app may call Stop from a callback).
	servers sync.WaitGroup

	streamsOpen atomic.Int64
}

// NewClient checks cfg, starts a client in the background (loading the
// cache and beginning to bootstrap) and returns it. cfg is copied. Call
// Bootstrap to wait until it is usable, and Stop when done. In Java and
// Kotlin this is the constructor Client(cfg); in Swift, OnionliteNewClient.
func NewClient(cfg *Config) (c *Client, err error) {
	defer recoverTo(&err)
	set, err := cfg.check()
	if err != nil {
		return nil, err
	}
	c = &Client{set: set, log: &logSink{logger: set.logger, level: set.logLevel}}
	if c.log.enabled(LogDebug) {
		set.client.Logf = func(format string, args ...any) { c.log.logf(LogDebug, format, args...) }
	}
	c.sdk = &set.client
	if err := c.sdk.Start(); err != nil {
		c.sdk.Close()
		return nil, wrap(err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// IdleConnTimeout stays below internal/stream's DefaultStallAfter
	// (40 s), so an idle pooled connection closes before its waiting read
	// nudges the guard's channel.
	c.http = &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           c.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   set.dialTimeout,
		ResponseHeaderTimeout: set.dialTimeout,
		ExpectContinueTimeout: time.Second,
	}}
	if c.log.enabled(LogWarn) {
		events := c.sdk.Events(c.ctx)
		go c.watch(events)
	}
	return c, nil
}

// ProgressListener receives bootstrap progress. OnProgress is called on
// an arbitrary thread (never the one that called Bootstrap), one call at a
// time for each Bootstrap call, and must not block; an error it returns (a
// Java exception, an NSError) is logged and otherwise ignored.
type ProgressListener interface {
	OnProgress(progress *Progress) error
}

// Progress is one bootstrap progress report.
type Progress struct {
	// Phase is one of "starting", "loading_cache", "connecting",
	// "consensus", "certificates", "microdescriptors", "ready".
	Phase string
	// Percent runs from 0 to 100 (100 when Phase is "ready").
	Percent int64
	// DirBytes are the directory bytes read so far; DirBytesExpected is
	// an estimate of the total (0 when unknown).
	DirBytes, DirBytesExpected int64
	// Microdescs of MicrodescsWanted relay descriptors are present.
	Microdescs, MicrodescsWanted int64
	// Message is a human-readable description (not stable).
	Message string
}

func progressOf(p sdk.Progress) *Progress {
	return &Progress{
		Phase: p.Phase, Percent: int64(p.Percent),
		DirBytes: p.DirBytes, DirBytesExpected: p.DirBytesExpected,
		Microdescs: int64(p.Microdescs), MicrodescsWanted: int64(p.MicrodescsWanted),
		Message: p.Message,
	}
}

// Bootstrap blocks until the client has a usable directory (at once when
// the cache is fresh), reporting progress to listener (which may be nil).
// The last report before a nil return has Phase "ready". It fails with
// kind closed when Stop is called meanwhile, and with bootstrap_failed or
// clock_skew when no usable directory can be had.
func (c *Client) Bootstrap(listener ProgressListener) (err error) {
	defer recoverTo(&err)
	if c.stopping.Load() {
		return errorf(KindClosed, "bootstrap: the client is stopped")
	}
	evctx, evcancel := context.WithCancel(c.ctx)
	defer evcancel()
	forwarded := make(chan struct{})
	if listener != nil {
		events := c.sdk.Events(evctx)
		go func() {
			defer close(forwarded)
			c.forward(events, listener)
		}()
	} else {
		close(forwarded)
	}
	err = c.sdk.Bootstrap(c.ctx)
	if err == nil {
		// The forwarder ends after the ready event, which always follows a
		// successful bootstrap (or the channel closes when Stop is called).
		<-forwarded
		if c.stopping.Load() {
			return errorf(KindClosed, "bootstrap: the client was stopped")
		}
		return nil
	}
	evcancel()
	<-forwarded
	if c.ctx.Err() != nil {
		return errorf(KindClosed, "bootstrap: the client was stopped")
	}
	return wrap(err)
}

// forward passes progress events to listener until the ready event.
func (c *Client) forward(events <-chan sdk.Event, listener ProgressListener) {
	defer func() {
		if r := recover(); r != nil {
			c.log.logf(LogWarn, "progress listener: panic: %v", r)
		}
	}()
	var last sdk.Progress
	sent := false
	for ev := range events {
		if ev.Kind != sdk.EventProgress && ev.Kind != sdk.EventReady {
			continue
		}
		if (!sent || ev.Progress != last) && !c.stopping.Load() {
			sent, last = true, ev.Progress
			if err := listener.OnProgress(progressOf(ev.Progress)); err != nil {
				c.log.logf(LogWarn, "progress listener failed: %v", err)
			}
		}
		if ev.Kind == sdk.EventReady {
			// Drain nothing more: the caller cancels the subscription.
			return
		}
	}
}

// watch logs the client's state changes and warnings.
func (c *Client) watch(events <-chan sdk.Event) {
	defer func() {
		if r := recover(); r != nil {
			c.log.logf(LogWarn, "log watcher: panic: %v", r)
		}
	}()
	phase := ""
	for ev := range events {
		switch ev.Kind {
		case sdk.EventProgress:
			if ev.Progress.Phase != phase {
				phase = ev.Progress.Phase
				c.log.logf(LogInfo, "bootstrap: %s (%d%%)", phase, ev.Progress.Percent)
			}
		case sdk.EventReady:
			c.log.logf(LogInfo, "ready")
		case sdk.EventWarning:
			c.log.logf(LogWarn, "warning: %v", wrap(ev.Err))
		}
	}
}

// IsReady reports whether the directory is usable now.
func (c *Client) IsReady() (ready bool) {
	defer c.recoverLog("IsReady")
	return !c.stopping.Load() && c.sdk.Ready()
}

// StartSOCKS serves SOCKS4a/SOCKS5 on addr, which must be a loopback
// address ("127.0.0.1:0" picks a free port; "" means that too), and
// returns the address it listens on ("127.0.0.1:PORT"). Point OkHttp,
// URLSession or a WebView's proxy setting at it, with remote name
// resolution (SOCKS5 with host names). Different SOCKS usernames get
// different circuits. It may be called more than once; Stop closes every
// port.
func (c *Client) StartSOCKS(addr string) (bound string, err error) {
	defer recoverTo(&err)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return "", errorf(KindClosed, "StartSOCKS: the client is stopped")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", errorf(KindIO, "StartSOCKS: %v", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return "", errorf(KindConfig, "StartSOCKS: %s is not a loopback address", addr)
	}
	bound = ln.Addr().String()
	c.listeners = append(c.listeners, ln)
	c.servers.Add(1)
	go func() {
		defer c.servers.Done()
		err := c.sdk.ServeSOCKS(ln)
		if !c.stopping.Load() {
			c.log.logf(LogWarn, "SOCKS port %s stopped: %v", bound, wrap(err))
		}
	}()
	c.log.logf(LogInfo, "SOCKS5 on %s", bound)
	return bound, nil
}

// Dial opens a TCP stream to host:port through Tor. The host (a name or
// an IP literal) is resolved by the exit relay, never on the device. It
// waits for the bootstrap if needed, at most Config.DialTimeoutMillis.
func (c *Client) Dial(host string, port int64) (s *Stream, err error) {
	defer recoverTo(&err)
	if c.stopping.Load() {
		return nil, errorf(KindClosed, "dial: the client is stopped")
	}
	addr, err := joinHostPort(host, port)
	if err != nil {
		return nil, err
	}
	conn, err := c.dialContext(c.ctx, "tcp", addr)
	if err != nil {
		return nil, c.stoppedOr(err)
	}
	c.streamsOpen.Add(1)
	return &Stream{conn: conn, c: c}, nil
}

func joinHostPort(host string, port int64) (string, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || len(host) > 255 {
		return "", errorf(KindBadAddress, "dial: bad host")
	}
	if port < 1 || port > 65535 {
		return "", errorf(KindBadAddress, "dial: port %d is out of range", port)
	}
	return net.JoinHostPort(host, strconv.FormatInt(port, 10)), nil
}

// dialContext dials through the sdk with the configured timeout.
func (c *Client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.set.dialTimeout)
	defer cancel()
	return c.sdk.DialContext(ctx, network, addr)
}

// stoppedOr returns a closed error when the client was stopped during the
// call (which cancelled it), else err with its kind.
func (c *Client) stoppedOr(err error) error {
	if c.ctx.Err() != nil {
		return errorf(KindClosed, "the client was stopped: %v", err)
	}
	return wrap(err)
}

// Download fetches url with an HTTP GET through Tor and streams the body
// into the file at path (replacing it only when the whole body arrived),
// so that large bodies never cross the bridge. It returns the body's
// length. Status codes other than 200 fail with kind http; a file that
// cannot be written fails with kind io.
func (c *Client) Download(url, path string) (size int64, err error) {
	defer recoverTo(&err)
	if c.stopping.Load() {
		return 0, errorf(KindClosed, "download: the client is stopped")
	}
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return 0, errorf(KindBadAddress, "download: want an http or https URL")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, c.stoppedOr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, errorf(KindHTTP, "download: status %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return 0, errorf(KindIO, "download: %v", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := &fileWriter{f: tmp}
	size, err = io.Copy(w, resp.Body)
	if err != nil {
		if w.err != nil {
			return size, errorf(KindIO, "download: %v", w.err)
		}
		return size, c.stoppedOr(err)
	}
	if err := tmp.Close(); err != nil {
		return size, errorf(KindIO, "download: %v", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return size, errorf(KindIO, "download: %v", err)
	}
	keep = true
	return size, nil
}

// fileWriter remembers write errors, to tell them from network errors.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// TrimMemory sheds what can be rebuilt (idle and preemptive circuits,
// idle connections; at TrimCritical also the Go heap's free pages) and
// returns how many circuits it closed. Open streams are kept. Call it from
// Android's onTrimMemory and iOS memory warnings.
func (c *Client) TrimMemory(level int64) (closed int64) {
	defer c.recoverLog("TrimMemory")
	if c.stopping.Load() {
		return 0
	}
	c.http.CloseIdleConnections()
	return int64(c.sdk.TrimMemory(int(max(0, min(level, TrimCritical)))))
}

// SetDormant puts the client to sleep (true: no preemptive circuits, no
// directory refreshes, no traffic of its own; dials still work) or wakes
// it (false). Call it when the app goes to the background and back.
func (c *Client) SetDormant(dormant bool) {
	defer c.recoverLog("SetDormant")
	if c.stopping.Load() {
		return
	}
	c.sdk.SetDormant(dormant)
}

// NetworkChanged tells the client that the device's network changed
// (Wi-Fi to cellular, say): connections made over the old network are
// closed and the directory is checked for freshness.
func (c *Client) NetworkChanged() {
	defer c.recoverLog("NetworkChanged")
	if c.stopping.Load() {
		return
	}
	c.http.CloseIdleConnections()
	c.sdk.NetworkChanged()
}

// StatsJSON returns the client's counters as a JSON object: bytes_read,
// bytes_written (relay connections, TLS level), dir_bytes_read,
// dir_bytes_by_kind, consensus_source ("cache", "full" or "diff"),
// microdescs_fetched, microdescs_from_cache, relays,
// relays_with_microdescs, directory_refreshes, channels_open,
// streams_open, bootstrap_ms, ready, store_errors, storage_warning, and
// consensus_valid_after / consensus_fresh_until / consensus_valid_until
// (RFC 3339, absent before the first consensus), and memory: an object
// with the process memory budget's split and use in bytes (budget,
// go_limit, directory_allowance, queue_limit_planned, pool_cells; then
// directory, queues, queues_peak, queue_limit, reclaims, reclaimed, pool,
// pool_waits, cache, go_heap, go_total, go_memory_limit,
// go_memory_limit_set, gc_percent, gc_percent_set), what sdk's
// MemoryStats documents, for an app to show.
func (c *Client) StatsJSON() (stats string) {
	defer func() {
		if r := recover(); r != nil {
			c.log.logf(LogWarn, "StatsJSON: panic: %v", r)
			stats = "{}"
		}
	}()
	st := c.sdk.Stats()
	out := statsJSON{
		BytesRead: st.BytesRead, BytesWritten: st.BytesWritten,
		DirBytesRead: st.DirBytesRead, DirBytesByKind: st.DirBytesByKind,
		ConsensusSource:   st.ConsensusSource,
		MicrodescsFetched: st.MicrodescsFetched, MicrodescsFromCache: st.MicrodescsFromCache,
		Relays: st.Relays, RelaysWithMicrodescs: st.RelaysWithMicrodescs,
		DirectoryRefreshes: st.DirectoryRefreshes, ChannelsOpen: st.ChannelsOpen,
		StreamsOpen: c.streamsOpen.Load(), BootstrapMS: st.BootstrapDuration.Milliseconds(),
		Ready: c.IsReady(), StoreErrors: st.StoreErrors, StorageWarning: st.StorageWarning,
		ValidAfter: rfc3339(st.ConsensusValidAfter), FreshUntil: rfc3339(st.ConsensusFreshUntil),
		ValidUntil: rfc3339(st.ConsensusValidUntil),
		Memory:     memoryJSONOf(st.Memory),
	}
	if out.DirBytesByKind == nil {
		out.DirBytesByKind = map[string]int64{}
	}
	b, err := json.Marshal(out)
	if err != nil { // not reachable with these field types
		return fmt.Sprintf(`{"error":%q}`, err.Error())
	}
	return string(b)
}

// statsJSON is StatsJSON's shape. The names are a contract with apps.
type statsJSON struct {
	BytesRead            int64            `json:"bytes_read"`
	BytesWritten         int64            `json:"bytes_written"`
	DirBytesRead         int64            `json:"dir_bytes_read"`
	DirBytesByKind       map[string]int64 `json:"dir_bytes_by_kind"`
	ConsensusSource      string           `json:"consensus_source"`
	MicrodescsFetched    int              `json:"microdescs_fetched"`
	MicrodescsFromCache  int              `json:"microdescs_from_cache"`
	Relays               int              `json:"relays"`
	RelaysWithMicrodescs int              `json:"relays_with_microdescs"`
	DirectoryRefreshes   int              `json:"directory_refreshes"`
	ChannelsOpen         int              `json:"channels_open"`
	StreamsOpen          int64            `json:"streams_open"`
	BootstrapMS          int64            `json:"bootstrap_ms"`
	Ready                bool             `json:"ready"`
	StoreErrors          int              `json:"store_errors"`
	StorageWarning       string           `json:"storage_warning,omitempty"`
	ValidAfter           string           `json:"consensus_valid_after,omitempty"`
	FreshUntil           string           `json:"consensus_fresh_until,omitempty"`
	ValidUntil           string           `json:"consensus_valid_until,omitempty"`
	Memory               memoryJSON       `json:"memory"`
}

// memoryJSON is StatsJSON's "memory" object (sdk.MemoryStats). The names
// are a contract with apps.
type memoryJSON struct {
	Budget             int64 `json:"budget"`
	GoLimit            int64 `json:"go_limit"`
	DirectoryAllowance int64 `json:"directory_allowance"`
	QueueLimitPlanned  int64 `json:"queue_limit_planned"`
	PoolCells          int   `json:"pool_cells"`
	Directory          int64 `json:"directory"`
	Queues             int64 `json:"queues"`
	QueuesPeak         int64 `json:"queues_peak"`
	QueueLimit         int64 `json:"queue_limit"`
	Reclaims           int64 `json:"reclaims"`
	Reclaimed          int64 `json:"reclaimed"`
	Pool               int64 `json:"pool"`
	PoolWaits          int64 `json:"pool_waits"`
	Cache              int64 `json:"cache"`
	GoHeap             int64 `json:"go_heap"`
	GoTotal            int64 `json:"go_total"`
	GoMemoryLimit      int64 `json:"go_memory_limit"`
	GoMemoryLimitSet   bool  `json:"go_memory_limit_set"`
	GCPercent          int   `json:"gc_percent"`
	GCPercentSet       bool  `json:"gc_percent_set"`
}

func memoryJSONOf(m sdk.MemoryStats) memoryJSON {
	return memoryJSON{
		Budget: m.Plan.Budget, GoLimit: m.Plan.GoLimit, DirectoryAllowance: m.Plan.Directory,
		QueueLimitPlanned: m.Plan.QueueLimit, PoolCells: m.Plan.PoolCells,
		Directory: m.Directory, Queues: m.Queues, QueuesPeak: m.QueuesPeak, QueueLimit: m.QueueLimit,
		Reclaims: m.Reclaims, Reclaimed: m.Reclaimed, Pool: m.Pool, PoolWaits: int64(min(m.PoolWaits, math.MaxInt64)),
		Cache: m.Cache, GoHeap: m.GoHeap, GoTotal: m.GoTotal,
		GoMemoryLimit: m.GoMemoryLimit, GoMemoryLimitSet: m.GoMemoryLimitSet,
		GCPercent: m.GCPercent, GCPercentSet: m.GCPercentSet,
	}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Stop closes the SOCKS ports, every stream and circuit, and the data
// directory, and makes blocked calls (Bootstrap, Dial, Download, Read)
// return with kind closed. No callback starts after it returns (one in
// progress may still finish). A second Stop fails with kind closed.
func (c *Client) Stop() (err error) {
	defer recoverTo(&err)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return errorf(KindClosed, "Stop: already stopped")
	}
	c.stopped = true
	lns := c.listeners
	c.listeners = nil
	c.mu.Unlock()

	c.log.logf(LogInfo, "stopping")
	c.stopping.Store(true)
	c.log.off.Store(true)
	c.cancel()
	for _, ln := range lns {
		ln.Close()
	}
	err = c.sdk.Close()
	c.servers.Wait()
	c.http.CloseIdleConnections()
	if errors.Is(err, sdk.ErrClosed) {
		err = nil
	}
	return wrap(err)
}

// recoverLog keeps a panic in a method without an error result from
// crossing the bridge (it would kill the app): it logs it instead. Use it
// as "defer c.recoverLog(name)".
func (c *Client) recoverLog(method string) {
	if r := recover(); r != nil {
		c.log.logf(LogWarn, "%s: panic: %v", method, r)
	}
}

// logSink serialises calls to the app's Logger and stops them after Stop.
type logSink struct {
	logger Logger
	level  int64
	off    atomic.Bool
	mu     sync.Mutex
}

func (s *logSink) enabled(level int64) bool {
	return s.logger != nil && level <= s.level && !s.off.Load()
}

func (s *logSink) logf(level int64, format string, args ...any) {
	if !s.enabled(level) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off.Load() {
		return
	}
	_ = s.logger.Log(level, msg) // the app's own failure; nowhere to report it
}
