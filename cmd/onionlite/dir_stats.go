package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/onionlite/onionlite/dircache/netdir"
	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
)

const statsUsage = "usage: onionlite dir stats --consensus FILE --certs FILE [--microdescs FILE]... [--now RFC3339] [--authorities FILE]"

func init() {
	dirSubs["stats"] = runDirStats
}

// statsReport is the JSON output of dir stats.
type statsReport struct {
	Now        string `json:"now"`
	ValidAfter string `json:"valid_after"`
	ValidUntil string `json:"valid_until"`
	Relays     int    `json:"relays"`

	// Microdescriptors: parsed from the files, matched to a relay, not
	// listed in the consensus, and dropped as malformed.
	MicrodescsParsed    int `json:"microdescs_parsed"`
	MicrodescsMatched   int `json:"microdescs_matched"`
	MicrodescsUnlisted  int `json:"microdescs_unlisted"`
	MicrodescsMalformed int `json:"microdescs_malformed"`
	MicrodescsMissing   int `json:"microdescs_missing"`

	// The NetDir's own accounting (netdir.Stats): everything it holds,
	// and the per-relay part without families.
	NetdirBytes        int     `json:"netdir_bytes"`
	BytesPerRelay      float64 `json:"bytes_per_relay"`
	RelayBytesPerRelay float64 `json:"relay_bytes_per_relay"`
	InternedFamilies   int     `json:"interned_families"`
	FamilyMembers      int     `json:"family_members"`
	FamilyBytes        int     `json:"family_bytes"`
	InternedPolicies   int     `json:"interned_policies"`
	PolicyBytes        int     `json:"policy_bytes"`

	// The process heap after loading, with every raw and parsed document
	// dropped and a full collection (runtime.MemStats).
	HeapInuseBytes uint64 `json:"heap_inuse_bytes"`
	HeapAllocBytes uint64 `json:"heap_alloc_bytes"`

	// How much of the network is usable (netdir.DirInfo).
	PathsFraction  float64 `json:"paths_fraction"`
	GuardFraction  float64 `json:"guard_fraction"`
	MiddleFraction float64 `json:"middle_fraction"`
	ExitFraction   float64 `json:"exit_fraction"`
	EnoughDirInfo  bool    `json:"enough_dir_info"`
}

// statsPaths is the repeatable --microdescs flag.
type statsPaths []string

func (s *statsPaths) String() string     { return strings.Join(*s, ",") }
func (s *statsPaths) Set(v string) error { *s = append(*s, v); return nil }

// runDirStats loads a consensus (checked like dir verify) and
// microdescriptor files into a netdir.NetDir and prints one JSON object
// describing it and the heap it needs. It exits 0 when the consensus is
// valid at --now and every file loads; otherwise 1 (2 for usage errors)
// with one line on stderr.
func runDirStats(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dir stats", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	consPath := fs.String("consensus", "", "microdesc consensus file")
	certsPath := fs.String("certs", "", "authority key certificates (e.g. /tor/keys/all or cached-certs)")
	var mdPaths statsPaths
	fs.Var(&mdPaths, "microdescs", "microdescriptor file (served or Tor cache format); repeatable")
	nowFlag := fs.String("now", "", "check at this time (RFC 3339; default: the current time)")
	authPath := fs.String("authorities", "", "file of DirAuthority lines to trust (default: the real network's authorities)")
	fail := func(code int, format string, a ...any) int {
		msg := strings.ReplaceAll(fmt.Sprintf(format, a...), "\n", " ")
		fmt.Fprintf(stderr, "onionlite dir stats: %s\n", msg)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, statsUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%v (%s)", err, statsUsage)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (%s)", fs.Arg(0), statsUsage)
	}
	if *consPath == "" || *certsPath == "" {
		return fail(2, "--consensus and --certs are required (%s)", statsUsage)
	}
	now := clock.Real{}.Now().UTC()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fail(2, "--now: want an RFC 3339 time such as 2026-06-27T04:30:00Z, got %q", *nowFlag)
		}
		now = t.UTC()
	}

	rep := statsReport{Now: now.Format(time.RFC3339)}
	nd, code := statsLoad(&rep, *consPath, *certsPath, *authPath, mdPaths, now, fail)
	if nd == nil {
		return code
	}
	// Everything but nd is garbage now: measure the heap that remains.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rep.HeapInuseBytes, rep.HeapAllocBytes = ms.HeapInuse, ms.HeapAlloc

	st := nd.Stats()
	rep.NetdirBytes = st.Bytes
	rep.BytesPerRelay = float64(st.Bytes) / float64(st.Relays)
	rep.RelayBytesPerRelay = float64(st.RelayBytes) / float64(st.Relays)
	rep.InternedFamilies, rep.FamilyMembers, rep.FamilyBytes = st.Families, st.FamilyMembers, st.FamilyBytes
	rep.InternedPolicies, rep.PolicyBytes = st.Policies, st.PolicyBytes
	rep.MicrodescsMissing = len(nd.MissingMicrodescs())
	di := nd.DirInfo()
	rep.PathsFraction, rep.GuardFraction, rep.MiddleFraction, rep.ExitFraction = di.Paths, di.Guard, di.Middle, di.Exit
	rep.EnoughDirInfo = di.Enough(0)

	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fail(1, "writing report: %v", err)
	}
	runtime.KeepAlive(nd)
	return 0
}

