package dircache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/consdiff"
	"github.com/onionlite/onionlite/internal/realnet"
)

// Both implementations must pass the same contract tests.
func TestMemStoreContract(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemStore() })
}

func TestDBContract(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		db, err := Open(t.TempDir(), Options{Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// synthMD returns a microdescriptor-shaped text of about size bytes.
func synthMD(tag string, size int) Microdesc {
	var b strings.Builder
	fmt.Fprintf(&b, "onion-key\nntor-onion-key %s\n", tag)
	for b.Len() < size {
		fmt.Fprintf(&b, "family $%040X\n", b.Len())
	}
	text := []byte(b.String())
	return Microdesc{Digest: sha256.Sum256(text), Text: text}
}

// synthConsensus returns a consensus-shaped document with a signature.
func synthConsensus(tag string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "network-status-version 3 microdesc\nvalid-after %s\n", tag)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "r relay%d AAAA 2038-01-01 00:00:00 10.0.%d.%d 9001 0\nm %043d\n", i, i/256%256, i%256, i)
	}
	b.WriteString("directory-footer\ndirectory-signature sha256 AA BB\n-----BEGIN SIGNATURE-----\nxyz\n-----END SIGNATURE-----\n")
	return []byte(b.String())
}

var t0 = time.Date(2026, 6, 27, 4, 0, 0, 0, time.UTC)

func meta(va time.Time) ConsensusMeta {
	return ConsensusMeta{ValidAfter: va, FreshUntil: va.Add(time.Hour), ValidUntil: va.Add(3 * time.Hour)}
}

