package benchrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/onionlite/onionlite/internal/realnet"
	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// The full-scale replay (../shared/notes/full-scale-replay.md): a Go
// server replays the real 2019 documents on one port per authority; a C
// tor relay under libfaketime fills its directory cache from it and is
// the "bridge" both clients bootstrap from. Everything runs inside a
// network namespace that has only lo, so the thousands of public
// addresses in the documents are unreachable.
const (
	replayFirstPort = 7001 // authority i serves on replayFirstPort+i
	replayORPort    = 7100
	replayDirPort   = 7102 // the relay's DirPort, for the harness's readiness check only
)

var errNoTimes = errors.New("consensus without valid-after/fresh-until/valid-until")

// loopbackOnly reports whether this process's network namespace has no
// interface but lo, and lo is up. It reads /sys/class/net, which "ip
// netns exec" remounts for the namespace.
func loopbackOnly() error {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "lo" {
		return fmt.Errorf("network interfaces %v: the replay needs a namespace with lo only", names)
	}
	b, err := os.ReadFile("/sys/class/net/lo/flags")
	if err != nil {
		return err
	}
	flags, err := strconv.ParseInt(strings.TrimSpace(string(b)), 0, 64)
	if err != nil || flags&1 == 0 {
		return fmt.Errorf("lo is not up (flags %s)", strings.TrimSpace(string(b)))
	}
	return nil
}

// withNetworks returns argv with its --networks flag replaced by nets.
func withNetworks(argv []string, nets string) []string {
	var out []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--networks" || a == "-networks":
			i++
			continue
		case strings.HasPrefix(a, "--networks=") || strings.HasPrefix(a, "-networks="):
			continue
		}
		out = append(out, a)
	}
	return append(out, "--networks", nets)
}

