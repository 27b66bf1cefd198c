package bootstrap

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/internal/dirclient"
	"github.com/onionlite/onionlite/internal/netdoc"
	"github.com/onionlite/onionlite/internal/testnet"
)

// tamper replaces the body of the first n good answers of kind with
// mutate(body); it records the mutated bodies and the sources that
// "served" them.
type tamper struct {
	kind   docKind
	n      int
	mutate func(t *testing.T, body []byte) []byte

	mu      sync.Mutex
	served  [][]byte
	sources map[string]bool
}

func (tp *tamper) hook(t *testing.T) func(docKind, *source, *dirclient.Response, error) (*dirclient.Response, error) {
	return func(kind docKind, src *source, resp *dirclient.Response, err error) (*dirclient.Response, error) {
		if kind != tp.kind || err != nil || resp == nil || resp.Code != 200 {
			return resp, err
		}
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if len(tp.served) >= tp.n {
			return resp, err
		}
		body := tp.mutate(t, bytes.Clone(resp.Body))
		tp.served = append(tp.served, body)
		if tp.sources == nil {
			tp.sources = map[string]bool{}
		}
		tp.sources[src.name] = true
		out := *resp
		out.Body = body
		return &out, nil
	}
}

// replaceFirst replaces the first old in b, which must be there.
func replaceFirst(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(old))
	if i < 0 {
		t.Fatalf("%q not in the answer", old)
	}
	return append(append(b[:i:i], new...), b[i+len(old):]...)
}

// TestTamperedAnswers has directory answers changed on their way to the
// bootstrap, as a lying or broken cache would send them: consensuses cut
// short, changed by one byte of the signed part, stripped to one signature
// of three or signed under the wrong names; microdescriptor batches cut
// short or with a changed key; certificates with a changed byte. Each must
// be rejected (by the parser, the signatures or the digests), the
// documents taken from other sources, and nothing tampered may reach the
// view or the store.
func TestTamperedAnswers(t *testing.T) {
	t.Cleanup(testnet.CheckGoroutines(t)) // runs after the other cleanups
	r := newRig(t)
	onlyFirstSig := func(t *testing.T, b []byte) []byte {
		first := bytes.Index(b, []byte("\ndirectory-signature "))
		end := bytes.Index(b[first:], []byte("-----END SIGNATURE-----\n")) + len("-----END SIGNATURE-----\n")
		return b[:first+end]
	}
	cases := []struct {
		name   string
		tp     *tamper
		failed bool // every answer tampered: the bootstrap must fail
	}{
		{"consensus cut in half", &tamper{kind: kindConsensus, n: 1, mutate: func(t *testing.T, b []byte) []byte { return b[:len(b)/2] }}, false},
		{"consensus with one byte of a relay changed", &tamper{kind: kindConsensus, n: 2, mutate: func(t *testing.T, b []byte) []byte {
			return replaceFirst(t, b, "\nw Bandwidth=", "\nw Bandwidth=9")
		}}, false},
		{"consensus with one signature of three", &tamper{kind: kindConsensus, n: 1, mutate: onlyFirstSig}, false},
		{"consensus signed under the wrong names", &tamper{kind: kindConsensus, n: 1, mutate: func(t *testing.T, b []byte) []byte {
			// Each signature block takes the next block's identity: three
			// signatures, none under its signer's name.
			first := bytes.Index(b, []byte("\ndirectory-signature ")) + 1
			lines := bytes.SplitAfter(b[first:], []byte("\n"))
			var ids [][]byte
			var at []int
			for i, l := range lines {
				if bytes.HasPrefix(l, []byte("directory-signature ")) {
					f := bytes.Fields(l)
					ids = append(ids, bytes.Clone(f[len(f)-2]))
					at = append(at, i)
				}
			}
			for k, i := range at {
				lines[i] = bytes.Replace(lines[i], ids[k], ids[(k+1)%len(ids)], 1)
			}
			return append(b[:first:first], bytes.Join(lines, nil)...)
		}}, false},
		{"every consensus changed", &tamper{kind: kindConsensus, n: 1000, mutate: func(t *testing.T, b []byte) []byte {
			return replaceFirst(t, b, "\nw Bandwidth=", "\nw Bandwidth=9")
		}}, true},
		{"microdescriptors cut in half", &tamper{kind: kindMicrodescs, n: 1, mutate: func(t *testing.T, b []byte) []byte { return b[:len(b)/2] }}, false},
		{"microdescriptor with a changed key", &tamper{kind: kindMicrodescs, n: 2, mutate: func(t *testing.T, b []byte) []byte {
			i := bytes.Index(b, []byte("ntor-onion-key ")) + len("ntor-onion-key ")
			b[i] ^= 'A' ^ 'B'
			return b
		}}, false},
		{"certificate with a changed byte", &tamper{kind: kindCerts, n: 1, mutate: func(t *testing.T, b []byte) []byte {
			i := bytes.Index(b, []byte("-----END SIGNATURE-----")) - 10
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return b
		}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := dircache.NewMemStore()
			b, _ := r.boot(store, opts{})
			b.fetch.hook = tc.tp.hook(t)
			timeout := 2 * time.Minute
			if tc.failed {
				timeout = time.Minute
			}
			err := b.Bootstrap(ctxFor(t, timeout))
			tc.tp.mu.Lock()
			served := tc.tp.served
			tc.tp.mu.Unlock()
			if len(served) == 0 {
				t.Fatal("nothing was tampered with: the test proves nothing")
			}
			if tc.failed {
				if !errors.Is(err, ErrNoDirectory) || b.NetDir() != nil {
					t.Fatalf("every consensus tampered: err %v, view %v", err, b.NetDir())
				}
				if _, err := store.Consensus(flavor); !errors.Is(err, dircache.ErrNotFound) {
					t.Fatalf("a tampered consensus was stored: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("bootstrap with %d tampered answers: %v", len(served), err)
			}
			// Ready may come before a refused microdescriptor was
			// fetched again; the whole view follows.
			select {
			case <-b.Complete():
			case <-time.After(time.Minute):
				t.Fatal("the rest of the microdescriptors never came")
			}
			nd := b.NetDir()
			if nd.NumMicrodescs() != nd.Len() {
				t.Fatalf("%d of %d microdescriptors", nd.NumMicrodescs(), nd.Len())
			}
			// The stored consensus is none of the tampered ones, and it
			// verifies.
			sc, err := store.Consensus(flavor)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range served {
				if bytes.Equal(s, sc.Text) {
					t.Fatal("the tampered consensus was stored")
				}
			}
			u, err := netdoc.ParseConsensus(sc.Text)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Check(time.Now(), r.auths, b.certList()); err != nil {
				t.Fatalf("the stored consensus does not verify: %v", err)
			}
			// Every stored certificate verifies (a batch with one
			// tampered certificate still brings the good ones; the
			// missing one is asked for again).
			certs, _, err := store.Certs()
			if err != nil || len(certs) == 0 {
				t.Fatalf("%d stored certificates: %v", len(certs), err)
			}
			for _, c := range certs {
				us, err := netdoc.ParseAuthCerts(c.Text)
				if err != nil || len(us) != 1 {
					t.Fatalf("stored certificate: %v", err)
				}
				if _, err := us[0].Check(time.Now()); err != nil {
					t.Fatalf("a stored certificate does not verify: %v", err)
				}
			}
			if st := b.Stats(); st.RequestFailures == 0 && tc.tp.kind != kindCerts {
				t.Fatalf("no request counted as failed: %+v", st)
			}
			t.Logf("%d tampered answers from %v; stats %+v", len(served), tc.tp.sources, b.Stats())
		})
	}
}