// statsLoad reads, checks and builds; every document it reads is
// unreachable when it returns. On failure it returns nil and the exit
// code, having reported the error.
func statsLoad(rep *statsReport, consPath, certsPath, authPath string, mdPaths []string, now time.Time,
	fail func(int, string, ...any) int) (*netdir.NetDir, int) {
	trusted := netdoc.DefaultAuthorities()
	if authPath != "" {
		text, err := verifyRead(authPath)
		if err != nil {
			return nil, fail(1, "authorities: %v", err)
		}
		if trusted, err = netdoc.ParseAuthorityFile(string(text)); err != nil {
			return nil, fail(1, "authorities: %s: %v", authPath, err)
		}
	}
	certText, err := verifyRead(certsPath)
	if err != nil {
		return nil, fail(1, "certs: %v", err)
	}
	unchecked, err := netdoc.ParseAuthCerts(certText)
	if err != nil {
		return nil, fail(1, "certs: %s: %v", certsPath, err)
	}
	var certs []*netdoc.AuthCert
	for _, u := range unchecked {
		if c, err := u.Check(now); err == nil {
			certs = append(certs, c) // stale and future certificates are skipped, as dir verify does
		}
	}
	doc, err := verifyRead(consPath)
	if err != nil {
		return nil, fail(1, "consensus: %v", err)
	}
	u, err := netdoc.ParseConsensus(doc)
	if err != nil {
		return nil, fail(1, "consensus: %s: %v", consPath, err)
	}
	doc = nil
	c, err := u.Check(now, trusted, certs)
	if err != nil {
		return nil, fail(1, "%s: %v", consPath, err)
	}
	rep.ValidAfter, rep.ValidUntil = c.ValidAfter.Format(time.RFC3339), c.ValidUntil.Format(time.RFC3339)
	rep.Relays = len(c.Relays)
	b, err := netdir.NewBuilder(c, nil)
	if err != nil {
		return nil, fail(1, "%s: %v", consPath, err)
	}
	for _, p := range mdPaths {
		text, err := verifyRead(p)
		if err != nil {
			return nil, fail(1, "microdescs: %v", err)
		}
		mds, err := netdoc.ParseMicrodescs(text)
		var be *netdoc.MicrodescBatchError
		switch {
		case errors.As(err, &be):
			rep.MicrodescsMalformed += len(be.Errors)
		case err != nil:
			return nil, fail(1, "microdescs: %s: %v", p, err)
		}
		if len(mds) == 0 {
			if err != nil {
				return nil, fail(1, "microdescs: %s: no microdescriptor parsed: %v", p, err)
			}
			return nil, fail(1, "microdescs: %s: no microdescriptors in the file", p)
		}
		_, matched := netdoc.MatchMicrodescs(c, mds)
		rep.MicrodescsParsed += len(mds)
		rep.MicrodescsUnlisted += len(mds) - matched
		if _, err := b.AddMicrodescs(mds); err != nil {
			return nil, fail(1, "microdescs: %v", err)
		}
	}
	nd, err := b.Build()
	if err != nil {
		return nil, fail(1, "%v", err)
	}
	rep.MicrodescsMatched = nd.NumMicrodescs()
	return nd, 0
}
