package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/internal/fixture"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/realnet"
)

type variant struct {
	name string
	note string
	tune func(o badger.Options) badger.Options // nil: the tuned options
	env  []string
}

var variants = []variant{
	{name: "no-store", note: "baseline: the same process without opening a store (write: reads the set; load: nothing)"},
	{name: "chosen", note: "dircache's options (internal/tuning)"},
	{name: "badger-default", note: "badger.DefaultOptions, compression off", tune: func(o badger.Options) badger.Options {
		return badger.DefaultOptions(o.Dir).WithLogger(o.Logger).WithLoggingLevel(badger.WARNING).WithCompression(options.None)
	}},
	{name: "notes-tuned", note: "the storage notes' tuned set", tune: func(o badger.Options) badger.Options {
		return o.WithMemTableSize(4 << 20).WithNumMemtables(1).WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2).
			WithBaseTableSize(1 << 20).WithBaseLevelSize(4 << 20).WithMaxLevels(4).WithValueLogFileSize(8 << 20).
			WithValueThreshold(1 << 10).WithVerifyValueChecksum(false).WithChecksumVerificationMode(options.NoVerification)
	}},
	{name: "memtable-64MiB", note: "chosen, MemTableSize 64 MiB (default)", tune: func(o badger.Options) badger.Options {
		return o.WithMemTableSize(64 << 20)
	}},
	{name: "memtable-4MiB", note: "chosen, MemTableSize 4 MiB (ValueThreshold 512 KiB)", tune: func(o badger.Options) badger.Options {
		return o.WithMemTableSize(4 << 20).WithValueThreshold(512 << 10)
	}},
	{name: "memtable-1MiB", note: "chosen, MemTableSize 1 MiB (ValueThreshold 128 KiB to fit)", tune: func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithValueThreshold(128 << 10)
	}},
	{name: "memtables-5", note: "chosen, NumMemtables 5 (default)", tune: func(o badger.Options) badger.Options {
		return o.WithNumMemtables(5)
	}},
	{name: "blockcache-256MiB", note: "chosen, BlockCacheSize 256 MiB (default)", tune: func(o badger.Options) badger.Options {
		return o.WithBlockCacheSize(256 << 20)
	}},
	{name: "vlog-1GiB", note: "chosen, ValueLogFileSize 1 GiB (default)", tune: func(o badger.Options) badger.Options {
		return o.WithValueLogFileSize(1<<30 - 1)
	}},
	{name: "vlog-1MiB", note: "chosen, ValueLogFileSize 1 MiB", tune: func(o badger.Options) badger.Options {
		return o.WithValueLogFileSize(1 << 20)
	}},
	{name: "threshold-1KiB", note: "chosen, ValueThreshold 1 KiB (most mds in the value log)", tune: func(o badger.Options) badger.Options {
		return o.WithValueThreshold(1 << 10)
	}},
	{name: "compactors-4", note: "chosen, NumCompactors 4 (badger's default; dircache runs none and compacts level 0 itself)", tune: func(o badger.Options) badger.Options {
		return o.WithNumCompactors(4)
	}},
	{name: "levels-default", note: "chosen, default table/level sizes (2 MiB, 10 MiB, 7 levels, L0 5/15)", tune: func(o badger.Options) badger.Options {
		return o.WithBaseTableSize(2 << 20).WithBaseLevelSize(10 << 20).WithMaxLevels(7).WithNumLevelZeroTables(5).WithNumLevelZeroTablesStall(15)
	}},
	{name: "no-checksums", note: "chosen, no block/value checksum verification", tune: func(o badger.Options) badger.Options {
		return o.WithVerifyValueChecksum(false).WithChecksumVerificationMode(options.NoVerification)
	}},
	{name: "gomemlimit-16MiB", note: "chosen, GOMEMLIMIT=16MiB", env: []string{"GOMEMLIMIT=16MiB"}},
}

// result is what a child reports, as one JSON line.
type result struct {
	Millis     float64 // best wall time of the measured work
	OpenMillis float64 // of which Open (load phase)
	MDs        int
	HWM        int64 // VmHWM at the end
	Peak       int64 // VmPeak at the end
	SizeOpen   int64 // VmSize while the store is open
	HeapOpen   uint64
	Goroutines int
	Err        string `json:",omitempty"`
}

var now = clock.Real{}.Now

func main() {
	var (
		realDir   = flag.String("realnet", "", "realnet directory (default: found like the tests do)")
		runs      = flag.Int("runs", 5, "load runs per variant (best time is reported)")
		only      = flag.String("only", "", "comma-separated variant names")
		consensus = flag.Bool("consensus", false, "measure consensus storage strategies instead")
		child     = flag.String("child", "", "internal: phase to run (write, load, cons-<strategy>)")
		vname     = flag.String("variant", "", "internal: variant name")
		dir       = flag.String("dir", "", "internal: cache directory")
	)
	flag.Parse()
	if *realDir == "" {
		d, err := realnet.Dir()
		if err != nil {
			fatal(err)
		}
		*realDir = d
	}
	if *child != "" {
		r := runChild(*child, *vname, *dir, *realDir, *runs)
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	if *consensus {
		consensusTable(*realDir, *runs)
		return
	}
	fmt.Println("| variant | write s | write peak RSS | load ms (open) | load peak RSS | VmSize open | VmPeak | heap open | goroutines | disk real / apparent |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, v := range variants {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), v.name) {
			continue
		}
		d, err := os.MkdirTemp("", "cachebench-")
		if err != nil {
			fatal(err)
		}
		w := spawn("write", v, d, *realDir, 1)
		l := spawn("load", v, d, *realDir, *runs)
		real, app := diskUse(d)
		os.RemoveAll(d)
		if w.Err != "" || l.Err != "" {
			fmt.Printf("| %s | error: %s %s |\n", v.name, w.Err, l.Err)
			continue
		}
		fmt.Printf("| %s | %.2f | %s | %.0f (%.0f) | %s | %s | %s | %s | %d | %s / %s |\n",
			v.name, w.Millis/1000, mb(w.HWM), l.Millis, l.OpenMillis, mb(l.HWM), mb(l.SizeOpen), mb(l.Peak), mb(int64(l.HeapOpen)), l.Goroutines, mb(real), mb(app))
	}
	fmt.Println()
	for _, v := range variants {
		fmt.Printf("- %s: %s\n", v.name, v.note)
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "cachebench:", err)
	os.Exit(1)
}