// replayInNamespace runs this invocation again, for the replay only,
// inside a new network namespace with only lo up, and removes the
// namespace afterwards. It needs root and iproute2.
func replayInNamespace(ctx context.Context, o Options) error {
	if len(o.Reexec) == 0 {
		return errors.New("the replay must run in a network namespace with only lo, and this caller cannot re-run itself in one")
	}
	if os.Geteuid() != 0 {
		return errors.New("the replay needs a network namespace with only lo: run as root (or inside such a namespace)")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("the replay needs iproute2 for its network namespace: %v", err)
	}
	name := "olbench" + strconv.Itoa(os.Getpid())
	run := func(args ...string) (string, error) {
		out, err := exec.Command(ip, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if _, err := run("netns", "add", name); err != nil {
		return err
	}
	defer run("netns", "del", name)
	if _, err := run("netns", "exec", name, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	ifs, err := run("netns", "exec", name, "ls", "/sys/class/net")
	if err != nil {
		return err
	}
	if f := strings.Fields(ifs); len(f) != 1 || f[0] != "lo" {
		return fmt.Errorf("new namespace %s has interfaces %v, want lo only", name, f)
	}
	o.Logf("replay: network namespace %s has only lo; running the replay inside it", name)
	args := append([]string{"netns", "exec", name, o.Reexec[0]}, withNetworks(o.Reexec[1:], Replay2019)...)
	cmd := exec.CommandContext(ctx, ip, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	return cmd.Run()
}

// findFaketime returns libfaketimeMT, which tor needs under a shifted
// clock (Debian package faketime).
func findFaketime() (string, error) {
	m, _ := filepath.Glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
	if len(m) == 0 {
		return "", errors.New("libfaketimeMT.so.1 not found (Debian: apt-get install faketime)")
	}
	return m[0], nil
}

// faketimeEnv is the environment for tor under libfaketime starting at
// t (notes §4.3: the monotonic fix off, or tor's worker threads fail).
func faketimeEnv(lib string, t time.Time) []string {
	return append(os.Environ(), "TZ=UTC", "LC_ALL=C", "LD_PRELOAD="+lib,
		"FAKETIME=@"+t.UTC().Format(time.DateTime), "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_FORCE_MONOTONIC_FIX=0")
}

// commonReplayTorrc are the lines every replay tor gets.
func commonReplayTorrc(dir string) []string {
	return []string{
		"DataDirectory " + dir,
		"RunAsDaemon 0",
		"OutboundBindAddress 127.0.0.1",
		"AddressDisableIPv6 1",
		"ClientUseIPv6 0",
		"UseDefaultFallbackDirs 0",
		// Without Debian's tor-geoipdb whether or not it is installed
		// (as internal/testnet's torrcs): parsed, it is ~36 MB of a
		// client's heap, and the replay compares clients' memory.
		`GeoIPFile ""`,
		`GeoIPv6File ""`,
		"SafeLogging 0",
		"LogTimeGranularity 1",
		"ShutdownWaitLength 0",
		"DisableDebuggerAttachment 0",
		"ControlPort 0",
		"Log notice file " + filepath.Join(dir, "notice.log"),
	}
}

// authorityLines returns DirAuthority lines for the replayed authorities
// on 127.0.0.1. The relay gets made-up relay identities (with real ones
// it would look the authorities up in the consensus and try their public
// addresses: notes gotcha 3); clients get the real ones.
func authorityLines(auths []replayAuthority, fake bool) []string {
	var out []string
	for i, a := range auths {
		id := a.Identity
		if fake || id == "" {
			id = fakeIdentity(a.Nick)
		}
		port := replayFirstPort + i
		out = append(out, fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s", a.Nick, port, a.V3Ident, port, id))
	}
	return out
}

// torProc is a tor process of the replay.
type torProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startTor(torPath, dir string, torrc []string, env []string) (*torProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o700)
	path := filepath.Join(dir, "torrc")
	if err := os.WriteFile(path, []byte(strings.Join(torrc, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(torPath, "-f", path, "--defaults-torrc", os.DevNull)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = env, out, out, childAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &torProc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *torProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 10 s, and waits for the exit.
func (p *torProc) stop() {
	if p.exited() {
		return
	}
	terminate(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// replayEnv is the running replay: server, relay and what clients need.
type replayEnv struct {
	o        Options
	d        *replayData
	torPath  string
	faketime string
	now      time.Time
	dir      string
	srv      *replayServer
	relay    *torProc
	relayFP  string
	clientDA string // file of the clients' DirAuthority lines
}

// runReplaySet measures both clients' directory bootstrap from the
// replay, per link profile: cold (empty data directory) and warm starts.
// It must run inside a loopback-only namespace (RunSuite arranges that).
func runReplaySet(ctx context.Context, o Options, spec NetworkSpec, caps Caps, save func(Set) error) error {
	if err := loopbackOnly(); err != nil {
		return err
	}
	began := time.Now()
	rn, err := realnet.Dir()
	if err != nil {
		return err
	}
	d, err := loadReplayData(filepath.Join(rn, ReplaySetDir))
	if err != nil {
		return err
	}
	e := &replayEnv{o: o, d: d, dir: filepath.Join(o.WorkDir, Replay2019)}
	if e.torPath, err = findTorBinary(); err != nil {
		return err
	}
	if e.faketime, err = findFaketime(); err != nil {
		return err
	}
	e.now, _ = time.Parse(time.RFC3339, ReplayNow)
	ro := o
	if o.ReplayReps > 0 {
		ro.Reps = o.ReplayReps
	}
	ro.Starts = nil
	for _, s := range o.Starts {
		if s != Stale { // the replayed documents never change
			ro.Starts = append(ro.Starts, s)
		}
	}
	consZ, err := zstdSize(d.Consensus)
	if err != nil {
		return err
	}
	var dropped []Profile
	ro.Profiles, dropped = carriable(ro.Profiles, consZ)
	if len(ro.Profiles) == 0 {
		return fmt.Errorf("replay: no link profile can carry the %s consensus (every one resets sooner)", fmtBytes(float64(consZ)))
	}
	set := newSet(ro, spec, Caps{})
	set.Nodes = len(d.Digests)
	for _, p := range dropped {
		set.Notes = append(set.Notes, fmt.Sprintf("The %s link was not run on the replay: it resets every %s, and the consensus is one response of %s "+
			"even compressed with zstd at its best level; neither client resumes a directory download on a new connection, so neither can "+
			"ever finish there (both timed out in every earlier set).", p.Name, fmtBytes(float64(p.ResetEvery)), fmtBytes(float64(consZ))))
	}
	set.Unsupported = nil
	set.Notes = append(set.Notes,
		fmt.Sprintf("Documents: %s from `testdata/realnet` (microdesc consensus valid-after 2019-12-15 13:00, %d relays, %d microdescriptors, %d authority certificates). "+
			"A Go replay server plays the 9 authorities on 127.0.0.1; a C tor relay (DirCache, not published, clock at %s via libfaketime) fills its cache from it; "+
			"both clients bootstrap from that relay as a bridge through the run's proxy, with their clocks at %s. All of it runs in a network namespace with only lo.",
			ReplaySetDir, len(d.Digests), len(d.MDs), len(d.Certs), ReplayNow, ReplayNow),
		"C tor cannot reach 100 % here (its circuits would need the real relays), so its run ends 2 s after 75 % (enough directory info); "+
			"its ready time is its 75 % time. Its `[dir]debug` log is off (it costs CPU at this scale), so its directory bytes are not counted; the proxy counts every byte.")
	if !caps.Bridge {
		set.Notes = append(set.Notes, "onionlite was **not measured** on the replay: the CLI under test has no `--bridge`/`--now` flags yet.")
	}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return err
	}
	e.srv, err = newReplayServer(d)
	if err != nil {
		return err
	}
	defer e.srv.close()
	for i := range d.Auths {
		if err := e.srv.listen("127.0.0.1:" + strconv.Itoa(replayFirstPort+i)); err != nil {
			return err
		}
	}
	e.clientDA = filepath.Join(e.dir, "authorities")
	if err := os.WriteFile(e.clientDA, []byte(strings.Join(authorityLines(d.Auths, false), "\n")+"\n"), 0o600); err != nil {
		return err
	}
	b := &bench{o: ro, caps: caps, set: set}
	save(*set)
	for _, p := range ro.Profiles {
		err := e.profile(ctx, b, p)
		set.Env.Seconds = time.Since(began).Seconds()
		if err != nil {
			save(*set)
			return err
		}
		if err := save(*set); err != nil {
			return err
		}
	}
	set.Incomplete = false
	set.Env.Seconds = time.Since(began).Seconds()
	return save(*set)
}

// startRelay starts the relay on its warm data directory (a fresh clock
// each time, so the consensus stays fresh whatever the run time) and
// waits until it serves the consensus and every microdescriptor.
func (e *replayEnv) startRelay(ctx context.Context) error {
	dir := filepath.Join(e.dir, "relay")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o600); err != nil {
		return err
	}
	torrc := append(commonReplayTorrc(dir),
		"Nickname replaybridge",
		"Address 127.0.0.1",
		"ORPort 127.0.0.1:"+strconv.Itoa(replayORPort),
		"DirPort 127.0.0.1:"+strconv.Itoa(replayDirPort),
		"SocksPort 0",
		"DirCache 1",
		"BridgeRelay 0",
		"PublishServerDescriptor 0",
		"AssumeReachable 1",
		"FetchDirInfoEarly 1",
		"CountPrivateBandwidth 1",
		"ExitRelay 0",
		"ExitPolicy reject *:*",
		"ServerDNSResolvConfFile "+resolv,
		"ServerDNSAllowBrokenConfig 1",
	)
	torrc = append(torrc, authorityLines(e.d.Auths, true)...)
	os.Remove(filepath.Join(dir, "notice.log"))
	p, err := startTor(e.torPath, dir, torrc, faketimeEnv(e.faketime, e.now))
	if err != nil {
		return err
	}
	e.relay = p
	t0 := time.Now()
	deadline := t0.Add(3 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("the replay relay exited: %v (logs in %s)", p.err, dir)
		case <-time.After(time.Second):
		}
		if e.relayFP == "" {
			if b, err := os.ReadFile(filepath.Join(dir, "fingerprint")); err == nil {
				if f := strings.Fields(string(b)); len(f) == 2 {
					e.relayFP = f[1]
				}
			}
		}
		err := e.relayComplete(ctx)
		if err == nil && e.relayFP != "" {
			e.o.Logf("replay: relay %s serves the consensus and all %d microdescriptors after %.1f s", e.relayFP, len(e.d.Digests), time.Since(t0).Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replay relay is not complete after 3 min: %v (logs in %s)", err, dir)
		}
	}
}

// relayComplete checks the relay's DirPort: the replayed consensus and
// every microdescriptor, in batches of 500.
func (e *replayEnv) relayComplete(ctx context.Context) error {
	cons, err := authDirGet(ctx, replayDirPort, "/tor/status-vote/current/consensus-microdesc")
	if err != nil {
		return err
	}
	if string(cons) != string(e.d.Consensus) {
		return errors.New("the relay serves another consensus")
	}
	for i := 0; i < len(e.d.Digests); i += 500 {
		batch := e.d.Digests[i:min(i+500, len(e.d.Digests))]
		b, err := authDirGet(ctx, replayDirPort, "/tor/micro/d/"+strings.Join(batch, "-"))
		if err != nil {
			return err
		}
		if n := len(splitMicrodescs(b)); n != len(batch) {
			return fmt.Errorf("the relay serves %d of a batch of %d microdescriptors", n, len(batch))
		}
	}
	return nil
}

// profile measures every repetition on one link profile. The relay is
// restarted for each repetition, so its clock (and its consensus's
// freshness) starts over and every repetition sees the same relay.
func (e *replayEnv) profile(ctx context.Context, b *bench, p Profile) error {
	clients := []string{CTor}
	if b.caps.Bridge {
		clients = []string{Onionlite, CTor}
	}
	for rep := 1; rep <= b.o.Reps; rep++ {
		if err := e.startRelay(ctx); err != nil {
			if e.relay != nil {
				e.relay.stop()
			}
			return err
		}
		for _, cl := range clients {
			s := &slot{client: cl, dir: filepath.Join(e.dir, p.Name, "rep"+strconv.Itoa(rep), cl)}
			os.RemoveAll(s.dir)
			if err := os.MkdirAll(s.dir, 0o700); err != nil {
				e.relay.stop()
				return err
			}
			for _, start := range b.o.Starts {
				if ctx.Err() != nil || e.relay.exited() {
					e.relay.stop()
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return fmt.Errorf("the replay relay exited: %v", e.relay.err)
				}
				e.one(ctx, b, p, Scenario{Start: start}, s, rep)
			}
		}
		e.relay.stop()
	}
	return nil
}

// carriable splits profiles into those whose link can carry a single
// response of size bytes and those that reset the connection sooner.
func carriable(profiles []Profile, size int64) (keep, dropped []Profile) {
	for _, p := range profiles {
		if p.ResetEvery > 0 && p.ResetEvery < size {
			dropped = append(dropped, p)
			continue
		}
		keep = append(keep, p)
	}
	return keep, dropped
}

// zstdSize is the size of b compressed with zstd at its best level: a
// lower bound on what a directory server sends for it.
func zstdSize(b []byte) (int64, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return 0, err
	}
	defer enc.Close()
	return int64(len(enc.EncodeAll(b, nil))), nil
}

// replayTimeout bounds one client run: twice the time the 2.6 MB download
// and 0.4 MB upload need at the profile's rate, plus two minutes.
func (e *replayEnv) replayTimeout(p Profile) time.Duration {
	t := e.o.Timeout
	if p.Rate > 0 {
		t = max(t, 2*time.Duration(3e6*8/p.Rate)*time.Second+2*time.Minute)
	}
	return t
}

func (e *replayEnv) one(ctx context.Context, b *bench, p Profile, sc Scenario, s *slot, rep int) {
	b.seq++
	r := Run{
		Seq: b.seq, Network: b.set.Network, Profile: p.Name, Scenario: sc.Name(), Start: sc.Start,
		Client: s.client, Rep: rep, Began: time.Now().UTC(), Load1: load1(),
	}
	err := e.clientRun(ctx, p, sc, s, &r)
	if err != nil {
		r.Error = err.Error()
		e.o.Logf("%s %s %s %s #%d: FAILED: %v", r.Network, r.Profile, r.Scenario, r.Client, rep, err)
	} else {
		r.OK = true
		e.o.Logf("%s", runLine(&r))
	}
	b.set.Runs = append(b.set.Runs, r)
}

func (e *replayEnv) clientRun(ctx context.Context, p Profile, sc Scenario, s *slot, r *Run) error {
	proxy, err := slowlink.New(p.Slowlink())
	if err != nil {
		return err
	}
	if err := proxy.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer proxy.Close()
	tag := fmt.Sprintf("%03d-%s", r.Seq, sc.Name())
	bridge := fmt.Sprintf("127.0.0.1:%d %s", replayORPort, e.relayFP)
	if s.client == Onionlite {
		return runOnionlite(ctx, olSpec{
			Bin: e.o.Bin, DataDir: filepath.Join(s.dir, "data"), Authorities: e.clientDA, Verbose: e.o.ClientVerbose,
			Memory: e.o.MemoryBudget, Extra: []string{"--bridge", bridge, "--now", ReplayNow},
			Timeout: e.replayTimeout(p), LogPath: filepath.Join(s.dir, tag+".log"), StatsPath: filepath.Join(s.dir, tag+".json"),
		}, proxy, r)
	}
	return e.runTor(ctx, s.dir, bridge, p, proxy, tag, r)
}

// runTor runs the C tor client as a bridge user of the relay until 2 s
// after it logs 75 % (enough directory information).
func (e *replayEnv) runTor(ctx context.Context, dir, bridge string, p Profile, proxy *slowlink.Proxy, tag string, r *Run) error {
	torrc := append(commonReplayTorrc(dir),
		"SocksPort 127.0.0.1:auto",
		"UseBridges 1",
		"Bridge "+bridge,
		"UseMicrodescriptors 1",
		"CountPrivateBandwidth 1",
		"Socks5Proxy "+proxy.Addr(),
	)
	torrc = append(torrc, authorityLines(e.d.Auths, false)...)
	notice := filepath.Join(dir, "notice.log")
	os.Remove(notice)
	defer os.Rename(notice, filepath.Join(dir, tag+".notice.log"))
	ctx, cancel := context.WithTimeout(ctx, e.replayTimeout(p))
	defer cancel()
	t0 := time.Now()
	smp := startSampler(t0, proxy)
	tp, err := startTor(e.torPath, dir, torrc, faketimeEnv(e.faketime, e.now))
	if err != nil {
		smp.finish()
		return err
	}
	defer tp.stop()
	pid := tp.cmd.Process.Pid
	smp.setPID(pid)
	for found := false; !found; {
		select {
		case <-ctx.Done():
			smp.finish()
			return fmt.Errorf("the C tor client: did not reach 75 %%: %v (log %s)", ctx.Err(), notice)
		case <-tp.done:
			smp.finish()
			return fmt.Errorf("the C tor client: exited before 75 %%: %v (log %s)", tp.err, notice)
		case <-time.After(sampleEvery):
		}
		b, _ := os.ReadFile(notice)
		found = strings.Contains(string(b), "] Bootstrapped 75%")
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	end := smp.snapshot()
	r.Up, r.Down = end.Up, end.Down
	r.Resets = proxy.Stats().Resets
	r.CPUS, _ = procCPU(pid)
	r.PeakRSS, _ = procHWM(pid)
	traffic, procs := smp.finish()
	r.PeakRSSAnon, r.PeakRSSFile = peakParts(procs)
	tp.stop()
	r.Traffic = thin(traffic, maxTrafficSamples)
	log, err := os.ReadFile(notice)
	if err != nil {
		return err
	}
	r.Progress = parseTorBootstrap(log, e.now, time.UTC)
	r.DirReadyS = firstAt(r.Progress, 75)
	if r.DirReadyS < 0 {
		return fmt.Errorf("no 75 %% line in %s", notice)
	}
	r.ReadyS, r.TotalS = r.DirReadyS, r.DirReadyS
	dr := trafficAt(traffic, r.DirReadyS)
	r.UpDirReady, r.DownDirReady, r.UpReady, r.DownReady = dr.Up, dr.Down, dr.Up, dr.Down
	ps := procAt(procs, r.DirReadyS)
	r.CPUDirReadyS, r.PeakRSSDirReady, r.CPUReadyS, r.PeakRSSReady = ps.CPU, ps.HWM, ps.CPU, ps.HWM
	r.Microdescs = countOnionKeys(dir)
	r.ConsensusValid = "2019-12-15T13:00:00Z"
	return nil
}

// countOnionKeys counts the microdescriptors C tor holds on disk.
func countOnionKeys(dir string) int {
	n := 0
	for _, f := range []string{"cached-microdescs", "cached-microdescs.new"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			n += strings.Count("\n"+string(b), "\nonion-key\n")
		}
	}
	return n
}

// fakeIdentity is a relay identity that is in no consensus:
// SHA-1("replay-fake-" + nick).
func fakeIdentity(nick string) string {
	return sha1Hex([]byte("replay-fake-" + nick))
}
