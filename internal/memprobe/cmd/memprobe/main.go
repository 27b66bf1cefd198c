package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/memprobe"
	"github.com/onionlite/onionlite/internal/procmem"
	"github.com/onionlite/onionlite/internal/realnet"
	"github.com/onionlite/onionlite/internal/testnet"
	"github.com/onionlite/onionlite/transport"
)

const sampleEvery = 5 * time.Millisecond

func main() {
	tnDir := flag.String("testnet", "", "attach to a test network started with 'onionlite testnet up --dir DIR' (default: start one)")
	reps := flag.Int("reps", 3, "repetitions of each fetch configuration")
	rn := flag.String("realnet", "", "real document sets (default: found like the tests find them)")
	only := flag.String("only", "fetch,dir", "which measurements: fetch, dir")
	flag.Parse()
	if err := run(*tnDir, *reps, *rn, strings.Split(*only, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "memprobe:", err)
		os.Exit(1)
	}
}

func run(tnDir string, reps int, rn string, only []string) error {
	work, err := os.MkdirTemp("", "memprobe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	client, dirBin := filepath.Join(work, "memprobe-client"), filepath.Join(work, "memprobe-dir")
	for bin, pkg := range map[string]string{client: "memprobe-client", dirBin: "memprobe-dir"} {
		out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/onionlite/onionlite/internal/memprobe/cmd/"+pkg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	for _, bin := range []string{client, dirBin} {
		if st, err := os.Stat(bin); err == nil {
			fmt.Printf("%s: %s\n", filepath.Base(bin), procmem.MB(st.Size()))
		}
	}
	fmt.Printf("\nmeasured %s UTC; %d CPUs; each child sampled every %v\n", time.Now().UTC().Format("2006-01-02 15:04"), numCPU(), sampleEvery)
	if slices.Contains(only, "fetch") {
		if err := fetchTable(work, client, tnDir, reps); err != nil {
			return err
		}
	}
	if slices.Contains(only, "dir") {
		if rn == "" {
			if rn, err = realnet.Dir(); err != nil {
				return err
			}
		}
		if err := dirTable(work, client, dirBin, rn); err != nil {
			return err
		}
	}
	return nil
}

// row is one measured process.
type row struct {
	name  string
	peaks procmem.Peaks
	rep   memprobe.Report
	note  string
}

func printRows(rows []row) {
	fmt.Println("| process | VmHWM | RssAnon peak | RssFile peak | after GC: anon | Go heap at end | time | notes |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		settled, heap, secs := "–", "–", "–"
		if r.rep.Settled.VmRSS != 0 {
			settled, heap = procmem.MB(r.rep.Settled.RssAnon), procmem.MB(r.rep.GoHeap)
		}
		if r.rep.Seconds != 0 {
			secs = fmt.Sprintf("%.1f s", r.rep.Seconds)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.name, procmem.MB(r.peaks.VmHWM), procmem.MB(r.peaks.RssAnon),
			procmem.MB(r.peaks.RssFile), settled, heap, secs, r.note)
	}
}

func fetchTable(work, client, tnDir string, reps int) error {
	ctx := context.Background()
	var n *testnet.Network
	var err error
	if tnDir != "" {
		n, err = testnet.Attach(tnDir)
	} else {
		fmt.Fprintln(os.Stderr, "memprobe: starting a test network (15-20 s)")
		n, err = testnet.Start(ctx, testnet.Config{})
	}
	if err != nil {
		return err
	}
	defer n.Stop()
	body, ok := n.Body("10MiB.bin")
	if !ok {
		return errors.New("test network has no 10MiB.bin")
	}
	configs := []struct {
		name string
		args []string
		env  []string
	}{
		{"onionlite, 16 MiB budget (mobile default)", []string{"-budget", "16777216"}, nil},
		{"onionlite, 16 MiB budget, cache in memory (badger not opened)", []string{"-budget", "16777216", "-memstore"}, nil},
		{"onionlite, 128 MiB budget (desktop default)", []string{"-budget", "134217728"}, nil},
		{"onionlite, 16 MiB budget, GOGC=50", []string{"-budget", "16777216"}, []string{"GOGC=50"}},
	}
	var rows []row
	for rep := 0; rep < reps; rep++ {
		for _, c := range configs {
			data := filepath.Join(work, fmt.Sprintf("data-%d-%d", rep, len(rows)))
			args := append([]string{"-mode", "fetch", "-data", data, "-authorities", n.AuthoritiesFile(),
				"-target", n.HTTPTarget(), "-body", "10MiB.bin", "-sha256", body.SHA256}, c.args...)
			cmd := exec.Command(client, args...)
			cmd.Env = append(cleanEnv(), c.env...)
			m, err := memprobe.Run(cmd, sampleEvery)
			if err != nil {
				return err
			}
			rows = append(rows, row{name: c.name, peaks: m.Peaks, rep: m.Report, note: fmt.Sprintf("rep %d", rep+1)})
			os.RemoveAll(data)
		}
		r, err := cTorFetch(ctx, n, body.SHA256)
		if err != nil {
			return err
		}
		r.note = fmt.Sprintf("rep %d", rep+1)
		rows = append(rows, r)
	}
	fmt.Println("\n### Cold bootstrap + 10 MiB fetch, test network")
	fmt.Println()
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.name, b.name) })
	printRows(rows)
	return nil
}

