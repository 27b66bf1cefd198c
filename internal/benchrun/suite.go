package benchrun

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// Network names.
const (
	Testnet10  = "testnet10"
	Testnet50  = "testnet50"
	Replay2019 = "replay2019"
)

// NetworkSpec describes a network the suite can measure on.
type NetworkSpec struct {
	Name                 string
	Title                string
	Auths, Relays, Exits int  // test networks
	Replay               bool // the full-scale 2019 directory replay
}

// Networks are the networks the suite knows, in report order.
var Networks = []NetworkSpec{
	{Name: Testnet10, Title: "10-relay test network (3 authorities, 4 middles, 3 exits)", Auths: 3, Relays: 4, Exits: 3},
	{Name: Testnet50, Title: "50-relay test network (3 authorities, 37 middles, 10 exits)", Auths: 3, Relays: 37, Exits: 10},
	{Name: Replay2019, Title: "full-scale replay of the real 2019-12-15 directory (6,345 relays)", Replay: true},
}

// NetworkByName finds a network of Networks.
func NetworkByName(name string) (NetworkSpec, bool) {
	for _, n := range Networks {
		if n.Name == name {
			return n, true
		}
	}
	return NetworkSpec{}, false
}

// Options configure one invocation of the suite.
type Options struct {
	// Bin is the onionlite CLI run as a child for every onionlite run
	// (scripts/bench: the lean client build, CGO_ENABLED=0 -tags nodev).
	// The set records how it was built (Env.Build).
	Bin string
	// Commit describes the checkout Bin was built from, taken when the
	// invocation began, for a binary without VCS stamps (-buildvcs=false):
	// later sets must not take a HEAD that moved during the run. ""
	// means the working directory's HEAD when each set begins.
	Commit   string
	Out      string // results.json and the SVG plots go here
	Report   string // the Markdown report
	Networks []string
	Profiles []Profile
	Starts   []string // cold (always), warm, stale
	Reps     int
	// ReplayReps is the repetitions on the full-scale replay, whose slow
	// links take minutes per run. 0 means Reps.
	ReplayReps int
	Quick      bool
	// Interval is the test networks' voting interval. A cached consensus
	// expires 3 intervals after it was made, which sets how long a stale
	// start waits.
	Interval time.Duration
	Timeout  time.Duration // per client run
	WorkDir  string        // scratch space; "" = a temporary directory
	Keep     bool          // keep WorkDir (client data and logs)
	// ClientVerbose runs onionlite with -v, its debug log going into the
	// run's log file.
	ClientVerbose bool
	// MemoryBudget is passed to every onionlite run as --memory-budget
	// (e.g. "16MiB", the phones' default); "" leaves the CLI's default.
	MemoryBudget string
	Command      string // the command line, recorded in the results
	// Reexec is the argv that repeats this invocation (program first).
	// The replay runs it again inside a new network namespace with
	// --networks replay2019 when this process is not in one already.
	Reexec []string
	Logf   func(format string, args ...any)
}

// Caps are what the onionlite CLI under test supports beyond bootstrap.
type Caps struct {
	Get    bool // "onionlite get": fetch scenarios
	Bridge bool // --bridge and --now: the full-scale replay
}

// ProbeCLI asks the CLI which subcommands and flags it has.
func ProbeCLI(bin string) (Caps, error) {
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		return Caps{}, fmt.Errorf("%s help: %v: %s", bin, err, out)
	}
	var c Caps
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "get" {
			c.Get = true
		}
	}
	// Flags are parsed before anything else: with --bridge and --now
	// known, bootstrap gets as far as reading the (empty) authorities
	// file and says so; otherwise it prints its usage.
	out, _ = exec.Command(bin, "bootstrap", "--bridge", "127.0.0.1:1 "+strings.Repeat("0", 40), "--now", ReplayNow,
		"--data-dir", os.DevNull, "--authorities", os.DevNull).CombinedOutput()
	c.Bridge = strings.Contains(string(out), "--authorities: ") && !strings.Contains(string(out), "usage:")
	return c, nil
}

