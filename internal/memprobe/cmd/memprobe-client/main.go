package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/memprobe"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/sdk"
)

func main() {
	mode := flag.String("mode", "fetch", "fetch, populate or warm")
	data := flag.String("data", "", "data directory (required)")
	auths := flag.String("authorities", "", "fetch: file of DirAuthority lines")
	target := flag.String("target", "", "fetch: host:port of the HTTP target")
	body := flag.String("body", "10MiB.bin", "fetch: body to GET")
	wantSum := flag.String("sha256", "", "fetch: expected SHA-256 of the body")
	budget := flag.Int64("budget", 0, "sdk MemoryBudget (0: platform default)")
	memStore := flag.Bool("memstore", false, "keep the cache in memory instead of badger")
	realnet := flag.String("realnet", "", "populate, warm: directory of the real document sets")
	set := flag.String("set", "2019", "populate, warm: which set (2019: the full 2019-12-15 set)")
	flag.Parse()

	start := time.Now()
	rep := memprobe.Report{Workload: *mode}
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch *mode {
	case "fetch":
		err = fetch(ctx, &rep, *data, *auths, *target, *body, *wantSum, *budget, *memStore)
	case "populate":
		err = populate(&rep, *data, *realnet, *set)
	case "warm":
		err = warm(ctx, &rep, *data, *realnet, *set, *budget)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		rep.Err = err.Error()
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.GoHeap, rep.GoTotal = goMemory()
	rep.Self, rep.Settled = memprobe.Final(debug.FreeOSMemory)
	memprobe.Emit(os.Stdout, rep)
	if err != nil {
		os.Exit(1)
	}
}

func goMemory() (heap, total int64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64() - s[2].Value.Uint64())
}

func newClient(data string, budget int64, memStore bool) *sdk.Client {
	c := &sdk.Client{DataDir: data, MemoryBudget: budget}
	if memStore {
		c.Store = dircache.NewMemStore()
	}
	return c
}

func fetch(ctx context.Context, rep *memprobe.Report, data, authFile, target, body, wantSum string, budget int64, memStore bool) error {
	lines, err := os.ReadFile(authFile)
	if err != nil {
		return err
	}
	c := newClient(data, budget, memStore)
	c.Authorities = strings.Split(strings.TrimSpace(string(lines)), "\n")
	c.TestNetwork = true
	defer c.Close()
	if err := c.Bootstrap(ctx); err != nil {
		return err
	}
	conn, err := c.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n", body, target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return err
	}
	rep.Bytes, rep.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if wantSum != "" && rep.SHA256 != wantSum {
		return fmt.Errorf("body SHA-256 %s, want %s", rep.SHA256, wantSum)
	}
	st := c.Stats()
	rep.Relays, rep.Microdescs = st.Relays, st.RelaysWithMicrodescs
	rep.DirectoryBytes = st.Memory.Directory
	rep.Extra, _ = json.Marshal(st.Memory)
	return nil
}

// The 2019-12-15 set: the only real consensus with every microdescriptor.
const (
	set2019Dir  = "2019-12-15-full-md-set"
	set2019Cons = "consensus-microdesc-2019-12-15-13-00-00"
)

// set2019Now is 20 minutes into the consensus's validity.
var set2019Now = time.Date(2019, 12, 15, 13, 20, 0, 0, time.UTC)

func setDir(realnet, set string) (string, error) {
	if set != "2019" {
		return "", fmt.Errorf("set %q: only 2019 has every microdescriptor", set)
	}
	if realnet == "" {
		return "", errors.New("-realnet is required")
	}
	return filepath.Join(realnet, set2019Dir), nil
}

