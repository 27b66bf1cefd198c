package dirclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"

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
// body) are charged under the stream's account while Do runs, and nothing
// stays charged afterwards.
func TestMemoryCharged(t *testing.T) {
	doc := testDoc(600 << 10)
	c := &Client{}
	for _, tc := range []struct {
		enc    string
		window int64 // the decoder's share of the charge
	}{
		{Identity, 0}, {Deflate, flateWindow}, {Zstd, 4<<20 + zstdState},
	} {
		trk, err := memquota.New(memquota.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stream, _ := trk.NewAccount("stream")
		conn, _ := serve(t, response("200 OK", tc.enc, compress(t, tc.enc, doc)))
		resp, err := c.Do(context.Background(), accountConn{conn, stream}, &Request{Path: "/x"})
		if err != nil || !bytes.Equal(resp.Body, doc) {
			t.Fatalf("%s: %v", tc.enc, err)
		}
		st := trk.Stats()
		// Peak is at least the final body buffer, the header reader and
		// the decoder; the body grows by doubling, so at most the old and
		// the new buffer are charged at once.
		low := int64(cap(resp.Body)) + headerBuf + tc.window
		high := int64(cap(resp.Body))*3/2 + headerBuf + tc.window
		if st.Peak < low || st.Peak > high {
			t.Errorf("%s: peak charge %d, want %d..%d (body %d, cap %d)", tc.enc, st.Peak, low, high, len(resp.Body), cap(resp.Body))
		}
		if st.Used != 0 || st.Accounts != 1 {
			t.Errorf("%s: after Do: %+v, want nothing charged and only the stream's account", tc.enc, st)
		}
		trk.Close()
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
