package benchrun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Client names as they appear in results.
const (
	Onionlite = "onionlite"
	CTor      = "tor"
)

// Start kinds.
const (
	Cold  = "cold"  // empty data directory
	Warm  = "warm"  // restart at once: the cached consensus is still live
	Stale = "stale" // restart once the cached consensus has expired
)

// Scenario is one kind of client run: a start, optionally followed by a
// fetch of one body from the test network's HTTP target.
type Scenario struct {
	Start string `json:"start"`
	Fetch string `json:"fetch,omitempty"` // body name, e.g. "64KiB.bin"; "" = bootstrap only
}

// Name is the scenario's short name: "cold", "warm+64KiB".
func (s Scenario) Name() string {
	if s.Fetch == "" {
		return s.Start
	}
	return s.Start + "+" + strings.TrimSuffix(s.Fetch, ".bin")
}

// Point is one bootstrap progress report of a client.
type Point struct {
	T       float64 `json:"t"` // seconds since the client was spawned
	Percent int     `json:"pct"`
	Phase   string  `json:"phase,omitempty"`
}

// Sample is the proxy's byte counters at one moment of a run. In JSON it
// is the array [t, up, down], t in milliseconds, to keep results.json
// small.
type Sample struct {
	T    float64 // seconds since the client was spawned
	Up   int64
	Down int64
}

// MarshalJSON writes [t_ms, up, down].
func (s Sample) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "[%d,%d,%d]", int64(math.Round(s.T*1000)), s.Up, s.Down), nil
}

// UnmarshalJSON reads [t_ms, up, down], or the object form
// {"t": seconds, "up": n, "down": n} of older files.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var a []float64
	if err := json.Unmarshal(b, &a); err == nil {
		if len(a) != 3 {
			return fmt.Errorf("traffic sample %s: want [t_ms, up, down]", b)
		}
		*s = Sample{T: a[0] / 1000, Up: int64(a[1]), Down: int64(a[2])}
		return nil
	}
	var o struct {
		T        float64
		Up, Down int64
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*s = Sample{T: o.T, Up: o.Up, Down: o.Down}
	return nil
}

