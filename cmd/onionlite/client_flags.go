package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onionlite/onionlite/sdk"
	"github.com/onionlite/onionlite/transport"
)

// clientFlags are the options every client command (bootstrap, get,
// socks) shares.
type clientFlags struct {
	authorities string
	dataDir     string
	proxy       string
	statsJSON   string
	testNetwork bool
	verbose     bool
	bridges     multiFlag
	now         string
	memory      string
	conflux     string
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.authorities, "authorities", "", "file of torrc DirAuthority lines (a test network); default: the real Tor network")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the cache and client state (default: the user cache directory)")
	fs.StringVar(&f.proxy, "proxy", "", "reach relays through this upstream proxy: socks5://[user:pass@]host:port")
	fs.StringVar(&f.statsJSON, "stats-json", "", "write statistics as JSON to this file when done")
	fs.BoolVar(&f.testNetwork, "test-network", false, "relax path rules a loopback test network cannot meet (implied when every authority is on loopback)")
	fs.BoolVar(&f.verbose, "v", false, "log debugging output to stderr")
	fs.Var(&f.bridges, "bridge", `fetch the directory only from this relay: "IP:ORPORT FINGERPRINT" (repeatable)`)
	fs.StringVar(&f.now, "now", "", "start the client's clock at this RFC 3339 time (replays of old documents)")
	fs.StringVar(&f.conflux, "conflux", "auto", "conflux sets (two circuits to one exit): auto (on except on Android and iOS and under budgets below 64MiB), on or off")
	fs.StringVar(&f.memory, "memory-budget", "", "whole-process memory budget, e.g. 16MiB (the phones' default) or 128MiB (default here: the sdk's for this platform)")
}

// client builds the sdk.Client the flags describe.
func (f *clientFlags) client(stderr io.Writer) (*sdk.Client, error) {
	c := &sdk.Client{DataDir: f.dataDir, TestNetwork: f.testNetwork}
	if c.DataDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no --data-dir and no user cache directory: %v", err)
		}
		c.DataDir = filepath.Join(base, "onionlite")
	}
	if f.authorities != "" {
		lines, err := readAuthorityLines(f.authorities)
		if err != nil {
			return nil, err
		}
		c.Authorities = lines
	}
	if f.proxy != "" {
		d, err := parseProxy(f.proxy)
		if err != nil {
			return nil, err
		}
		c.Dialer = d
	}
	c.Bridges = f.bridges
	if f.now != "" {
		t, err := time.Parse(time.RFC3339, f.now)
		if err != nil {
			return nil, fmt.Errorf("--now: %v", err)
		}
		c.Clock = sdk.StartingAt(t)
	}
	if f.memory != "" {
		n, err := parseSize(f.memory)
		if err != nil {
			return nil, fmt.Errorf("--memory-budget: %v", err)
		}
		c.MemoryBudget = n
	}
	mode, err := sdk.ParseConfluxMode(f.conflux)
	if err != nil {
		return nil, fmt.Errorf("--conflux: %v", err)
	}
	c.Conflux = mode
	if f.verbose {
		c.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	return c, nil
}

func readAuthorityLines(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--authorities: %v", err)
	}
	defer fh.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(fh, 1<<20))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--authorities: %v", err)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("--authorities: %s has no DirAuthority lines", path)
	}
	return lines, nil
}

// parseProxy accepts socks5://[user:pass@]host:port (socks5h too).
func parseProxy(s string) (transport.Dialer, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "socks5" && u.Scheme != "socks5h") || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("--proxy: want socks5://[user:pass@]host:port, got %q", s)
	}
	d := &transport.SOCKS5{Addr: u.Host}
	if u.User != nil {
		d.Username = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	return d, nil
}

// clientStats is the --stats-json output shared by the client commands.
// The field names are a contract: scripts read them.
type clientStats struct {
	BootstrapMS        int64            `json:"bootstrap_ms"`
	BytesRead          int64            `json:"bytes_read"`
	BytesWritten       int64            `json:"bytes_written"`
	DirBytesRead       int64            `json:"dir_bytes_read"`
	DirBytesByKind     map[string]int64 `json:"dir_bytes_by_kind"`
	ConsensusSource    string           `json:"consensus_source"`
	MicrodescsFetched  int              `json:"microdescs_fetched"`
	MicrodescsCached   int              `json:"microdescs_from_cache"`
	Relays             int              `json:"relays"`
	PeakRSSBytes       int64            `json:"peak_rss_bytes"`
	ConsensusValidFrom string           `json:"consensus_valid_after,omitempty"`
	StoreErrors        int              `json:"store_errors"`
	StorageWarning     string           `json:"storage_warning,omitempty"`
	CircuitsBuilt      int64            `json:"circuits_built"`
	ConfluxSets        int64            `json:"conflux_sets"`
	// Set by "get".
	FirstByteMS *int64 `json:"first_byte_ms,omitempty"`
	TotalMS     *int64 `json:"total_ms,omitempty"`
	BodyBytes   *int64 `json:"body_bytes,omitempty"`
}

func newClientStats(st sdk.Stats, bootstrap time.Duration) *clientStats {
	r := &clientStats{
		BootstrapMS: bootstrap.Milliseconds(), BytesRead: st.BytesRead, BytesWritten: st.BytesWritten,
		DirBytesRead: st.DirBytesRead, DirBytesByKind: st.DirBytesByKind, ConsensusSource: st.ConsensusSource,
		MicrodescsFetched: st.MicrodescsFetched, MicrodescsCached: st.MicrodescsFromCache, Relays: st.Relays,
		PeakRSSBytes: peakRSS(), StoreErrors: st.StoreErrors, StorageWarning: st.StorageWarning,
		CircuitsBuilt: st.CircuitsBuilt, ConfluxSets: st.ConfluxSets,
	}
	if !st.ConsensusValidAfter.IsZero() {
		r.ConsensusValidFrom = st.ConsensusValidAfter.UTC().Format(time.RFC3339)
	}
	return r
}

func writeStats(path string, r *clientStats) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--stats-json: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--stats-json: %v", err)
	}
	return nil
}

// errLine turns an error into the one line a command prints.
// bootstrapRetrying runs c.Bootstrap and, when a round failed at every
// source, says so and waits for the client's own retries (with backoff)
// until ctx ends: a command with a timeout, or a proxy meant to run until
// stopped, should not give up on the first round.
func bootstrapRetrying(ctx context.Context, c *sdk.Client, stderr io.Writer, cmd string) error {
	err := c.Bootstrap(ctx)
	if err == nil || ctx.Err() != nil || !errors.Is(err, &sdk.Error{Kind: sdk.KindBootstrapFailed}) {
		return err
	}
	fmt.Fprintf(lockedWriter{stderr}, "onionlite %s: %s; retrying\n", cmd, errLine(err))
	return c.WaitReady(ctx)
}

func errLine(err error) string {
	var e *sdk.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%v (%s)", err, e.Kind)
	}
	return err.Error()
}

// parseSize reads a byte count: a plain number or one with a suffix KiB,
// MiB, GiB (powers of 1024; K, M, G and KB, MB, GB mean the same here).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("want a size such as 16MiB, got %q", s)
	}
	return n * mult, nil
}
