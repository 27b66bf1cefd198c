package memprobe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/procmem"
)

// ReportPrefix starts the line a child reports on.
const ReportPrefix = "MEMPROBE "

// Report is what a child says about its run.
type Report struct {
	Workload string
	Err      string `json:",omitempty"`
	Seconds  float64
	// Self is the child's own reading at the end of the work (VmHWM is
	// exact), and Settled after a GC returned what it could to the OS.
	Self, Settled procmem.Status
	// GoHeap and GoTotal are the Go runtime's figures at the end
	// (/memory/classes/heap/objects, total less released).
	GoHeap, GoTotal int64
	// Workload details.
	Relays, Microdescs int
	DirectoryBytes     int64           `json:",omitempty"`
	Bytes              int64           `json:",omitempty"`
	SHA256             string          `json:",omitempty"`
	Extra              json.RawMessage `json:",omitempty"`
}

// Emit prints r as the report line. A child calls it last.
func Emit(w io.Writer, r Report) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Report{Workload: r.Workload, Err: err.Error()})
	}
	fmt.Fprintf(w, "%s%s\n", ReportPrefix, b)
}

// Measurement is a child's run as seen from outside.
type Measurement struct {
	Report Report
	// Peaks are sampled from outside every interval; VmHWM is the larger
	// of the last sample and the child's own final reading.
	Peaks  procmem.Peaks
	Output []byte // everything the child wrote, report line included
}

// Run starts cmd, samples its memory every interval until it exits, and
// returns its report. A child that fails, or reports an error, is an
// error (with the measurement so far).
func Run(cmd *exec.Cmd, every time.Duration) (Measurement, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return Measurement{}, err
	}
	s := procmem.Start(cmd.Process.Pid, every)
	werr := cmd.Wait()
	m := Measurement{Peaks: s.Stop(), Output: out.Bytes()}
	m.Peaks.Err = nil // the last read fails once the child is gone
	rep, perr := ParseReport(m.Output)
	m.Report = rep
	m.Peaks.VmHWM = max(m.Peaks.VmHWM, rep.Self.VmHWM)
	m.Peaks.RssAnon = max(m.Peaks.RssAnon, rep.Self.RssAnon)
	m.Peaks.RssFile = max(m.Peaks.RssFile, rep.Self.RssFile)
	switch {
	case werr != nil:
		return m, fmt.Errorf("%s: %v; output ends:\n%s", cmd.Path, werr, Tail(m.Output, 20))
	case perr != nil:
		return m, fmt.Errorf("%s: %v; output ends:\n%s", cmd.Path, perr, Tail(m.Output, 20))
	case rep.Err != "":
		return m, fmt.Errorf("%s: %s", rep.Workload, rep.Err)
	}
	return m, nil
}

// ParseReport finds the last report line in a child's output.
func ParseReport(out []byte) (Report, error) {
	var r Report
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), ReportPrefix); ok {
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return r, fmt.Errorf("report line: %w", err)
			}
			found = true
		}
	}
	if !found {
		return r, errors.New("no report line")
	}
	return r, nil
}

// Tail returns the last n lines of out.
func Tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Final reads this process's memory at the end of a child's work, then
// after a GC and returning freed memory to the OS.
func Final(freeOSMemory func()) (self, settled procmem.Status) {
	self, _ = procmem.Read(0)
	freeOSMemory()
	settled, _ = procmem.Read(0)
	return self, settled
}