// scenarios returns what to run on a profile: bootstrap only, or with get
// each start followed by a fetch (64 KiB on throttled links; 10 MiB after
// a cold start and 1 MiB otherwise unthrottled).
func scenarios(starts []string, p Profile, caps Caps) []Scenario {
	var out []Scenario
	for _, s := range starts {
		sc := Scenario{Start: s}
		if caps.Get {
			switch {
			case p.Throttled():
				sc.Fetch = "64KiB.bin"
			case s == Cold:
				sc.Fetch = "10MiB.bin"
			default:
				sc.Fetch = "1MiB.bin"
			}
		}
		out = append(out, sc)
	}
	return out
}

// RunSuite measures every network of o and rewrites results.json, the report
// and the plots after each profile, so an interrupted run keeps what it
// measured (marked incomplete).
func RunSuite(ctx context.Context, o Options) error {
	if o.Reps < 1 {
		return errors.New("benchrun: Reps must be at least 1")
	}
	if !slices.Contains(o.Starts, Cold) {
		return errors.New("benchrun: warm and stale starts need the cold start before them")
	}
	if o.Interval == 0 {
		o.Interval = 20 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	caps, err := ProbeCLI(o.Bin)
	if err != nil {
		return err
	}
	o.Logf("onionlite CLI %s: get %v, --bridge/--now %v", o.Bin, caps.Get, caps.Bridge)
	resPath := filepath.Join(o.Out, "results.json")
	res, err := LoadResults(resPath)
	if err != nil {
		return err
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "onionlite-bench-")
		if err != nil {
			return err
		}
		o.WorkDir = d
		if !o.Keep {
			defer os.RemoveAll(d)
		}
	}
	save := func(set Set) error {
		res.Put(set)
		if err := res.Save(resPath); err != nil {
			return err
		}
		return WriteReport(res, o.Out, o.Report)
	}
	for _, name := range o.Networks {
		spec, ok := NetworkByName(name)
		if !ok {
			return fmt.Errorf("benchrun: unknown network %q", name)
		}
		var err error
		switch {
		case spec.Replay && loopbackOnly() != nil:
			// Run again inside a namespace; that process writes the set.
			if err = replayInNamespace(ctx, o); err == nil {
				res, err = LoadResults(resPath)
			}
		case spec.Replay:
			err = runReplaySet(ctx, o, spec, caps, save)
		default:
			err = runTestnetSet(ctx, o, spec, caps, save)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// bench is the state of one set being measured.
type bench struct {
	o    Options
	set  *Set
	caps Caps
	seq  int
}

func newSet(o Options, spec NetworkSpec, caps Caps) *Set {
	s := &Set{
		Network: spec.Name, Title: spec.Title, Nodes: spec.Auths + spec.Relays + spec.Exits,
		Env: CollectEnv(o), Profiles: o.Profiles, Reps: o.Reps, Incomplete: true,
	}
	seen := map[string]bool{}
	for _, p := range o.Profiles {
		for _, sc := range scenarios(o.Starts, p, caps) {
			if !seen[sc.Name()] {
				seen[sc.Name()] = true
				s.Scenarios = append(s.Scenarios, sc)
			}
		}
	}
	if !caps.Get {
		for _, p := range o.Profiles {
			for _, sc := range scenarios(o.Starts, p, Caps{Get: true}) {
				if !slices.Contains(s.Unsupported, sc) {
					s.Unsupported = append(s.Unsupported, sc)
				}
			}
		}
	}
	return s
}

// runTestnetSet starts a test network and measures every profile on it.
func runTestnetSet(ctx context.Context, o Options, spec NetworkSpec, caps Caps, save func(Set) error) error {
	began := time.Now()
	b := &bench{o: o, caps: caps, set: newSet(o, spec, caps)}
	b.set.Interval = o.Interval.Seconds()
	o.Logf("%s: starting the network (%d nodes, voting every %v)", spec.Name, b.set.Nodes, o.Interval)
	nctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	n, err := testnet.Start(nctx, testnet.Config{
		Dir:   filepath.Join(o.WorkDir, spec.Name, "net"),
		Auths: spec.Auths, Relays: spec.Relays, Exits: spec.Exits,
		Interval: o.Interval,
		Logf:     o.Logf,
	})
	cancel()
	if err != nil {
		return err
	}
	defer n.Stop()
	b.set.StartupS = time.Since(began).Seconds()
	o.Logf("%s: network ready after %.0f s", spec.Name, b.set.StartupS)
	for _, p := range o.Profiles {
		if err := b.profile(ctx, n, p); err != nil {
			b.set.Env.Seconds = time.Since(began).Seconds()
			save(*b.set)
			n.MarkFailed()
			return err
		}
		b.set.Env.Seconds = time.Since(began).Seconds()
		if err := save(*b.set); err != nil {
			return err
		}
	}
	b.set.Incomplete = false
	b.set.Env.Seconds = time.Since(began).Seconds()
	return save(*b.set)
}

// slot is one client's chain of starts in one repetition.
type slot struct {
	client string
	dir    string
	last   Run // the latest run in the chain
}

// profile runs every repetition of every scenario on one link profile:
// per repetition, each client in turn (A/B) makes a cold start right
// after a new consensus appears, then a warm restart; once each client's
// cached consensus has expired, each makes a stale restart.
func (b *bench) profile(ctx context.Context, n *testnet.Network, p Profile) error {
	scs := scenarios(b.o.Starts, p, b.caps)
	byStart := map[string]Scenario{}
	for _, sc := range scs {
		byStart[sc.Start] = sc
	}
	for rep := 1; rep <= b.o.Reps; rep++ {
		var slots []*slot
		for _, cl := range []string{Onionlite, CTor} {
			s := &slot{client: cl, dir: filepath.Join(b.o.WorkDir, b.set.Network, p.Name, "rep"+strconv.Itoa(rep), cl)}
			if err := os.MkdirAll(s.dir, 0o700); err != nil {
				return err
			}
			slots = append(slots, s)
			if _, err := waitNewConsensus(ctx, n); err != nil {
				return err
			}
			s.last = b.one(ctx, n, p, byStart[Cold], s, rep)
			if sc, ok := byStart[Warm]; ok {
				s.last = b.one(ctx, n, p, sc, s, rep)
			}
		}
		sc, ok := byStart[Stale]
		if !ok {
			continue
		}
		for _, s := range slots {
			if err := waitExpired(ctx, s.last, n.Interval()); err != nil {
				return err
			}
			s.last = b.one(ctx, n, p, sc, s, rep)
		}
	}
	return nil
}

// one makes one client run through a new proxy for the profile and adds
// it to the set.
func (b *bench) one(ctx context.Context, n *testnet.Network, p Profile, sc Scenario, s *slot, rep int) Run {
	b.seq++
	r := Run{
		Seq: b.seq, Network: b.set.Network, Profile: p.Name, Scenario: sc.Name(), Start: sc.Start, Fetch: sc.Fetch,
		Client: s.client, Rep: rep, Began: time.Now().UTC(), Load1: load1(),
	}
	err := b.clientRun(ctx, n, p, sc, s, &r)
	if err != nil {
		r.Error = err.Error()
		b.o.Logf("%s %s %s %s #%d: FAILED: %v", r.Network, r.Profile, r.Scenario, r.Client, rep, err)
	} else {
		r.OK = true
		b.o.Logf("%s", runLine(&r))
	}
	b.set.Runs = append(b.set.Runs, r)
	return r
}

// confluxFor is onionlite's --conflux on link p, as a phone app would set
// it: conflux sets (a second circuit through another guard) on a fast
// link (Wi-Fi), where the Tor network and not the link is the bottleneck;
// none on a slow or metered one, where a second leg adds bytes and no
// speed. C tor runs with its default (conflux on) everywhere.
func confluxFor(p Profile) string {
	if p.Throttled() {
		return "off"
	}
	return "on"
}

// ConfluxPolicy describes confluxFor for the results.
const ConfluxPolicy = "on unthrottled, off on throttled links"

func (b *bench) clientRun(ctx context.Context, n *testnet.Network, p Profile, sc Scenario, s *slot, r *Run) error {
	proxy, err := slowlink.New(p.Slowlink())
	if err != nil {
		return err
	}
	if err := proxy.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer proxy.Close()
	var body testnet.Body
	url := ""
	if sc.Fetch != "" {
		var ok bool
		if body, ok = n.Body(sc.Fetch); !ok {
			return fmt.Errorf("the test network serves no %s", sc.Fetch)
		}
		url = "http://" + n.HTTPTarget() + "/" + sc.Fetch
	}
	tag := fmt.Sprintf("%03d-%s", r.Seq, sc.Name())
	switch s.client {
	case Onionlite:
		bodyPath := filepath.Join(s.dir, "body")
		err = runOnionlite(ctx, olSpec{
			Bin: b.o.Bin, DataDir: filepath.Join(s.dir, "data"), Authorities: n.AuthoritiesFile(), URL: url, BodyPath: bodyPath, Verbose: b.o.ClientVerbose,
			Memory: b.o.MemoryBudget, Conflux: confluxFor(p), Timeout: b.o.Timeout, LogPath: filepath.Join(s.dir, tag+".log"), StatsPath: filepath.Join(s.dir, tag+".json"),
		}, proxy, r)
		if err == nil && sc.Fetch != "" {
			err = checkBody(bodyPath, body)
		}
		os.Remove(bodyPath)
	case CTor:
		err = runTor(ctx, n, torSpec{Dir: s.dir, Body: body, URL: url, Timeout: b.o.Timeout, Tag: tag}, proxy, r)
	default:
		err = fmt.Errorf("BUG: unknown client %q", s.client)
	}
	return err
}

// checkBody compares a fetched file with the body the target served.
func checkBody(path string, want testnet.Body) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != want.Size || sum != want.SHA256 {
		return fmt.Errorf("onionlite get %s: got %d bytes with SHA-256 %s, want %d bytes, %s", want.Name, n, sum, want.Size, want.SHA256)
	}
	return nil
}

// runLine summarises a run for the progress log.
func runLine(r *Run) string {
	s := fmt.Sprintf("%s %s %s %s #%d: dir-ready %.2fs ready %.2fs, down %s up %s, dir %s (%s), RSS %s (sampled anon %s, file %s), CPU %.2fs",
		r.Network, r.Profile, r.Scenario, r.Client, r.Rep, r.DirReadyS, r.ReadyS, fmtBytes(float64(r.Down)), fmtBytes(float64(r.Up)),
		fmtBytes(float64(r.DirBytes)), r.ConsensusSource, fmtBytes(float64(r.PeakRSS)), fmtBytes(float64(r.PeakRSSAnon)),
		fmtBytes(float64(r.PeakRSSFile)), r.CPUS)
	if r.Fetch != "" {
		s += fmt.Sprintf(", first byte %.2fs, last %.2fs", r.FirstByteS, r.TotalS)
	}
	return s
}

// load1 is the 1-minute load average (0 when unknown).
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// authDirGet fetches path from an authority's DirPort (plain HTTP on
// 127.0.0.1; harness traffic, not measured).
func authDirGet(ctx context.Context, port int, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return b, nil
}

// consensusWindow is the validity of a consensus the authorities serve.
type consensusWindow struct{ ValidAfter, FreshUntil, ValidUntil time.Time }

// authorityConsensus returns the oldest valid-after among the
// authorities' current microdesc consensuses (all of them, so a client
// gets the same one from any authority).
func authorityConsensus(ctx context.Context, n *testnet.Network) (consensusWindow, error) {
	var w consensusWindow
	found := false
	for _, nd := range n.Nodes() {
		if nd.Role != testnet.Authority {
			continue
		}
		doc, err := authDirGet(ctx, nd.DirPort, "/tor/status-vote/current/consensus-microdesc")
		if err != nil {
			return w, err
		}
		va, fu, vu, ok := consensusTimes(doc)
		if !ok {
			return w, fmt.Errorf("%s serves a consensus without valid-after/fresh-until/valid-until", nd.Nick)
		}
		if !found || va.Before(w.ValidAfter) {
			w, found = consensusWindow{va, fu, vu}, true
		}
	}
	if !found {
		return w, errors.New("the network has no authority")
	}
	return w, nil
}

// waitNewConsensus waits until every authority serves a consensus newer
// than the one served when it was called, so a cold start gets a whole
// voting interval of freshness and three of validity.
func waitNewConsensus(ctx context.Context, n *testnet.Network) (consensusWindow, error) {
	first, err := authorityConsensus(ctx, n)
	if err != nil {
		return first, err
	}
	deadline := time.Now().Add(3*n.Interval() + 30*time.Second)
	for {
		select {
		case <-ctx.Done():
			return first, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		w, err := authorityConsensus(ctx, n)
		if err == nil && w.ValidAfter.After(first.ValidAfter) {
			return w, nil
		}
		if time.Now().After(deadline) {
			return w, fmt.Errorf("no new consensus within %v (last error: %v)", 3*n.Interval()+30*time.Second, err)
		}
	}
}

// waitExpired waits until the consensus the last run of a chain left in
// its cache has expired: valid-after + 3 intervals (V3AuthNIntervalsValid
// 3), plus 2 s.
func waitExpired(ctx context.Context, last Run, interval time.Duration) error {
	va, err := time.Parse(time.RFC3339, last.ConsensusValid)
	if err != nil {
		// No consensus recorded (a failed run): wait a full validity.
		va = time.Now()
	}
	until := va.Add(3*interval + 2*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(until)):
		return nil
	}
}

// CollectEnv describes this machine and the software under test.
func CollectEnv(o Options) Env {
	e := Env{Date: time.Now().UTC(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Command: o.Command, Quick: o.Quick, MemoryBudget: o.MemoryBudget, Conflux: ConfluxPolicy}
	e.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		e.MemTotal, _ = parseStatusKB(b, "MemTotal:")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.Load = strings.TrimSpace(string(b))
	}
	if tor, err := findTorBinary(); err == nil {
		if out, err := exec.Command(tor, "--version").Output(); err == nil {
			v := strings.TrimSuffix(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], ".")
			e.TorVersion = "tor " + strings.TrimPrefix(v, "Tor version ")
		}
	}
	e.Build = ClientBuild(o.Bin)
	if e.Commit = binaryCommit(o.Bin); e.Commit == "" {
		e.Commit = o.Commit
	}
	if e.Commit == "" {
		e.Commit = gitCommit()
	}
	return e
}

// gitCommit describes the checkout in the working directory, for a
// binary built without VCS stamps (-buildvcs=false): HEAD, with "-dirty"
// when tracked Go sources differ from it.
func gitCommit() string { return GitCommit() }

// GitCommit is gitCommit for callers that take it once, when they build
// the binary (Options.Commit).
func GitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", "*.go", "go.mod", "go.sum").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}

// binaryCommit returns the commit the onionlite binary was built from, as
// Go recorded it ("-dirty" when the tree had uncommitted changes), or "".
func binaryCommit(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

// findTorBinary looks tor up as internal/testnet does.
func findTorBinary() (string, error) {
	if p, err := exec.LookPath("tor"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/tor", "/usr/bin/tor", "/usr/local/bin/tor"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", testnet.ErrTorNotFound
}
