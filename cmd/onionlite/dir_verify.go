package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/clock"
	"github.com/onionlite/onionlite/internal/netdoc"
)

const verifyUsage = "usage: onionlite dir verify --consensus FILE --certs FILE [--now RFC3339] [--authorities FILE] [--json]"

// verifyMaxDoc caps each input file (a consensus is about 3.4 MB today).
const verifyMaxDoc = 64 << 20

func init() {
	dirSubs["verify"] = runDirVerify
}

// verifyReport is the --json output. Times are RFC 3339 in UTC.
type verifyReport struct {
	Valid            bool              `json:"valid"`
	Error            string            `json:"error,omitempty"`
	Now              string            `json:"now"`
	Flavor           string            `json:"flavor"`
	ConsensusMethod  int               `json:"consensus_method"`
	ValidAfter       string            `json:"valid_after"`
	FreshUntil       string            `json:"fresh_until"`
	ValidUntil       string            `json:"valid_until"`
	Relays           int               `json:"relays"`
	Signatures       int               `json:"signatures"`
	SignaturesValid  int               `json:"signatures_valid"`
	SignaturesNeeded int               `json:"signatures_needed"`
	Authorities      int               `json:"authorities"`
	SignedBy         []string          `json:"signed_by"`
	MissingCerts     []verifyCertKey   `json:"missing_certs"`
	CertsUsable      int               `json:"certs_usable"`
	CertsSkipped     []string          `json:"certs_skipped,omitempty"`
	SHA3Signed       string            `json:"sha3_signed_part"`
	SHA3Full         string            `json:"sha3_full"`
	SignatureStatus  []verifySigStatus `json:"signature_status"`
}

type verifyCertKey struct {
	Identity         string `json:"identity"`
	SigningKeyDigest string `json:"signing_key_digest"`
}

type verifySigStatus struct {
	Identity  string `json:"identity"`
	Authority string `json:"authority,omitempty"`
	Algorithm string `json:"algorithm"`
	Status    string `json:"status"`
}

