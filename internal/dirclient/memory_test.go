package dirclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/onionlite/onionlite/internal/realnet"
	"github.com/onionlite/onionlite/memquota"
)

// accountConn is a conn with a memory account, as a *stream.Stream has.
type accountConn struct {
	net.Conn
	acct *memquota.Account
}

func (c accountConn) MemoryAccount() *memquota.Account { return c.acct }

// testDoc is n bytes of document-like text that compresses about as well
// as a consensus.
func testDoc(n int) []byte {
	b := make([]byte, 0, n+100)
	h := sha256.Sum256(nil)
	for i := 0; len(b) < n; i++ {
		h = sha256.Sum256(h[:])
		b = fmt.Appendf(b, "r relay%d %s 2038-01-01 00:00:00 127.0.0.1 5000 0\nm %x\n", i, base64.RawStdEncoding.EncodeToString(h[:20]), h[:8])
	}
	return b[:n]
}

// TestMemoryCharged: a download's buffers (header reader, decoder window,
// what the source sent) are charged under the stream's account while Do
// runs, a decoded body is not, and nothing stays charged afterwards.
func TestMemoryCharged(t *testing.T) {
	doc := testDoc(600 << 10)
	c := &Client{}
	for _, enc := range []string{Identity, Deflate, Gzip, Zstd} {
		trk, err := memquota.New(memquota.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stream, _ := trk.NewAccount("stream")
		wire := compress(t, enc, doc)
		conn, _ := serve(t, response("200 OK", enc, wire))
		resp, err := c.Do(context.Background(), accountConn{conn, stream}, &Request{Path: "/x"})
		if err != nil || !bytes.Equal(resp.Body, doc) {
			t.Fatalf("%s: %v", enc, err)
		}
		st := trk.Stats()
		// Identity: the peak is at least the final body buffer and the
		// header reader; buffers grow by doubling, the old and the new
		// one charged at once. Deflate and gzip: the header reader and
		// the decoder's window (the body is read through them). zstd: the
		// whole compressed body (grown by doubling) and the decoder's
		// state. A decoded body is never charged.
		low := int64(cap(resp.Body)) + headerBuf
		high := int64(cap(resp.Body))*3/2 + headerBuf
		switch enc {
		case Deflate, Gzip:
			low, high = headerBuf+decoderCost(enc), headerBuf+decoderCost(enc)+readChunk
		case Zstd:
			low = headerBuf + zstdState + int64(len(wire))
			high = headerBuf + zstdState + 3*int64(len(wire)) + readChunk
		}
		if st.Peak < low || st.Peak > high {
			t.Errorf("%s: peak charge %d, want %d..%d (body %d, cap %d, wire %d)", enc, st.Peak, low, high, len(resp.Body), cap(resp.Body), len(wire))
		}
		if st.Used != 0 || st.Accounts != 1 {
			t.Errorf("%s: after Do: %+v, want nothing charged and only the stream's account", enc, st)
		}
		trk.Close()
	}
}

// TestZstdOutputFits: whatever the first guess at the output size (none,
// exact, short), the body decodes whole, and a body of exactly MaxBody
// bytes is accepted while one byte more is not.
func TestZstdOutputFits(t *testing.T) {
	doc := testDoc(300 << 10)
	wire := compress(t, Zstd, doc)
	for _, tc := range []struct {
		name    string
		hint    int
		maxBody int64
		want    error
	}{
		{"no hint", 0, 0, nil}, {"exact hint", len(doc), 0, nil}, {"short hint", 1000, 0, nil},
		{"exactly MaxBody", 0, int64(len(doc)), nil}, {"one byte over", len(doc), int64(len(doc)) - 1, ErrTooLarge},
	} {
		conn, _ := serve(t, response("200 OK", Zstd, wire))
		resp, err := (&Client{}).Do(context.Background(), conn, &Request{Path: "/x", SizeHint: tc.hint, MaxBody: tc.maxBody})
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil || !bytes.Equal(resp.Body, doc) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestMemoryRequestAccount: Request.Account wins over the conn's.
func TestMemoryRequestAccount(t *testing.T) {
	trk, _ := memquota.New(memquota.Config{})
	defer trk.Close()
	a, _ := trk.NewAccount("request")
	var seen []string
	// The tree is only visible while Do runs: watch it from the server.
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		buf := make([]byte, 1024)
		srv.Read(buf)
		for trk.Used() == 0 {
			runtime.Gosched()
		}
		for _, ai := range trk.Accounts() {
			seen = append(seen, ai.Name)
		}
		srv.Write(response("200 OK", "", []byte("hi")))
	}()
	resp, err := (&Client{}).Do(context.Background(), cli, &Request{Path: "/x", Account: a})
	if err != nil || string(resp.Body) != "hi" {
		t.Fatal(resp, err)
	}
	if len(seen) != 2 || seen[0] != "request" || seen[1] != "dir body" {
		t.Fatalf("accounts during the download: %q", seen)
	}
}

// TestMemoryReclaimed: a download whose account is reclaimed stops, with
// an error matching memquota.ErrReclaimed, even while blocked reading.
func TestMemoryReclaimed(t *testing.T) {
	trk, err := memquota.New(memquota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer trk.Close()
	stream, _ := trk.NewAccount("stream")
	cli, srv := net.Pipe()
	defer cli.Close()
	stalled := make(chan struct{})
	go func() {
		defer srv.Close()
		buf := make([]byte, 1024)
		srv.Read(buf)
		// Half a body, then nothing: the client waits in Read.
		srv.Write(append(response("200 OK", "", nil), testDoc(100<<10)...))
		close(stalled)
		srv.Read(buf) // until the client's end goes
	}()
	errc := make(chan error, 1)
	go func() {
		_, err := (&Client{}).Do(context.Background(), accountConn{cli, stream}, &Request{Path: "/x"})
		errc <- err
	}()
	<-stalled
	for trk.Used() < 100<<10 {
		runtime.Gosched()
	}
	if err := trk.ReclaimTo(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	var re *memquota.ReclaimedError
	if !errors.As(err, &re) || re.Account != "dir body" {
		t.Fatalf("Do: %v, want the reclaim of the dir body", err)
	}
	if stream.Err() != nil {
		t.Fatalf("the stream's account collapsed too: %v", stream.Err())
	}
	if st := trk.Stats(); st.Used != 0 || st.Accounts != 1 {
		t.Fatalf("quota: %+v", st)
	}
}

// TestFullScaleDocumentUnderPhoneQuota: the real 9,609-relay consensus
// (3.4 MB) downloads whole under the queue quota of the phones' 16 MiB
// budget (2 MiB), in every encoding but identity, whose body is what the
// source sent and is charged: it is reclaimed. Charging decoded bodies
// made every full-scale bootstrap on a phone fail.
func TestFullScaleDocumentUnderPhoneQuota(t *testing.T) {
	doc, err := os.ReadFile(realnet.Path(t, "2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00"))
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{Deflate, Gzip, Zstd, Identity} {
		trk, err := memquota.New(memquota.Config{Limit: 2 << 20, HardLimit: 2<<20 + 256<<10})
		if err != nil {
			t.Fatal(err)
		}
		stream, _ := trk.NewAccount("stream")
		conn, _ := serve(t, response("200 OK", enc, compress(t, enc, doc)))
		resp, err := (&Client{}).Do(context.Background(), accountConn{conn, stream}, &Request{Path: "/x", MaxBody: 16 << 20})
		switch {
		case enc == Identity:
			if !errors.Is(err, memquota.ErrReclaimed) {
				t.Errorf("identity: %v, want the download reclaimed", err)
			}
		case err != nil || !bytes.Equal(resp.Body, doc):
			t.Errorf("%s: %v", enc, err)
		}
		trk.Close()
	}
}
