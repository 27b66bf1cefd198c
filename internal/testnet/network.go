package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onionlite/onionlite/internal/clock"
)

// Network is a running test network. Its methods are safe for concurrent
// use.
type Network struct {
	cfg     Config
	dir     string
	temp    bool // dir was created by Start: removed by Stop unless failed
	owned   bool // false after Attach: the nodes belong to someone else
	torPath string
	gencert string
	clk     clock.Clock

	logMu   sync.Mutex
	logFile *os.File

	failed atomic.Bool

	mu    sync.Mutex
	nodes []Node
	procs map[string]*proc // by nick; only for owned networks
	// unpublished holds restarted nodes that have not yet logged building
	// their descriptor: nick -> info.log size at the restart.
	unpublished map[string]int64
	clients     []*Client
	clientSeq   int
	http        *httpTarget // in-process target
	httpProc    *proc       // detached target
	httpAddr    string
	stopped     bool
	stopErr     error
	started     []procRecord // every process ever started, for verifyGone
	ownsState   bool         // testnet.json describes what this Network runs
}

// procRecord remembers a started process and a string its command line
// holds, so a reused PID is never mistaken for ours.
type procRecord struct {
	pid   int
	match string
}

func secondsDuration(s int) time.Duration { return time.Duration(s) * time.Second }

// firstVoteLead is how long after writing the configurations the first
// vote should start: time to launch every node (their keys exist by then)
// and for the relays to post their descriptors. A first consensus that
// misses a relay costs a whole voting interval.
const firstVoteLead = 6 * time.Second

// Start builds and starts a network and returns once it is ready (see the
// package doc), or when ctx ends, with an error naming the log directory.
// On error everything it started has been stopped and the directory is
// kept.
func Start(ctx context.Context, cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tor, gencert, err := findTor(cfg.TorPath)
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, owned: true, torPath: tor, gencert: gencert, clk: clock.Real{}, procs: map[string]*proc{}}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "onionlite-testnet-")
		if err != nil {
			return nil, err
		}
		n.dir, n.temp = d, true
	} else {
		d, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		n.dir = d
	}
	if err := checkPath(n.dir); err != nil {
		if n.temp {
			os.RemoveAll(n.dir)
		}
		return nil, err
	}
	err = os.MkdirAll(n.LogDir(), 0o700)
	if err == nil {
		n.logFile, err = os.OpenFile(filepath.Join(n.LogDir(), "testnet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if err != nil {
		if n.temp {
			os.RemoveAll(n.dir)
		}
		return nil, err
	}
	if err := n.start(ctx); err != nil {
		n.failed.Store(true)
		n.Stop()
		return nil, fmt.Errorf("testnet: %w (logs in %s)", err, n.LogDir())
	}
	return n, nil
}

func (n *Network) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.logMu.Lock()
	if n.logFile != nil {
		fmt.Fprintf(n.logFile, "%s %s\n", n.clk.Now().Format("15:04:05.000"), msg)
	}
	n.logMu.Unlock()
	if n.cfg.Logf != nil {
		n.cfg.Logf("testnet: %s", msg)
	}
}

var errPortConflict = errors.New("port already in use")

