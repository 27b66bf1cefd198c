package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/dircache/netdir/netdirtest"
	"github.com/onionlite/onionlite/internal/memprobe"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/pathsel"
)

type docSet struct {
	dir, consensus string
	mds            []string
	now            time.Time
	synthetic      bool
}

var sets = map[string]docSet{
	"2019": {dir: "2019-12-15-full-md-set", consensus: "consensus-microdesc-2019-12-15-13-00-00",
		mds: []string{"cached-microdescs", "cached-microdescs.new"}, now: time.Date(2019, 12, 15, 13, 20, 0, 0, time.UTC)},
	"2026": {dir: "2026-06-27-latest-consensus", consensus: "consensus-microdesc-2026-06-27-04-00-00",
		mds: []string{"cached-microdescs.new"}, now: time.Date(2026, 6, 27, 4, 20, 0, 0, time.UTC), synthetic: true},
}

func main() {
	realnet := flag.String("realnet", "", "directory of the real document sets (required)")
	set := flag.String("set", "2019", "2019 or 2026")
	paths := flag.Int("paths", 1000, "paths to select once the view is built")
	flag.Parse()
	start := time.Now()
	rep := memprobe.Report{Workload: "directory " + *set}
	err := run(&rep, *realnet, *set, *paths)
	if err != nil {
		rep.Err = err.Error()
	}
	rep.Seconds = time.Since(start).Seconds()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	rep.GoHeap, rep.GoTotal = int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64()-s[2].Value.Uint64())
	rep.Self, rep.Settled = memprobe.Final(debug.FreeOSMemory)
	memprobe.Emit(os.Stdout, rep)
	if err != nil {
		os.Exit(1)
	}
}

func run(rep *memprobe.Report, realnet, name string, paths int) error {
	ds, ok := sets[name]
	if !ok || realnet == "" {
		return errors.New("need -realnet and -set 2019 or 2026")
	}
	dir := filepath.Join(realnet, ds.dir)
	nd, err := load(dir, ds)
	if err != nil {
		return err
	}
	runtime.GC() // the documents' text is garbage now; only the view stays
	rep.Relays, rep.Microdescs = nd.Len(), nd.NumMicrodescs()
	rep.DirectoryBytes = int64(nd.Stats().Bytes)
	// Usable: paths for web ports, guards chosen here.
	sel := pathsel.New(nd, pathsel.Config{})
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < paths; i++ {
		if _, err := sel.BuildPath(netdir.NoRelay, pathsel.Target{Port: 443}, r); err != nil {
			return fmt.Errorf("path %d: %w", i, err)
		}
	}
	runtime.KeepAlive(sel)
	return nil
}

// load parses and checks the consensus, parses the microdescriptors and
// builds the view; the documents' bytes are dropped on return.
func load(dir string, ds docSet) (*netdir.NetDir, error) {
	text, err := os.ReadFile(filepath.Join(dir, ds.consensus))
	if err != nil {
		return nil, err
	}
	u, err := netdoc.ParseConsensus(text)
	if err != nil {
		return nil, err
	}
	certText, err := os.ReadFile(filepath.Join(dir, "cached-certs"))
	if err != nil {
		return nil, err
	}
	ucs, err := netdoc.ParseAuthCerts(certText)
	if err != nil {
		return nil, err
	}
	var certs []*netdoc.AuthCert
	for _, uc := range ucs {
		if c, err := uc.Check(ds.now); err == nil {
			certs = append(certs, c)
		}
	}
	// Trusted: the set's own authorities, from its dir-source lines
	// (today's list is not 2019's).
	var trusted []netdoc.Authority
	for _, l := range bytes.Split(text, []byte("\n")) {
		f := bytes.Fields(l)
		if len(f) >= 3 && string(f[0]) == "dir-source" {
			var a netdoc.Authority
			if _, err := hex.Decode(a.V3Ident[:], f[2]); err == nil {
				a.Nickname = string(f[1])
				trusted = append(trusted, a)
			}
		}
	}
	c, err := u.Check(ds.now, trusted, certs)
	if err != nil {
		return nil, err
	}
	var mds []netdoc.Microdesc
	for _, f := range ds.mds {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		m, err := netdoc.ParseMicrodescs(b)
		if err != nil && len(m) == 0 {
			return nil, err
		}
		mds = append(mds, m...)
	}
	if ds.synthetic {
		mds = netdirtest.Microdescs(c, mds, 1)
	}
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		return nil, err
	}
	if _, err := b.AddMicrodescs(mds); err != nil {
		return nil, err
	}
	return b.Build()
}