func spawn(phase string, v variant, dir, realDir string, runs int) result {
	cmd := exec.Command(os.Args[0], "-child", phase, "-variant", v.name, "-dir", dir, "-realnet", realDir, fmt.Sprint("-runs=", runs))
	cmd.Env = append(os.Environ(), v.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{Err: err.Error()}
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{Err: err.Error()}
	}
	return r
}

func findVariant(name string) variant {
	for _, v := range variants {
		if v.name == name {
			return v
		}
	}
	fatal(fmt.Errorf("unknown variant %q", name))
	return variant{}
}

func runChild(phase, vname, dir, realDir string, runs int) (r result) {
	defer func() {
		if p := recover(); p != nil {
			r = result{Err: fmt.Sprint(p)}
		}
	}()
	if s, ok := strings.CutPrefix(phase, "cons-"); ok {
		return consChild(s, dir, realDir, runs)
	}
	v := findVariant(vname)
	opts := dircache.Options{Badger: v.tune}
	if v.name == "no-store" {
		if phase == "write" {
			set, err := fixture.Load(filepath.Join(realDir, "2019-12-15-full-md-set"), "consensus-microdesc-2019-12-15-13-00-00")
			if err != nil {
				return result{Err: err.Error()}
			}
			r.MDs = len(set.MDs)
		}
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		st := procStatus()
		r.HeapOpen, r.Goroutines, r.SizeOpen = ms0.HeapInuse, runtime.NumGoroutine(), st["VmSize"]
		r.HWM, r.Peak = st["VmHWM"], st["VmPeak"]
		return r
	}
	switch phase {
	case "write":
		set, err := fixture.Load(filepath.Join(realDir, "2019-12-15-full-md-set"), "consensus-microdesc-2019-12-15-13-00-00")
		if err != nil {
			return result{Err: err.Error()}
		}
		start := now()
		db, err := dircache.Open(dir, opts)
		if err != nil {
			return result{Err: err.Error()}
		}
		if err := writeSet(db, set); err != nil {
			return result{Err: err.Error()}
		}
		r.Goroutines = runtime.NumGoroutine()
		r.SizeOpen = procStatus()["VmSize"]
		if err := db.Close(); err != nil {
			return result{Err: err.Error()}
		}
		r.Millis = ms(now().Sub(start))
		r.MDs = len(set.MDs)
	case "load":
		r.Millis = 1e18
		for range runs {
			start := now()
			db, err := dircache.Open(dir, opts)
			if err != nil {
				return result{Err: err.Error()}
			}
			open := now().Sub(start)
			n, err := loadAll(db)
			if err != nil {
				return result{Err: err.Error()}
			}
			var ms0 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			r.HeapOpen, r.Goroutines, r.SizeOpen = ms0.HeapInuse, runtime.NumGoroutine(), procStatus()["VmSize"]
			if err := db.Close(); err != nil {
				return result{Err: err.Error()}
			}
			if t := ms(now().Sub(start)); t < r.Millis {
				r.Millis, r.OpenMillis = t, ms(open)
			}
			r.MDs = n
		}
	default:
		return result{Err: "unknown phase " + phase}
	}
	st := procStatus()
	r.HWM, r.Peak = st["VmHWM"], st["VmPeak"]
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeSet stores a set the way a bootstrap would: consensus, certificates,
// then microdescriptors in download-sized batches, then marks them listed.
func writeSet(db dircache.Store, set *fixture.Set) error {
	va, fu, vu, err := fixture.Times(set.Consensus)
	if err != nil {
		return err
	}
	if err := db.PutConsensus("microdesc", set.Consensus, dircache.ConsensusMeta{ValidAfter: va, FreshUntil: fu, ValidUntil: vu}); err != nil {
		return err
	}
	for _, c := range set.Certs {
		if err := db.PutCert(dircache.Cert(c)); err != nil {
			return err
		}
	}
	var all [][32]byte
	for batch := range slices.Chunk(set.MDs, 500) {
		mds := make([]dircache.Microdesc, len(batch))
		for i, text := range batch {
			mds[i] = dircache.Microdesc{Digest: sha256.Sum256(text), Text: text}
			all = append(all, mds[i].Digest)
		}
		if err := db.PutMicrodescs(va, mds); err != nil {
			return err
		}
	}
	return db.MarkListed(va.Add(time.Hour), all)
}

// loadAll is a warm start: consensus, certificates, every microdescriptor.
func loadAll(db dircache.Store) (int, error) {
	if _, err := db.Consensus("microdesc"); err != nil {
		return 0, err
	}
	if _, _, err := db.Certs(); err != nil {
		return 0, err
	}
	n := 0
	_, err := db.ForEachMicrodesc(func([32]byte, []byte) error { n++; return nil })
	return n, err
}

// bytesReplace returns b with the first old replaced by new.
func bytesReplace(b []byte, old, new string) []byte {
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}