// populate stores the set as a client that had bootstrapped would have:
// the consensus, the certificates, every microdescriptor.
func populate(rep *memprobe.Report, data, realnet, set string) error {
	dir, err := setDir(realnet, set)
	if err != nil {
		return err
	}
	cons, err := os.ReadFile(filepath.Join(dir, set2019Cons))
	if err != nil {
		return err
	}
	u, err := netdoc.ParseConsensus(cons)
	if err != nil {
		return err
	}
	db, err := dircache.Open(filepath.Join(data, "cache"), dircache.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PutConsensus("microdesc", cons, dircache.ConsensusMeta{
		ValidAfter: u.ValidAfter(), FreshUntil: u.FreshUntil(), ValidUntil: u.ValidUntil()}); err != nil {
		return err
	}
	certText, err := os.ReadFile(filepath.Join(dir, "cached-certs"))
	if err != nil {
		return err
	}
	certs, err := netdoc.ParseAuthCerts(certText)
	if err != nil {
		return err
	}
	for _, uc := range certs {
		c, err := uc.Check(set2019Now)
		if err != nil {
			continue // expired ones are not stored by a client either
		}
		if err := db.PutCert(dircache.Cert{Identity: c.Fingerprint, SigningKey: c.SigningKeyDigest, Text: c.Raw}); err != nil {
			return err
		}
	}
	for _, f := range []string{"cached-microdescs", "cached-microdescs.new"} {
		text, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		mds, err := netdoc.ParseMicrodescs(text)
		if err != nil && len(mds) == 0 {
			return err
		}
		batch := make([]dircache.Microdesc, 0, len(mds))
		for i := range mds {
			s, e := mds[i].Extent()
			batch = append(batch, dircache.Microdesc{Digest: mds[i].Digest, Text: text[s:e]})
		}
		if err := db.PutMicrodescs(u.ValidAfter(), batch); err != nil {
			return err
		}
		rep.Microdescs += len(batch)
	}
	rep.Relays = u.NumRelays()
	// warm reads the authorities from this file: deriving them there
	// from the consensus would put a pass over its text, and the garbage
	// of that pass, into the measured process before the client starts.
	return os.WriteFile(filepath.Join(data, authsFile), []byte(strings.Join(authorityLines(cons), "\n")+"\n"), 0o644)
}

// authsFile, in -data, holds the DirAuthority lines populate derived from
// the set's consensus.
const authsFile = "authorities"

// authorityLines turns the consensus's dir-source lines into DirAuthority
// lines, with the RSA identity of the relay each authority runs (its "r"
// line at the same address and ORPort).
func authorityLines(cons []byte) []string {
	type src struct{ nick, v3, ip, dirPort, orPort string }
	var srcs []src
	ident := map[string]string{} // ip:orport → hex identity
	for _, l := range bytes.Split(cons, []byte("\n")) {
		f := strings.Fields(string(l))
		switch {
		case len(f) >= 7 && f[0] == "dir-source":
			srcs = append(srcs, src{nick: f[1], v3: f[2], ip: f[4], dirPort: f[5], orPort: f[6]})
		case len(f) >= 8 && f[0] == "r":
			if id, err := base64.RawStdEncoding.DecodeString(f[2]); err == nil {
				ident[f[5]+":"+f[6]] = strings.ToUpper(hex.EncodeToString(id))
			}
		}
	}
	var out []string
	for _, s := range srcs {
		fp, ok := ident[s.ip+":"+s.orPort]
		if !ok {
			fp = strings.Repeat("0", 40) // not running a relay in this consensus
		}
		out = append(out, fmt.Sprintf("DirAuthority %s orport=%s v3ident=%s %s:%s %s", s.nick, s.orPort, s.v3, s.ip, s.dirPort, fp))
	}
	return out
}

// offsetClock is the real clock moved to another date.
type offsetClock struct{ d time.Duration }

func (c offsetClock) Now() time.Time                         { return time.Now().Add(c.d) }
func (c offsetClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// warm starts a client from a populated cache at the set's time.
func warm(ctx context.Context, rep *memprobe.Report, data, realnet, set string, budget int64) error {
	if _, err := setDir(realnet, set); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(data, authsFile))
	if err != nil {
		return fmt.Errorf("%w (run -mode populate first)", err)
	}
	auths := strings.Split(strings.TrimSpace(string(b)), "\n")
	c := &sdk.Client{DataDir: data, MemoryBudget: budget, Authorities: auths, Fallbacks: []string{},
		Clock: offsetClock{d: time.Until(set2019Now)}, PreemptiveCircuits: -1}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Bootstrap(ctx); err != nil {
		return err
	}
	st := c.Stats()
	rep.Relays, rep.Microdescs = st.Relays, st.RelaysWithMicrodescs
	rep.DirectoryBytes = st.Memory.Directory
	rep.Extra, _ = json.Marshal(st.Memory)
	if st.ConsensusSource != "cache" || st.Relays == 0 || st.RelaysWithMicrodescs != st.Relays {
		return fmt.Errorf("directory not from the cache or incomplete: source %q, %d relays, %d with microdescriptors",
			st.ConsensusSource, st.Relays, st.RelaysWithMicrodescs)
	}
	return nil
}