// cTorFetch runs a C tor client from a cold start through a 10 MiB fetch
// via its SOCKS port, sampling its memory throughout.
func cTorFetch(ctx context.Context, n *testnet.Network, want string) (row, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := n.StartClient(ctx, testnet.ClientConfig{})
	if err != nil {
		return row{}, err
	}
	defer c.Stop()
	s := procmem.Start(c.PID(), sampleEvery)
	if err := c.WaitBootstrapped(ctx); err != nil {
		s.Stop()
		return row{}, err
	}
	d := &transport.SOCKS5{Addr: c.SOCKSAddr()}
	conn, err := d.DialContext(ctx, "tcp", n.HTTPTarget())
	if err != nil {
		s.Stop()
		return row{}, err
	}
	fmt.Fprintf(conn, "GET /10MiB.bin HTTP/1.0\r\nHost: %s\r\n\r\n", n.HTTPTarget())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		h := sha256.New()
		io.Copy(h, resp.Body)
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			err = fmt.Errorf("the C tor client: fetched a body with SHA-256 %s", got)
		}
	}
	conn.Close()
	p := s.Stop()
	if hwm, herr := c.PeakRSS(); herr == nil {
		p.VmHWM = max(p.VmHWM, hwm)
	}
	if err != nil {
		return row{}, err
	}
	return row{name: "C tor 0.4.9 client", peaks: p, rep: memprobe.Report{Seconds: time.Since(start).Seconds()}}, nil
}

func dirTable(work, client, dirBin, rn string) error {
	var rows []row
	// The client from its cache: populate (not measured), then a warm
	// start in a network namespace (the set lists real addresses).
	data := filepath.Join(work, "data-2019")
	if m, err := memprobe.Run(exec.Command(client, "-mode", "populate", "-data", data, "-realnet", rn, "-set", "2019"), sampleEvery); err != nil {
		return fmt.Errorf("populate: %w", err)
	} else {
		fmt.Printf("\npopulated a cache with %d relays, %d microdescriptors\n", m.Report.Relays, m.Report.Microdescs)
	}
	// The first start after the cache was written may find badger's
	// level-0 tables from the writes and compact them.
	for i, b := range []string{"16777216", "16777216", "16777216", "134217728"} {
		cmd := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
			client, "-mode", "warm", "-data", data, "-realnet", rn, "-set", "2019", "-budget", b)
		cmd.Env = cleanEnv()
		m, err := memprobe.Run(cmd, sampleEvery)
		if err != nil {
			return fmt.Errorf("warm start: %w", err)
		}
		what := "warm start from its cache"
		if i == 0 {
			what = "first start after the cache was written (badger may compact)"
		}
		rows = append(rows, row{name: fmt.Sprintf("client, %s, 2019 (budget %s MiB)", what, mib(b)), peaks: m.Peaks, rep: m.Report,
			note: fmt.Sprintf("%d relays, %d mds; view %s", m.Report.Relays, m.Report.Microdescs, procmem.MB(m.Report.DirectoryBytes))})
	}
	for _, set := range []string{"2019", "2026"} {
		for _, gc := range []string{"", "GOMEMLIMIT=6MiB"} {
			cmd := exec.Command(dirBin, "-realnet", rn, "-set", set)
			cmd.Env = cleanEnv()
			name := "directory only, " + set
			if gc != "" {
				cmd.Env = append(cmd.Env, gc)
				name += ", " + gc
			}
			m, err := memprobe.Run(cmd, sampleEvery)
			if err != nil {
				return err
			}
			rows = append(rows, row{name: name, peaks: m.Peaks, rep: m.Report,
				note: fmt.Sprintf("%d relays, %d mds; view %s; 1000 paths", m.Report.Relays, m.Report.Microdescs, procmem.MB(m.Report.DirectoryBytes))})
		}
	}
	fmt.Println("\n### Full-scale directory")
	fmt.Println()
	printRows(rows)
	return nil
}

func mib(s string) string {
	var n int64
	fmt.Sscan(s, &n)
	return fmt.Sprint(n >> 20)
}

// cleanEnv is the environment without Go runtime settings, so each child
// runs as configured.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GODEBUG=")
	})
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