func (n *Network) start(ctx context.Context) error {
	t0 := n.clk.Now()
	st, err := readState(n.dir)
	switch {
	case err == nil:
		if err := n.warm(st); err != nil {
			return err
		}
		if err := n.launchAll(ctx); err != nil {
			if errors.Is(err, errPortConflict) {
				return fmt.Errorf("%w; remove %s for a fresh network on new ports", err, n.dir)
			}
			return err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := n.claimDir(); err != nil {
			return err
		}
		for attempt := 1; ; attempt++ {
			err := n.create(ctx)
			if err == nil {
				err = n.launchAll(ctx)
			}
			if err == nil {
				break
			}
			if !errors.Is(err, errPortConflict) || attempt == 3 {
				return err
			}
			n.logf("attempt %d: %v; retrying on new ports", attempt, err)
			n.stopNodes()
			n.mu.Lock()
			var ps []int
			for _, nd := range n.nodes {
				ps = append(ps, nd.ORPort, nd.DirPort)
			}
			n.nodes = nil
			n.mu.Unlock()
			releasePorts(ps)
			if err := os.RemoveAll(filepath.Join(n.dir, "nodes")); err != nil {
				return err
			}
		}
	default:
		return err
	}
	n.logf("%d nodes launched after %v", len(n.Nodes()), n.clk.Now().Sub(t0).Round(time.Millisecond))
	n.mu.Lock()
	n.ownsState = true
	n.mu.Unlock()
	if err := n.startHTTP(ctx); err != nil {
		return err
	}
	if err := n.writeState(); err != nil {
		return err
	}
	if err := n.waitReady(ctx); err != nil {
		return err
	}
	n.logf("ready after %v", n.clk.Now().Sub(t0).Round(time.Millisecond))
	return nil
}

// markerFile marks a directory as made by this package, so that leftovers
// of a start that failed before writing testnet.json may be removed.
const markerFile = ".onionlite-testnet"

// claimDir prepares the directory of a fresh network: it removes the
// nodes of an earlier failed start, but refuses a "nodes" directory that
// this package did not make.
func (n *Network) claimDir() error {
	nodes := filepath.Join(n.dir, "nodes")
	if _, err := os.Stat(nodes); err == nil {
		if _, err := os.Stat(filepath.Join(n.dir, markerFile)); err != nil {
			return fmt.Errorf("%s exists but was not made by a test network: choose another directory", nodes)
		}
		if err := os.RemoveAll(nodes); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(n.dir, markerFile), []byte("made by github.com/onionlite/onionlite/internal/testnet\n"), 0o600)
}

// create makes the nodes of a fresh network: ports, keys, torrcs.
func (n *Network) create(ctx context.Context) error {
	cfg := n.cfg
	total := cfg.Auths + cfg.Relays + cfg.Exits
	ports, err := pickPorts(2 * total)
	if err != nil {
		return err
	}
	nodes := make([]Node, total)
	for i := range nodes {
		nd := &nodes[i]
		switch {
		case i < cfg.Auths:
			nd.Role, nd.Nick = Authority, "auth"+strconv.Itoa(i)
		case i < cfg.Auths+cfg.Relays:
			nd.Role, nd.Nick = Middle, "relay"+strconv.Itoa(i)
		default:
			nd.Role, nd.Nick = Exit, "exit"+strconv.Itoa(i)
		}
		nd.ORPort, nd.DirPort = ports[2*i], ports[2*i+1]
		nd.DataDir = filepath.Join(n.dir, "nodes", nd.Nick)
		if err := os.MkdirAll(nd.DataDir, 0o700); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(n.LogDir(), nd.Nick), 0o700); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.nodes = nodes
	n.mu.Unlock()

	// Keys: tor-gencert for the authorities, then tor --list-fingerprint
	// for every node (it creates the relay keys the node later uses).
	// Making them all before launch keeps the launch itself short, so the
	// first vote (see writeConfigs) reliably finds every relay.
	t0 := n.clk.Now()
	errs := make([]error, total)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			nd := &nodes[i]
			if nd.Role == Authority {
				if nd.V3Ident, errs[i] = genAuthorityKeys(ctx, n.gencert, nd.DataDir, nd.DirPort); errs[i] != nil {
					return
				}
			}
			if nd.Fingerprint, errs[i] = listFingerprint(ctx, n.torPath, nd.DataDir, nd.ORPort, nd.Nick); errs[i] != nil {
				return
			}
			nd.Ed25519ID, errs[i] = readEd25519ID(nd.DataDir)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.logf("keys made in %v", n.clk.Now().Sub(t0).Round(time.Millisecond))
	n.mu.Lock()
	n.nodes = nodes
	n.mu.Unlock()
	return n.writeConfigs()
}

// warm reuses the nodes of an existing network directory.
func (n *Network) warm(st *stateFile) error {
	if st.Dir != n.dir {
		n.logf("network directory moved from %s to %s", st.Dir, n.dir)
		return fmt.Errorf("%s was made in %s; tor's files name that path: start afresh", n.dir, st.Dir)
	}
	for _, nd := range st.Nodes {
		if nd.PID > 0 {
			if ok, _ := pidMatches(nd.PID, nd.Torrc); ok {
				return fmt.Errorf("node %s of %s is still running (pid %d): stop that network first", nd.Nick, n.dir, nd.PID)
			}
		}
	}
	interval, err := time.ParseDuration(st.Interval)
	if err != nil {
		return fmt.Errorf("testnet.json: bad interval %q", st.Interval)
	}
	n.cfg.Auths, n.cfg.Relays, n.cfg.Exits, n.cfg.Interval = st.Auths, st.Relays, st.Exits, interval
	nodes, err := st.nodes()
	if err != nil {
		return err
	}
	for i := range nodes {
		nodes[i].PID, nodes[i].ControlPort = 0, 0
		if err := os.MkdirAll(filepath.Join(n.LogDir(), nodes[i].Nick), 0o700); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.nodes = nodes
	n.mu.Unlock()
	n.logf("warm start of %d nodes in %s", len(nodes), n.dir)
	return n.writeConfigs()
}

// writeConfigs writes resolv.conf, the authorities file and every torrc.
func (n *Network) writeConfigs() error {
	if err := os.WriteFile(filepath.Join(n.dir, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return err
	}
	auths := n.AuthorityLines()
	if err := writeFileAtomic(n.AuthoritiesFile(), []byte(strings.Join(auths, "\n")+"\n")); err != nil {
		return err
	}
	ivl := int(n.cfg.Interval / time.Second)
	// The first consensus comes on the initial voting grid. Shift that
	// grid so its next round starts about firstVoteLead after now, when
	// every node runs and has posted its descriptor, instead of waiting
	// for the next multiple of the initial interval.
	_, _, initial, initVote, initDist := voteTimes(n.cfg.Interval)
	validAfter := n.clk.Now().Add(firstVoteLead).Unix() + int64(initVote+initDist)
	offset := int(validAfter % int64(initial))
	for _, nd := range n.Nodes() {
		rc := nodeTorrc(&nd, n.dir, filepath.Join(n.LogDir(), nd.Nick), ivl, offset, auths)
		if err := os.WriteFile(filepath.Join(nd.DataDir, "torrc"), []byte(rc), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// launchAll starts every node and waits until each has opened its
// listeners (it writes its control port file after binding them all).
func (n *Network) launchAll(ctx context.Context) error {
	nodes := n.Nodes()
	for _, nd := range nodes {
		if err := n.launch(nd.Nick); err != nil {
			return err
		}
	}
	for _, nd := range nodes {
		if err := n.waitListening(ctx, nd.Nick); err != nil {
			return err
		}
	}
	return nil
}

func (n *Network) node(nick string) (*Node, error) {
	for i := range n.nodes {
		if n.nodes[i].Nick == nick {
			return &n.nodes[i], nil
		}
	}
	return nil, fmt.Errorf("testnet: no node %q", nick)
}

// launch starts one node's tor process.
func (n *Network) launch(nick string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd, err := n.node(nick)
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(nd.DataDir, "control_port"))
	p, err := startProc(n.torPath, []string{"-f", filepath.Join(nd.DataDir, "torrc"), "--defaults-torrc", os.DevNull},
		filepath.Join(n.LogDir(), nd.Nick, "stdout.log"), n.cfg.Detached)
	if err != nil {
		return err
	}
	nd.PID, nd.ControlPort = p.pid, 0
	n.procs[nick] = p
	n.started = append(n.started, procRecord{p.pid, filepath.Join(nd.DataDir, "torrc")})
	n.logf("started %s (%s) pid %d: or %d dir %d", nd.Nick, nd.Role, p.pid, nd.ORPort, nd.DirPort)
	return nil
}

// waitListening waits for a node's control port file (tor writes it
// once it has bound every listener), and fails early with the tail of the
// node's log if the node exits.
func (n *Network) waitListening(ctx context.Context, nick string) error {
	n.mu.Lock()
	nd, err := n.node(nick)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	dataDir, p := nd.DataDir, n.procs[nick]
	n.mu.Unlock()
	deadline := n.clk.After(60 * time.Second)
	for {
		if port, err := readPortFile(filepath.Join(dataDir, "control_port")); err == nil {
			n.mu.Lock()
			if nd, err := n.node(nick); err == nil {
				nd.ControlPort = port
			}
			n.mu.Unlock()
			return nil
		}
		select {
		case <-p.done:
			return n.exitError(nick, p)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen: %w", nick, ctx.Err())
		case <-deadline:
			return fmt.Errorf("%s did not open its listeners within 60s", nick)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitError describes a node that exited, with the end of its notice log.
func (n *Network) exitError(nick string, p *proc) error {
	tail := logTail(filepath.Join(n.LogDir(), nick, "notice.log"), 6)
	if tail == "" {
		tail = logTail(filepath.Join(n.LogDir(), nick, "stdout.log"), 6)
	}
	err := fmt.Errorf("%s (pid %d) exited: %v; log ends:\n%s", nick, p.pid, p.waitErr(), tail)
	if strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w: %w", errPortConflict, err)
	}
	return err
}

// readPortFile parses a ControlPortWriteToFile file ("PORT=127.0.0.1:N").
func readPortFile(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "PORT="); ok {
			i := strings.LastIndexByte(a, ':')
			port, err := strconv.Atoi(a[i+1:])
			if i < 0 || err != nil || port <= 0 || port > 65535 {
				return 0, fmt.Errorf("%s: bad line %q", p, line)
			}
			return port, nil
		}
	}
	return 0, fmt.Errorf("%s: no PORT line yet", p)
}

// logTail returns the last n lines of a file, or "".
func logTail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte{'\n'})
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + string(bytes.Join(lines, []byte("\n  ")))
}

// startHTTP starts the HTTP target: in process, or as a detached command.
func (n *Network) startHTTP(ctx context.Context) error {
	if !n.cfg.Detached || len(n.cfg.HTTPCommand) == 0 {
		t, err := startHTTPTarget()
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.http, n.httpAddr = t, t.addr()
		n.mu.Unlock()
		n.logf("HTTP target on %s (in process)", t.addr())
		return nil
	}
	addrFile := filepath.Join(n.dir, httpAddrFile)
	os.Remove(addrFile)
	c := n.cfg.HTTPCommand
	p, err := startProc(c[0], c[1:], filepath.Join(n.LogDir(), "http.log"), true)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.httpProc = p
	n.started = append(n.started, procRecord{p.pid, c[len(c)-1]})
	n.mu.Unlock()
	deadline := n.clk.After(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			addr := strings.TrimSpace(string(b))
			n.mu.Lock()
			n.httpAddr = addr
			n.mu.Unlock()
			n.logf("HTTP target on %s (pid %d)", addr, p.pid)
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("HTTP target command exited: %v; log ends:\n%s", p.waitErr(), logTail(filepath.Join(n.LogDir(), "http.log"), 6))
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errors.New("HTTP target command wrote no address within 30s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReady polls the readiness check once a second, and fails at once if
// a node dies.
//
// Relays started before the first consensus back off exponentially after
// each 404, and then often fetch the consensus half a minute after it
// appeared. So once the authorities' consensus is complete, a node that
// still lacks it (or a microdescriptor) a second later gets a SIGHUP, which makes
// tor reset its download schedules and fetch at once.
func (n *Network) waitReady(ctx context.Context) error {
	last := ""
	var completeSince time.Time
	nudged := map[string]time.Time{}
	for {
		n.mu.Lock()
		for nick, p := range n.procs {
			if p.exited() {
				n.mu.Unlock()
				return n.exitError(nick, p)
			}
		}
		nodes := append([]Node(nil), n.nodes...)
		n.mu.Unlock()
		now := n.clk.Now()
		state, ok, lagging := checkReady(ctx, nodes, now.UTC())
		if un := n.unpublishedNodes(); len(un) > 0 {
			state += fmt.Sprintf("; restarted, own descriptor not built yet: %s", strings.Join(un, ", "))
			ok = false
		}
		if state != last {
			n.logf("%s", state)
			last = state
		}
		if ok {
			return nil
		}
		if lagging == nil {
			completeSince = time.Time{}
		} else if completeSince.IsZero() {
			completeSince = now
		}
		if !completeSince.IsZero() && now.Sub(completeSince) >= time.Second {
			for _, nick := range lagging {
				if now.Sub(nudged[nick]) < 5*time.Second {
					continue
				}
				nudged[nick] = now
				n.nudge(nick)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("network not ready: %w; last state: %s", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// nudge sends SIGHUP to a node this network runs.
func (n *Network) nudge(nick string) {
	n.mu.Lock()
	p := n.procs[nick]
	n.mu.Unlock()
	if p == nil || p.exited() {
		return
	}
	if err := hangup(p.cmd.Process); err == nil {
		n.logf("%s lags behind the consensus: sent SIGHUP", nick)
	}
}

// WaitReady waits until the network passes the readiness check again, for
// example after RestartNode or a clock-dependent test.
func (n *Network) WaitReady(ctx context.Context) error {
	return n.waitReady(ctx)
}

// Stop stops every client and node it started, and the HTTP target, and
// waits until each process has been reaped. It removes a temporary
// directory unless the run failed (MarkFailed, or a failed Start), in
// which case it prints where the logs are. Later calls return the first
// result.
func (n *Network) Stop() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return n.stopErr
	}
	n.stopped = true
	clients := n.clients
	n.mu.Unlock()

	var errs []error
	for _, c := range clients {
		if err := c.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.stopNodes(); err != nil {
		errs = append(errs, err)
	}
	if n.owned {
		var ps []int
		for _, nd := range n.Nodes() {
			ps = append(ps, nd.ORPort, nd.DirPort)
		}
		releasePorts(ps)
	}
	n.mu.Lock()
	if n.http != nil {
		n.http.close()
	}
	hp := n.httpProc
	n.mu.Unlock()
	if hp != nil {
		if err := hp.stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.verifyGone(); err != nil {
		errs = append(errs, err)
	}
	n.mu.Lock()
	ownsState := n.ownsState
	n.mu.Unlock()
	if ownsState {
		if err := n.writeState(); err != nil && !n.temp {
			errs = append(errs, err)
		}
	}
	n.logf("stopped")
	n.logMu.Lock()
	if n.logFile != nil {
		n.logFile.Close()
		n.logFile = nil
	}
	n.logMu.Unlock()
	err := errors.Join(errs...)
	if err != nil {
		n.failed.Store(true)
	}
	if n.failed.Load() {
		fmt.Fprintf(os.Stderr, "testnet: run failed; network directory kept: %s (logs in %s)\n", n.dir, n.LogDir())
	} else if n.temp && os.Getenv(EnvKeep) == "1" {
		fmt.Fprintf(os.Stderr, "testnet: $%s=1: network directory kept: %s\n", EnvKeep, n.dir)
	} else if n.temp {
		if rerr := os.RemoveAll(n.dir); rerr != nil {
			err = rerr
		}
	}
	n.mu.Lock()
	n.stopErr = err
	n.mu.Unlock()
	return err
}

// stopNodes stops every node process: SIGTERM to all, then waits.
func (n *Network) stopNodes() error {
	n.mu.Lock()
	var ps []*proc
	for _, p := range n.procs {
		if !p.exited() {
			terminate(p.cmd.Process)
		}
		ps = append(ps, p)
	}
	for i := range n.nodes {
		n.nodes[i].PID = 0
	}
	n.procs = map[string]*proc{}
	n.mu.Unlock()
	var errs []error
	for _, p := range ps {
		if err := p.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// verifyGone checks that no process this network ever started still runs.
func (n *Network) verifyGone() error {
	n.mu.Lock()
	recs := append([]procRecord(nil), n.started...)
	n.mu.Unlock()
	var left []string
	for _, r := range recs {
		if ok, _ := pidMatches(r.pid, r.match); ok {
			left = append(left, strconv.Itoa(r.pid))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("testnet: processes still running after Stop: %s", strings.Join(left, ", "))
	}
	return nil
}

// MarkFailed makes Stop keep the network directory and print where the
// logs are. Shared calls it when a test using the network fails.
func (n *Network) MarkFailed() { n.failed.Store(true) }

// Nodes returns a copy of the nodes, authorities first, then middles, then
// exits.
func (n *Network) Nodes() []Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Node(nil), n.nodes...)
}

// AuthorityLines returns one torrc "DirAuthority ..." line per authority.
func (n *Network) AuthorityLines() []string {
	var out []string
	for _, nd := range n.Nodes() {
		if nd.Role == Authority {
			out = append(out, authorityLine(&nd))
		}
	}
	return out
}

// AuthoritiesFile returns the path of DIR/authorities, which holds the
// AuthorityLines.
func (n *Network) AuthoritiesFile() string { return filepath.Join(n.dir, "authorities") }

// HTTPTarget returns "127.0.0.1:PORT" of the HTTP target.
func (n *Network) HTTPTarget() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.httpAddr
}

// Bodies returns the files the HTTP target serves.
func (n *Network) Bodies() []Body { return bodies() }

// Body returns the served body called name.
func (n *Network) Body(name string) (Body, bool) {
	for _, b := range bodies() {
		if b.Name == name {
			return b, true
		}
	}
	return Body{}, false
}

// Dir returns the network's root directory.
func (n *Network) Dir() string { return n.dir }

// LogDir returns the directory holding testnet.log and one directory of
// logs per node (notice.log, info.log, stdout.log).
func (n *Network) LogDir() string { return filepath.Join(n.dir, "logs") }

// Interval returns the voting interval.
func (n *Network) Interval() time.Duration { return n.cfg.Interval }

// KillNode sends SIGKILL to one node and waits until it is gone.
func (n *Network) KillNode(nick string) error {
	n.mu.Lock()
	if !n.owned || n.stopped {
		n.mu.Unlock()
		return errors.New("testnet: KillNode on a network this process does not run")
	}
	nd, err := n.node(nick)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	p := n.procs[nick]
	delete(n.procs, nick)
	nd.PID, nd.ControlPort = 0, 0
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("testnet: node %s is not running", nick)
	}
	if err := p.kill(); err != nil {
		return err
	}
	n.logf("killed %s (pid %d)", nick, p.pid)
	return n.writeState()
}

// RestartNode stops a node if it runs (SIGTERM), starts it again with the
// same keys, ports and data, and returns once it listens (at most a
// minute). It does not wait for the next consensus; see WaitReady.
func (n *Network) RestartNode(nick string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.mu.Lock()
	if !n.owned || n.stopped {
		n.mu.Unlock()
		return errors.New("testnet: RestartNode on a network this process does not run")
	}
	if _, err := n.node(nick); err != nil {
		n.mu.Unlock()
		return err
	}
	p := n.procs[nick]
	delete(n.procs, nick)
	n.mu.Unlock()
	if p != nil {
		if err := p.stop(10 * time.Second); err != nil {
			return err
		}
	}
	var logSize int64
	if fi, err := os.Stat(filepath.Join(n.LogDir(), nick, "info.log")); err == nil {
		logSize = fi.Size()
	}
	if err := n.launch(nick); err != nil {
		return err
	}
	if err := n.waitListening(ctx, nick); err != nil {
		return err
	}
	n.mu.Lock()
	if n.unpublished == nil {
		n.unpublished = map[string]int64{}
	}
	n.unpublished[nick] = logSize
	n.mu.Unlock()
	return n.writeState()
}

// builtLine is what tor logs (at info) when it builds its own descriptor.
// Until it has, a restarted exit refuses every stream with reason
// EXITPOLICY (it has no routerinfo to check its exit policy against),
// while the consensus still lists it from before the restart. (The
// notice-level "Publishing server descriptor" is not logged after every
// restart.)
const builtLine = "router_rebuild_descriptor(): Rebuilding relay descriptor"

// unpublishedNodes returns the restarted nodes that have not yet logged
// building their descriptor, and forgets the ones that have.
func (n *Network) unpublishedNodes() []string {
	n.mu.Lock()
	pending := maps.Clone(n.unpublished)
	n.mu.Unlock()
	var out []string
	for nick, off := range pending {
		if logHas(filepath.Join(n.LogDir(), nick, "info.log"), off, builtLine) {
			n.mu.Lock()
			delete(n.unpublished, nick)
			n.mu.Unlock()
			continue
		}
		out = append(out, nick)
	}
	slices.Sort(out)
	return out
}

// logHas reports whether the file at path holds s after byte offset off.
func logHas(path string, off int64, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false
	}
	b, err := io.ReadAll(f)
	return err == nil && bytes.Contains(b, []byte(s))
}