// Run is one client run: one client, one scenario, one profile, one
// repetition. Times are seconds since the client process was spawned.
// Bytes are TCP payload through the run's own slowlink proxy (TLS
// records; no TCP/IP headers): Up is client → relays, Down the reverse.
type Run struct {
	Seq      int       `json:"seq"` // order within its set
	Network  string    `json:"network"`
	Profile  string    `json:"profile"`
	Scenario string    `json:"scenario"`
	Start    string    `json:"start"`
	Fetch    string    `json:"fetch,omitempty"`
	Client   string    `json:"client"`
	Rep      int       `json:"rep"`
	Began    time.Time `json:"began"`
	Load1    float64   `json:"load1"` // 1-minute load average when it began
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`

	// ReadyS: onionlite's "ready" (directory usable); C tor's
	// BOOTSTRAP PROGRESS=100 (directory and a first circuit).
	ReadyS float64 `json:"ready_s"`
	// DirReadyS: directory usable. onionlite: its ready; C tor: 75 %
	// (enough_dirinfo), from its notice log.
	DirReadyS  float64 `json:"dir_ready_s"`
	FirstByteS float64 `json:"first_byte_s,omitempty"`
	TotalS     float64 `json:"total_s,omitempty"` // last body byte; bootstrap only: ReadyS
	BodyBytes  int64   `json:"body_bytes,omitempty"`

	// Proxy counters at the end of the run (after the fetch, or at
	// ready), at ready, and at directory-ready.
	Up           int64 `json:"up"`
	Down         int64 `json:"down"`
	UpReady      int64 `json:"up_ready"`
	DownReady    int64 `json:"down_ready"`
	UpDirReady   int64 `json:"up_dir_ready"`
	DownDirReady int64 `json:"down_dir_ready"`
	Resets       int64 `json:"resets,omitempty"`
	// The client's own socket counters at the end, as a check on the
	// proxy (onionlite: bytes_read/bytes_written; C tor: traffic/read,
	// traffic/written minus its control connection).
	ClientRead    int64 `json:"client_read"`
	ClientWritten int64 `json:"client_written"`

	// DirBytes is directory responses on the wire as the client counts
	// them (onionlite: its stats; C tor: the "response size" lines of
	// its info log).
	DirBytes        int64            `json:"dir_bytes"`
	DirBytesByKind  map[string]int64 `json:"dir_bytes_by_kind,omitempty"`
	ConsensusSource string           `json:"consensus_source,omitempty"`
	ConsensusValid  string           `json:"consensus_valid_after,omitempty"`
	Microdescs      int              `json:"microdescs_fetched,omitempty"`

	// Peak RSS (VmHWM) in bytes and CPU (utime+stime) in seconds, read
	// from /proc at the end of the run, at ready and at directory-ready
	// (C tor's from the 0.1 s sampler, so up to 0.1 s late).
	PeakRSS         int64   `json:"peak_rss"`
	CPUS            float64 `json:"cpu_s"`
	PeakRSSReady    int64   `json:"peak_rss_ready"`
	CPUReadyS       float64 `json:"cpu_ready_s"`
	PeakRSSDirReady int64   `json:"peak_rss_dir_ready"`
	CPUDirReadyS    float64 `json:"cpu_dir_ready_s"`
	// PeakRSSAnon and PeakRSSFile are the highest RssAnon (anonymous
	// pages: heap, stacks) and RssFile (file-backed pages: the binary,
	// its libraries, mapped files) of /proc/PID/status over the
	// sampler's readings while the client ran, each its own maximum.
	// Sampled, not exact: the kernel keeps no peak of either. Absent (0)
	// in results from before they were recorded, or with no sample.
	PeakRSSAnon int64 `json:"peak_rss_anon,omitempty"`
	PeakRSSFile int64 `json:"peak_rss_file,omitempty"`

	Progress []Point  `json:"progress,omitempty"`
	Traffic  []Sample `json:"traffic,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Env describes where and when a set was measured.
type Env struct {
	Date       time.Time `json:"date"`
	Host       string    `json:"host"`
	CPU        string    `json:"cpu"`
	Cores      int       `json:"cores"`
	Kernel     string    `json:"kernel"`
	MemTotal   int64     `json:"mem_total"`
	TorVersion string    `json:"tor_version"`
	GoVersion  string    `json:"go_version"`
	Commit     string    `json:"commit,omitempty"`
	Load       string    `json:"load_before,omitempty"` // /proc/loadavg when the set began
	Command    string    `json:"command"`
	// MemoryBudget is onionlite's --memory-budget in the set ("": the
	// CLI's default for the platform, 128 MiB on Linux).
	MemoryBudget string `json:"onionlite_memory_budget,omitempty"`
	// Conflux is onionlite's --conflux policy in the set ("": before
	// conflux, always off).
	Conflux string `json:"onionlite_conflux,omitempty"`
	// Build is how the measured onionlite binary was built, read from
	// the build information in it (ClientBuild): "CGO_ENABLED=0
	// -tags=nodev; statically linked" for the lean client build
	// scripts/bench measures. "": not recorded (before --client-bin the
	// harness measured its own binary, the whole CLI).
	Build   string  `json:"onionlite_build,omitempty"`
	Quick   bool    `json:"quick"`
	Seconds float64 `json:"seconds"` // wall time of the set, network start included
}

// Set is everything measured on one network in one invocation.
type Set struct {
	Network     string     `json:"network"`
	Title       string     `json:"title"`
	Nodes       int        `json:"nodes"`
	Interval    float64    `json:"interval_s,omitempty"` // voting interval of a test network
	StartupS    float64    `json:"startup_s,omitempty"`  // network start to ready
	Env         Env        `json:"env"`
	Profiles    []Profile  `json:"profiles"`
	Scenarios   []Scenario `json:"scenarios"`
	Reps        int        `json:"reps"`
	Runs        []Run      `json:"runs"`
	Notes       []string   `json:"notes,omitempty"`
	Incomplete  bool       `json:"incomplete,omitempty"`  // interrupted or failed part-way
	Unsupported []Scenario `json:"unsupported,omitempty"` // skipped: the CLI lacks what they need
}

// Results is the content of results.json: one set per network, the
// newest measurement of each.
type Results struct {
	Schema int   `json:"schema"`
	Sets   []Set `json:"sets"`
}

// SchemaVersion is written into results.json.
const SchemaVersion = 1

// networkOrder sorts sets in the report.
var networkOrder = []string{"testnet10", "testnet50", "replay2019"}

// Put replaces the set for s.Network (or adds it) and keeps sets in
// report order.
func (r *Results) Put(s Set) {
	for i := range r.Sets {
		if r.Sets[i].Network == s.Network {
			r.Sets[i] = s
			return
		}
	}
	r.Sets = append(r.Sets, s)
	rank := func(n string) int {
		for i, o := range networkOrder {
			if o == n {
				return i
			}
		}
		return len(networkOrder)
	}
	sort.SliceStable(r.Sets, func(i, j int) bool { return rank(r.Sets[i].Network) < rank(r.Sets[j].Network) })
}

// Set returns the set for network, or nil.
func (r *Results) Set(network string) *Set {
	for i := range r.Sets {
		if r.Sets[i].Network == network {
			return &r.Sets[i]
		}
	}
	return nil
}

// LoadResults reads results.json; a missing file gives empty results.
func LoadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Results{Schema: SchemaVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d, want %d (delete it to start over)", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// Save writes results.json atomically: one line per set header and one
// per run, so the file stays small and diffs stay readable.
func (r *Results) Save(path string) error {
	r.Schema = SchemaVersion
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"schema\": %d, \"sets\": [\n", r.Schema)
	for i, s := range r.Sets {
		runs := s.Runs
		s.Runs = nil
		// The file is checked in: no machine paths in it.
		s.Env.Command = displayCommand(s.Env.Command)
		for k := range runs {
			runs[k].Traffic = thin(runs[k].Traffic, maxTrafficSamples)
			runs[k].Error = displayPaths(runs[k].Error)
		}
		head, err := json.Marshal(s)
		if err != nil {
			return err
		}
		pre, post, ok := bytes.Cut(head, []byte(`"runs":null`))
		if !ok {
			return errors.New("BUG: set JSON has no runs field")
		}
		b.Write(pre)
		b.WriteString(`"runs": [`)
		for j, run := range runs {
			line, err := json.Marshal(run)
			if err != nil {
				return err
			}
			b.WriteString("\n  ")
			b.Write(line)
			if j < len(runs)-1 {
				b.WriteByte(',')
			}
		}
		b.WriteString("\n ]")
		b.Write(post)
		if i < len(r.Sets)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	if !json.Valid(b.Bytes()) {
		return errors.New("BUG: results.json would not be valid JSON")
	}
	return writeFileAtomic(path, b.Bytes())
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
