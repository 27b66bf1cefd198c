package faulttest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/testnet"
)

// storeView is what a data directory's cache holds, all of it verified.
type storeView struct {
	validAfter time.Time // of the stored consensus; zero if none
	validUntil time.Time
	relays     int
	mds        map[[32]byte]bool
	certs      int
}

func trustedAuthorities(t *testing.T, n *testnet.Network) []netdoc.Authority {
	t.Helper()
	auths, err := netdoc.ParseAuthorityFile(strings.Join(n.AuthorityLines(), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return auths
}

// inspectStore opens the cache of dataDir as the sdk does (repairing what
// it must) and fails the test if anything the store hands out does not
// verify: each certificate by its signatures, the consensus by the
// trusted authorities' signatures (checked at its own valid-after, so
// that an old one still counts). Microdescriptors are checked by the
// store itself against their SHA-256 digests; those are returned.
func inspectStore(t *testing.T, dataDir string, auths []netdoc.Authority) storeView {
	t.Helper()
	db, err := dircache.Open(filepath.Join(dataDir, "cache"), dircache.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("open the cache: %v", err)
	}
	defer db.Close()
	if r := db.Recovery(); r != nil {
		t.Logf("the cache was repaired on open: %v", r)
	}
	var v storeView
	stored, dropped, err := db.Certs()
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	if dropped > 0 {
		t.Logf("%d damaged certificates dropped", dropped)
	}
	var certs []*netdoc.AuthCert
	for _, sc := range stored {
		us, err := netdoc.ParseAuthCerts(sc.Text)
		if err != nil || len(us) != 1 {
			t.Fatalf("a stored certificate does not parse: %v", err)
		}
		c, err := us[0].Check(time.Now())
		if err != nil {
			t.Fatalf("a stored certificate does not verify: %v", err)
		}
		certs = append(certs, c)
	}
	v.certs = len(certs)
	cons, err := db.Consensus("microdesc")
	switch {
	case errors.Is(err, dircache.ErrNotFound), errors.Is(err, dircache.ErrCorrupt):
		t.Logf("no usable stored consensus: %v", err)
	case err != nil:
		t.Fatalf("consensus: %v", err)
	default:
		u, err := netdoc.ParseConsensus(cons.Text)
		if err != nil {
			t.Fatalf("the stored consensus does not parse: %v", err)
		}
		c, err := u.Check(u.ValidAfter().Add(time.Second), auths, certs)
		if err != nil {
			t.Fatalf("the stored consensus does not verify with the stored certificates: %v", err)
		}
		v.validAfter, v.validUntil, v.relays = c.ValidAfter, c.ValidUntil, len(c.Relays)
	}
	v.mds = map[[32]byte]bool{}
	if dropped, err := db.ForEachMicrodesc(func(d [32]byte, _ []byte) error {
		v.mds[d] = true
		return nil
	}); err != nil {
		t.Fatalf("microdescriptors: %v", err)
	} else if dropped > 0 {
		t.Logf("%d damaged microdescriptors dropped", dropped)
	}
	return v
}

// copyDir copies the regular files and directories under src to a new
// directory and returns it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o700)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o600)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// waitNewerConsensus polls the first authority's DirPort until it serves a
// microdesc consensus valid after than va (the network voted again).
func waitNewerConsensus(t *testing.T, n *testnet.Network, va time.Time) {
	t.Helper()
	auth := n.Nodes()[0]
	url := fmt.Sprintf("http://127.0.0.1:%d/tor/status-vote/current/consensus-microdesc", auth.DirPort)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(3*n.Interval() + 30*time.Second) // a hang guard
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if u, err := netdoc.ParseConsensus(body); err == nil && u.ValidAfter().After(va) {
				return
			}
		}
		time.Sleep(time.Second) // polling, not an assertion
	}
	t.Fatalf("%s served no consensus newer than %v", auth.Nick, va)
}