func collect(t *testing.T, s Store) map[[32]byte]string {
	t.Helper()
	got := map[[32]byte]string{}
	var last []byte
	dropped, err := s.ForEachMicrodesc(func(d [32]byte, text []byte) error {
		if sha256.Sum256(text) != d {
			t.Errorf("ForEachMicrodesc returned %x with wrong text", d)
		}
		if last != nil && bytes.Compare(last, d[:]) >= 0 {
			t.Errorf("not in digest order")
		}
		last = bytes.Clone(d[:])
		got[d] = string(text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 0 {
		t.Errorf("dropped %d from an undamaged store", dropped)
	}
	return got
}

func testStore(t *testing.T, open func(t *testing.T) Store) {
	t.Run("consensus", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if _, err := s.Consensus("microdesc"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("empty store: %v", err)
		}
		for _, f := range []string{"", "Micro", "a/b", strings.Repeat("x", 33)} {
			if _, err := s.Consensus(f); !errors.Is(err, ErrInvalid) {
				t.Errorf("flavor %q: %v", f, err)
			}
		}
		if err := s.PutConsensus("microdesc", []byte("network-status-version 3\nno signature\n"), meta(t0)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unsigned document accepted: %v", err)
		}
		text := synthConsensus("one", 300<<10)
		if err := s.PutConsensus("microdesc", text, meta(t0)); err != nil {
			t.Fatal(err)
		}
		text[0] = 'X' // the store must have copied it
		c, err := s.Consensus("microdesc")
		if err != nil {
			t.Fatal(err)
		}
		text[0] = 'n'
		if !bytes.Equal(c.Text, text) || c.Flavor != "microdesc" {
			t.Fatal("text differs")
		}
		signed, full, _ := consdiff.Digests(text)
		if c.SignedDigest != signed || c.FullDigest != full {
			t.Error("digests differ")
		}
		if !c.ValidAfter.Equal(t0) || !c.FreshUntil.Equal(t0.Add(time.Hour)) || !c.ValidUntil.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("meta %+v", c.ConsensusMeta)
		}
		c.Text[0] = 'Y' // and returned a copy
		if c2, _ := s.Consensus("microdesc"); c2.Text[0] != 'n' {
			t.Error("returned text aliases the store")
		}
		// Replace; another flavor is independent.
		text2 := synthConsensus("two", 1000)
		if err := s.PutConsensus("microdesc", text2, ConsensusMeta{}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutConsensus("ns", text, meta(t0)); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Consensus("microdesc"); err != nil || !bytes.Equal(c.Text, text2) || !c.ValidAfter.IsZero() {
			t.Fatalf("replace: %v", err)
		}
		if c, err := s.Consensus("ns"); err != nil || !bytes.Equal(c.Text, text) {
			t.Fatalf("ns: %v", err)
		}
	})

	t.Run("diff-chain", func(t *testing.T) {
		// The stored text is exactly what a diff needs.
		s := open(t)
		defer s.Close()
		dir := "2021-08-29-consensus-diffs/"
		base, err := os.ReadFile(realnet.Path(t, dir+"consensus-microdesc-2021-08-29-17-00-00"))
		if err != nil {
			t.Fatal(err)
		}
		diff, err := os.ReadFile(realnet.Path(t, dir+"diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutConsensus("microdesc", base, meta(t0)); err != nil {
			t.Fatal(err)
		}
		c, err := s.Consensus("microdesc")
		if err != nil {
			t.Fatal(err)
		}
		from, to, err := consdiff.ParseHeader(diff)
		if err != nil || from != c.SignedDigest {
			t.Fatalf("stored signed digest %X does not match the diff's FROM %X (%v)", c.SignedDigest, from, err)
		}
		next, err := consdiff.Apply(c.Text, diff)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutConsensus("microdesc", next, meta(t0.Add(2*time.Hour))); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Consensus("microdesc"); err != nil || c.FullDigest != to {
			t.Fatalf("after diff: %v", err)
		}
	})

	t.Run("microdescs", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		var mds []Microdesc
		for i := range 300 {
			mds = append(mds, synthMD(fmt.Sprint(i), 200+i*37%5000))
		}
		mds = append(mds, synthMD("big", 100<<10))
		bad := slices.Clone(mds[:3])
		bad[2].Digest[0] ^= 1
		if err := s.PutMicrodescs(t0, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad digest accepted: %v", err)
		}
		if got := collect(t, s); len(got) != 0 {
			t.Fatalf("a rejected batch stored %d", len(got))
		}
		if err := s.PutMicrodescs(t0, []Microdesc{synthMD("huge", MaxMicrodescSize+1)}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("oversized: %v", err)
		}
		if err := s.PutMicrodescs(t0, mds[:200]); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMicrodescs(t0.Add(time.Hour), mds[150:]); err != nil {
			t.Fatal(err)
		}
		got := collect(t, s)
		if len(got) != len(mds) {
			t.Fatalf("%d stored, want %d", len(got), len(mds))
		}
		for _, md := range mds {
			if got[md.Digest] != string(md.Text) {
				t.Fatalf("%x differs", md.Digest)
			}
		}
		unknown := synthMD("unknown", 300).Digest
		want := [][32]byte{mds[5].Digest, unknown, mds[250].Digest}
		missing, err := s.MissingMicrodescs(want)
		if err != nil || len(missing) != 1 || missing[0] != unknown {
			t.Fatalf("missing = %x, %v", missing, err)
		}
		// Last-listed: [0,150) at t0; [150,301) at t0+1h. Mark [0,50) at
		// t0+2h, and try to move [150,160) back to t0.
		var first50 [][32]byte
		for _, md := range mds[:50] {
			first50 = append(first50, md.Digest)
		}
		if err := s.MarkListed(t0.Add(2*time.Hour), append(first50, unknown)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMicrodescs(t0, mds[150:160]); err != nil {
			t.Fatal(err)
		}
		var back [][32]byte
		for _, md := range mds[160:170] {
			back = append(back, md.Digest)
		}
		if err := s.MarkListed(t0, back); err != nil {
			t.Fatal(err)
		}
		if m, _ := s.MissingMicrodescs([][32]byte{unknown}); len(m) != 1 {
			t.Fatal("MarkListed stored an unknown digest")
		}
		// Prune everything last listed before t0+1h, except [100,110).
		keep := map[[32]byte]bool{}
		for _, md := range mds[100:110] {
			keep[md.Digest] = true
		}
		n, err := s.PruneMicrodescs(func(d [32]byte) bool { return keep[d] }, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 90 { // [50,150) minus the 10 kept
			t.Fatalf("pruned %d, want 90", n)
		}
		got = collect(t, s)
		for i, md := range mds {
			_, ok := got[md.Digest]
			if want := i < 50 || i >= 100 && i < 110 || i >= 150; ok != want {
				t.Fatalf("md %d present %v after prune", i, ok)
			}
		}
		// Zero cutoff: drop all not kept.
		if n, err := s.PruneMicrodescs(func(d [32]byte) bool { return keep[d] }, time.Time{}); err != nil || n != len(got)-10 {
			t.Fatalf("prune all: %d %v", n, err)
		}
		if got := collect(t, s); len(got) != 10 {
			t.Fatalf("%d left", len(got))
		}
		if n, err := s.PruneMicrodescs(nil, time.Time{}); err != nil || n != 10 {
			t.Fatalf("prune nil keep: %d %v", n, err)
		}
		// An error from fn stops the walk.
		if err := s.PutMicrodescs(t0, mds[:5]); err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop")
		calls := 0
		if _, err := s.ForEachMicrodesc(func([32]byte, []byte) error { calls++; return stop }); err != stop || calls != 1 {
			t.Fatalf("walk: %v after %d calls", err, calls)
		}
	})

	t.Run("many", func(t *testing.T) {
		// Enough digests for the DB to walk the keys instead of Get.
		s := open(t)
		defer s.Close()
		var mds []Microdesc
		var want, unknown [][32]byte
		for i := range 700 {
			md := synthMD(fmt.Sprint("many", i), 300)
			if i%7 == 3 {
				unknown = append(unknown, md.Digest)
			} else {
				mds = append(mds, md)
			}
			want = append(want, md.Digest)
		}
		want = append(want, want[11], want[3]) // duplicates: one stored, one unknown
		unknown = append(unknown, want[3])
		if err := s.PutMicrodescs(t0, mds); err != nil {
			t.Fatal(err)
		}
		missing, err := s.MissingMicrodescs(want)
		if err != nil || !slices.Equal(missing, unknown) {
			t.Fatalf("missing %d (want %d), %v", len(missing), len(unknown), err)
		}
		// Mark the first half later; prune at t0+1h keeps exactly them.
		if err := s.MarkListed(t0.Add(2*time.Hour), want[:350]); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkListed(t0.Add(time.Hour), want[:350]); err != nil { // never moves back
			t.Fatal(err)
		}
		n, err := s.PruneMicrodescs(nil, t0.Add(90*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		kept := 0
		for i := range 350 {
			if i%7 != 3 {
				kept++
			}
		}
		if got := collect(t, s); len(got) != kept || n != len(mds)-kept {
			t.Fatalf("%d kept (want %d), %d pruned", len(got), kept, n)
		}
	})

	t.Run("certs", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if certs, dropped, err := s.Certs(); err != nil || len(certs) != 0 || dropped != 0 {
			t.Fatal(certs, dropped, err)
		}
		c1 := Cert{Identity: [20]byte{2}, SigningKey: [20]byte{1}, Text: []byte("cert one\n")}
		c2 := Cert{Identity: [20]byte{1}, SigningKey: [20]byte{9}, Text: []byte("cert two\n")}
		c3 := Cert{Identity: [20]byte{2}, SigningKey: [20]byte{1}, Text: []byte("cert one, replaced\n")}
		for _, c := range []Cert{c1, c2, c3} {
			if err := s.PutCert(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutCert(Cert{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("empty cert: %v", err)
		}
		certs, _, err := s.Certs()
		if err != nil || len(certs) != 2 || !bytes.Equal(certs[0].Text, c2.Text) || !bytes.Equal(certs[1].Text, c3.Text) || certs[1].SigningKey != c3.SigningKey {
			t.Fatalf("certs %+v %v", certs, err)
		}
		if err := s.DeleteCert(c2.Identity, c2.SigningKey); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCert(c2.Identity, c2.SigningKey); err != nil {
			t.Fatal(err)
		}
		if certs, _, _ := s.Certs(); len(certs) != 1 {
			t.Fatalf("%d after delete", len(certs))
		}
	})

	t.Run("state", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		if _, err := s.GetState("guards"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		val := []byte("sampled=...")
		if err := s.PutState("guards", val); err != nil {
			t.Fatal(err)
		}
		val[0] = 'X'
		if v, err := s.GetState("guards"); err != nil || string(v) != "sampled=..." {
			t.Fatalf("%q %v", v, err)
		}
		if err := s.PutState("empty", nil); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetState("empty"); err != nil || v == nil || len(v) != 0 {
			t.Fatalf("empty: %q %v", v, err)
		}
		big := bytes.Repeat([]byte("g"), 700<<10) // past badger's value threshold
		if err := s.PutState("big", big); err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetState("big"); err != nil || !bytes.Equal(v, big) {
			t.Fatalf("big: %v", err)
		}
		if err := s.PutState("too-big", make([]byte, MaxStateValue+1)); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
		if err := s.PutState("", val); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
		if err := s.DeleteState("guards"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteState("guards"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetState("guards"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	})

	t.Run("close", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.GetState("x"); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		if err := s.PutMicrodescs(t0, []Microdesc{synthMD("a", 10)}); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		if _, err := s.Consensus("microdesc"); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		if _, _, err := s.Certs(); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	})
}