// runDirVerify checks a consensus against authority certificates and a
// time. It exits 0 only when the consensus is valid at that time: within
// [valid-after, valid-until] and signed by more than half of the trusted
// authorities (the real network's by default, or --authorities). Any
// failure prints one line on stderr and exits 1 (2 for usage errors);
// with --json the report is printed to stdout as well whenever the
// consensus could be parsed.
func runDirVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dir verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	consPath := fs.String("consensus", "", "microdesc consensus file")
	certsPath := fs.String("certs", "", "authority key certificates (e.g. /tor/keys/all or cached-certs)")
	nowFlag := fs.String("now", "", "check at this time (RFC 3339; default: the current time)")
	authPath := fs.String("authorities", "", "file of DirAuthority lines to trust (default: the real network's authorities)")
	asJSON := fs.Bool("json", false, "print a JSON report")
	fail := func(code int, format string, a ...any) int {
		msg := strings.ReplaceAll(fmt.Sprintf(format, a...), "\n", " ")
		fmt.Fprintf(stderr, "onionlite dir verify: %s\n", msg)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, verifyUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%v (%s)", err, verifyUsage)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (%s)", fs.Arg(0), verifyUsage)
	}
	if *consPath == "" || *certsPath == "" {
		return fail(2, "--consensus and --certs are required (%s)", verifyUsage)
	}
	now := clock.Real{}.Now().UTC()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			return fail(2, "--now: want an RFC 3339 time such as 2026-06-27T04:30:00Z, got %q", *nowFlag)
		}
		now = t.UTC()
	}
	trusted := netdoc.DefaultAuthorities()
	if *authPath != "" {
		text, err := verifyRead(*authPath)
		if err != nil {
			return fail(1, "authorities: %v", err)
		}
		if trusted, err = netdoc.ParseAuthorityFile(string(text)); err != nil {
			return fail(1, "authorities: %s: %v", *authPath, err)
		}
	}
	certText, err := verifyRead(*certsPath)
	if err != nil {
		return fail(1, "certs: %v", err)
	}
	unchecked, err := netdoc.ParseAuthCerts(certText)
	if err != nil {
		return fail(1, "certs: %s: %v", *certsPath, err)
	}
	// A certificate file may hold stale or future certificates beside the
	// current ones (Tor's cached-certs does): use those that check at now.
	var certs []*netdoc.AuthCert
	var skipped []string
	for _, u := range unchecked {
		c, err := u.Check(now)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		certs = append(certs, c)
	}
	doc, err := verifyRead(*consPath)
	if err != nil {
		return fail(1, "consensus: %v", err)
	}
	u, err := netdoc.ParseConsensus(doc)
	if err != nil {
		return fail(1, "consensus: %s: %v", *consPath, err)
	}

	c, checkErr := u.Check(now, trusted, certs)
	rep := verifyReport{
		Valid:           checkErr == nil,
		Now:             now.Format(time.RFC3339),
		ValidAfter:      u.ValidAfter().Format(time.RFC3339),
		FreshUntil:      u.FreshUntil().Format(time.RFC3339),
		ValidUntil:      u.ValidUntil().Format(time.RFC3339),
		Relays:          u.NumRelays(),
		Signatures:      len(u.Signatures()),
		CertsUsable:     len(certs),
		CertsSkipped:    skipped,
		SHA3Signed:      fmt.Sprintf("%X", u.Digests().SignedSHA3),
		SHA3Full:        fmt.Sprintf("%X", u.Digests().FullSHA3),
		SignedBy:        []string{},
		MissingCerts:    []verifyCertKey{},
		SignatureStatus: []verifySigStatus{},
	}
	for _, k := range u.MissingCerts(trusted, certs) {
		rep.MissingCerts = append(rep.MissingCerts, verifyCertKey{fmt.Sprintf("%X", k.Identity), fmt.Sprintf("%X", k.SigningKeyDigest)})
	}
	// Report the signatures even when the time check failed: check them
	// again with the lifetime window opened wide.
	sigCons, sigErr := c, checkErr
	if errors.Is(checkErr, netdoc.ErrExpired) || errors.Is(checkErr, netdoc.ErrNotYetValid) {
		wide := netdoc.Tolerance{Early: 100 * 365 * 24 * time.Hour, Late: 100 * 365 * 24 * time.Hour}
		sigCons, sigErr = u.CheckWithTolerance(now, trusted, certs, wide)
	}
	var results []netdoc.SignatureResult
	var se *netdoc.SignatureError
	rep.Authorities, rep.SignaturesNeeded = netdoc.SignatureThreshold(trusted)
	switch {
	case sigErr == nil:
		results = sigCons.Verified
		rep.SignedBy = sigCons.SignedBy()
	case errors.As(sigErr, &se):
		results = se.Results
		rep.SignedBy = se.SignedBy()
	}
	rep.SignaturesValid = len(rep.SignedBy)
	for _, r := range results {
		rep.SignatureStatus = append(rep.SignatureStatus, verifySigStatus{
			Identity: fmt.Sprintf("%X", r.Key.Identity), Authority: r.Authority,
			Algorithm: r.Algorithm.String(), Status: r.Status.String(),
		})
	}
	d := u.DangerouslyAssumeChecked() // header fields only, for the report
	rep.Flavor, rep.ConsensusMethod = d.Flavor, d.ConsensusMethod
	if checkErr != nil {
		rep.Error = checkErr.Error()
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(1, "writing report: %v", err)
		}
	}
	if checkErr != nil {
		return fail(1, "%s: %v", *consPath, checkErr)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "valid: %d relays, signed by %d of %d authorities (need %d), valid %s to %s, consensus-method %d\n",
			rep.Relays, rep.SignaturesValid, rep.Authorities, rep.SignaturesNeeded, rep.ValidAfter, rep.ValidUntil, rep.ConsensusMethod)
	}
	return 0
}

func verifyRead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, verifyMaxDoc+1))
	if err != nil {
		return nil, err
	}
	if len(b) > verifyMaxDoc {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, verifyMaxDoc)
	}
	return b, nil
}
