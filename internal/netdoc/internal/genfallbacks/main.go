package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/onionlite/onionlite/internal/netdoc"
)

func main() {
	var (
		incPath   = flag.String("inc", "", "C tor's fallback_dirs.inc (required)")
		incSource = flag.String("inc-source", "", "where the .inc came from, for the generated header (e.g. torproject/tor@COMMIT)")
		consPath  = flag.String("consensus", "", "a real microdesc consensus (required)")
		certsPath = flag.String("certs", "", "authority certificates for the consensus, e.g. its cached-certs (required)")
		nowFlag   = flag.String("now", "", `check time, "2006-01-02 15:04:05" UTC; default: the consensus's valid-after`)
		outPath   = flag.String("o", "", "output Go file (default: stdout)")
	)
	flag.Parse()
	if *incPath == "" || *consPath == "" || *certsPath == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*incPath, *incSource, *consPath, *certsPath, *nowFlag, *outPath, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "genfallbacks:", err)
		os.Exit(1)
	}
}

func run(incPath, incSource, consPath, certsPath, nowFlag, outPath string, log io.Writer) error {
	incText, err := os.ReadFile(incPath)
	if err != nil {
		return err
	}
	consDoc, err := os.ReadFile(consPath)
	if err != nil {
		return err
	}
	certsDoc, err := os.ReadFile(certsPath)
	if err != nil {
		return err
	}

	list, err := parseInc(string(incText))
	if err != nil {
		return fmt.Errorf("%s: %w", incPath, err)
	}
	list.SHA256 = sha256.Sum256(incText)
	list.Source = incSource

	u, err := netdoc.ParseConsensus(consDoc)
	if err != nil {
		return fmt.Errorf("%s: %w", consPath, err)
	}
	now := u.ValidAfter()
	if nowFlag != "" {
		if now, err = time.Parse(time.DateTime, nowFlag); err != nil {
			return fmt.Errorf("-now: %w", err)
		}
	}
	ucerts, err := netdoc.ParseAuthCerts(certsDoc)
	if err != nil {
		return fmt.Errorf("%s: %w", certsPath, err)
	}
	var certs []*netdoc.AuthCert
	for _, uc := range ucerts {
		c, err := uc.Check(now)
		if errors.Is(err, netdoc.ErrExpired) || errors.Is(err, netdoc.ErrNotYetValid) {
			continue // a cache holds certificates outside their lifetime too
		}
		if err != nil {
			return fmt.Errorf("%s: %w", certsPath, err)
		}
		certs = append(certs, c)
	}
	cons, err := u.Check(now, netdoc.DefaultAuthorities(), certs)
	if err != nil {
		return fmt.Errorf("%s: %w", consPath, err)
	}

	res := filter(list, cons)
	res.ConsensusSHA256 = sha256.Sum256(consDoc)
	res.CheckedAt = now.UTC()
	res.SignedBy = len(cons.SignedBy())
	res.report(log)

	src, err := render(res)
	if err != nil {
		return err
	}
	if outPath == "" {
		_, err = os.Stdout.Write(src)
		return err
	}
	return os.WriteFile(outPath, src, 0o644)
}
