package benchrun

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onionlite/onionlite/internal/testnet/slowlink"
)

// olSpec is one run of the onionlite CLI as a child process.
type olSpec struct {
	Bin         string
	DataDir     string
	Authorities string   // --authorities FILE
	Extra       []string // more flags (--bridge, --now)
	Memory      string   // --memory-budget, when set
	Conflux     string   // --conflux, when set
	URL         string   // "get URL" when set, else "bootstrap"
	BodyPath    string   // get writes the body here (-o)
	Timeout     time.Duration
	LogPath     string // stderr copy, timestamped
	StatsPath   string
	Verbose     bool // -v: the client's debug log goes into LogPath
}

// olStats is the part of the CLI's --stats-json output the harness reads.
type olStats struct {
	BootstrapMS       int64            `json:"bootstrap_ms"`
	BytesRead         int64            `json:"bytes_read"`
	BytesWritten      int64            `json:"bytes_written"`
	DirBytesRead      int64            `json:"dir_bytes_read"`
	DirBytesByKind    map[string]int64 `json:"dir_bytes_by_kind"`
	ConsensusSource   string           `json:"consensus_source"`
	MicrodescsFetched int              `json:"microdescs_fetched"`
	PeakRSSBytes      int64            `json:"peak_rss_bytes"`
	ConsensusValid    string           `json:"consensus_valid_after"`
	FirstByteMS       *int64           `json:"first_byte_ms"`
	TotalMS           *int64           `json:"total_ms"`
	BodyBytes         *int64           `json:"body_bytes"`
}

// olProgressLine matches the CLI's plain progress lines on stderr:
// "bootstrap  42% certificates: downloading ... (1.2 KB)".
var olProgressLine = regexp.MustCompile(`^bootstrap\s+(\d+)% (\S+):`)

// parseOLLine reads one stderr line: a progress report, or the final
// "ready in ..." line (ready, with 100 %).
func parseOLLine(l string) (pct int, phase string, ready, ok bool) {
	if m := olProgressLine.FindStringSubmatch(l); m != nil {
		p, _ := strconv.Atoi(m[1])
		return p, m[2], m[2] == "ready", true
	}
	if strings.HasPrefix(l, "ready in ") {
		return 100, "ready", true, true
	}
	return 0, "", false, false
}

// runOnionlite runs the CLI once through proxy and fills r. The run's
// clock starts when the process is spawned.
func runOnionlite(ctx context.Context, sp olSpec, proxy *slowlink.Proxy, r *Run) error {
	args := []string{"bootstrap"}
	if sp.URL != "" {
		args = []string{"get", "-o", sp.BodyPath}
	}
	args = append(args, "--data-dir", sp.DataDir, "--stats-json", sp.StatsPath,
		"--proxy", "socks5://"+proxy.Addr(), "--timeout", sp.Timeout.String())
	if sp.Authorities != "" {
		args = append(args, "--authorities", sp.Authorities)
	}
	args = append(args, sp.Extra...)
	if sp.Memory != "" {
		args = append(args, "--memory-budget", sp.Memory)
	}
	if sp.Conflux != "" {
		args = append(args, "--conflux", sp.Conflux)
	}
	if sp.Verbose {
		args = append(args, "-v")
	}
	if sp.URL != "" {
		args = append(args, sp.URL)
	}
	os.Remove(sp.StatsPath)
	logf, err := os.Create(sp.LogPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# %s %s\n", sp.Bin, strings.Join(args, " "))

	ctx, cancel := context.WithTimeout(ctx, sp.Timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sp.Bin, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = logf

	t0 := time.Now()
	smp := startSampler(t0, proxy)
	if err := cmd.Start(); err != nil {
		smp.finish()
		return err
	}
	pid := cmd.Process.Pid
	smp.setPID(pid)

	var (
		mu        sync.Mutex
		readyAt   float64 = -1
		readySnap Sample
		readyCPU  float64
		readyHWM  int64
		lastLine  string // the last line that was not progress: an error
	)
	linesDone := make(chan struct{})
	go func() {
		defer close(linesDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			l := sc.Text()
			t := now.Sub(t0).Seconds()
			fmt.Fprintf(logf, "%8.3f %s\n", t, l)
			pct, phase, ready, ok := parseOLLine(l)
			if !ok {
				mu.Lock()
				lastLine = l
				mu.Unlock()
				continue
			}
			mu.Lock()
			r.Progress = append(r.Progress, Point{T: t, Percent: pct, Phase: phase})
			if ready && readyAt < 0 {
				readyAt = t
				readySnap = smp.snapshot()
				readyCPU, _ = procCPU(pid)
				readyHWM, _ = procHWM(pid) // fails once the process is a zombie
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()
	<-linesDone
	waitErr := cmd.Wait()
	end := smp.snapshot()
	traffic, procs := smp.finish()
	r.Traffic = thin(traffic, maxTrafficSamples)

	st, statsErr := readOLStats(sp.StatsPath)
	if waitErr != nil {
		msg := waitErr.Error()
		if ctx.Err() != nil {
			msg = "timed out: " + msg
		}
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("onionlite %s: %s: %s (log %s)", args[0], msg, lastLine, sp.LogPath)
	}
	if statsErr != nil {
		return statsErr
	}
	if readyAt < 0 {
		return fmt.Errorf("onionlite exited 0 without a ready line (log %s)", sp.LogPath)
	}
	r.ReadyS, r.DirReadyS = readyAt, readyAt
	r.UpReady, r.DownReady = readySnap.Up, readySnap.Down
	r.UpDirReady, r.DownDirReady = readySnap.Up, readySnap.Down
	r.Up, r.Down = end.Up, end.Down
	r.Resets = proxy.Stats().Resets
	r.ClientRead, r.ClientWritten = st.BytesRead, st.BytesWritten
	r.DirBytes, r.DirBytesByKind = st.DirBytesRead, st.DirBytesByKind
	r.ConsensusSource, r.ConsensusValid, r.Microdescs = st.ConsensusSource, st.ConsensusValid, st.MicrodescsFetched

	// CPU and RSS at ready come from /proc at the ready line; the
	// process's own VmHWM (written into its stats after ready) stands in
	// when it had already exited. The whole run's peak RSS is the
	// process's own VmHWM, read by it after its client closed (and by the
	// sampler while it ran); CPU comes from wait4's rusage, whose
	// ru_maxrss would count the harness's memory too (exitUsage).
	if readyHWM == 0 {
		readyHWM = st.PeakRSSBytes
	}
	r.CPUReadyS, r.PeakRSSReady = readyCPU, readyHWM
	r.CPUDirReadyS, r.PeakRSSDirReady = readyCPU, readyHWM
	cpu, _, err := exitUsage(cmd.ProcessState)
	if err != nil {
		return err
	}
	r.CPUS, r.PeakRSS = cpu, max(st.PeakRSSBytes, readyHWM)
	for _, ps := range procs {
		r.PeakRSS = max(r.PeakRSS, ps.HWM)
	}
	r.PeakRSSAnon, r.PeakRSSFile = peakParts(procs)
	r.TotalS = readyAt
	if sp.URL != "" {
		if st.FirstByteMS == nil || st.TotalMS == nil || st.BodyBytes == nil {
			return errors.New("onionlite get: stats lack first_byte_ms/total_ms/body_bytes")
		}
		// The CLI times the fetch from its own start, which is a few
		// milliseconds after the spawn: shift by the gap its bootstrap_ms
		// and our ready time show.
		shift := max(readyAt-float64(st.BootstrapMS)/1000, 0)
		r.FirstByteS = shift + float64(*st.FirstByteMS)/1000
		r.TotalS = shift + float64(*st.TotalMS)/1000
		r.BodyBytes = *st.BodyBytes
	}
	return nil
}

func readOLStats(path string) (*olStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onionlite stats: %v", err)
	}
	var st olStats
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("onionlite stats %s: %v", filepath.Base(path), err)
	}
	return &st, nil
}
