package dirclient

import (
	"bytes"
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/onionlite/onionlite/internal/realnet"
)

// bytesConn is a net.Conn that reads a fixed answer and swallows writes.
type bytesConn struct {
	r *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *bytesConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

var fuzzEncodings = []string{Identity, Deflate, Gzip, Zstd, LZMA, "br"}

// FuzzDecompress feeds bodies in every content encoding, as a relay would
// send them, through Do with a size cap. Whatever the bytes: no panic, a
// success never returns more than the cap, and a compressed body that
// decodes to 64 KiB or more never expands more than the bomb ratio over
// the bytes that arrived. Seeds: real served bodies (a zlib consensus, a
// gzip diff), our encoders over real documents, and compression bombs.
func FuzzDecompress(f *testing.F) {
	add := func(enc string, body []byte, max uint32) {
		for i, e := range fuzzEncodings {
			if e == enc {
				f.Add(uint8(i), body, max)
			}
		}
	}
	tf := &testing.T{}
	if dir, err := realnet.Dir(); err == nil {
		read := func(rel string, n int) []byte {
			b, _ := os.ReadFile(dir + "/" + rel)
			return b[:min(n, len(b))]
		}
		const cut = 2 << 10 // short prefixes keep the fuzzer (and its minimizer) fast; a cut stream is a good case too
		add(Deflate, read("2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-19-00-00.z", cut), 16<<20)
		add(Gzip, read("2021-08-29-consensus-diffs/diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00.gz", cut), 16<<20)
		doc := read("2026-06-27-latest-consensus/consensus-microdesc-2026-06-27-04-00-00", 8<<10)
		for _, enc := range []string{Zstd, Deflate, Gzip} {
			add(enc, compress(tf, enc, doc), 1<<20)
		}
		add(Identity, doc[:4096], 4096)
	}
	zeros := make([]byte, 256<<10) // past bombCheckAfter, so the ratio check runs
	for _, enc := range []string{Zstd, Deflate, Gzip} {
		add(enc, compress(tf, enc, zeros), 64<<20) // bombs
		add(enc, compress(tf, enc, []byte("onion-key\n")), 100)
	}
	add(Identity, []byte("network-status-version 3 microdesc\n"), 10)
	f.Fuzz(func(t *testing.T, encIdx uint8, body []byte, max uint32) {
		enc := fuzzEncodings[int(encIdx)%len(fuzzEncodings)]
		limit := int64(max%(32<<20)) + 1
		wire := response("200 OK", enc, body)
		resp, err := (&Client{}).Do(context.Background(), &bytesConn{bytes.NewReader(wire)}, &Request{Path: "/tor/x", MaxBody: limit})
		if err != nil {
			return
		}
		if resp == nil {
			t.Fatal("no response and no error")
		}
		if int64(len(resp.Body)) > limit {
			t.Fatalf("%s: %d bytes returned over a cap of %d", enc, len(resp.Body), limit)
		}
		if enc != Identity && len(resp.Body) >= bombCheckAfter && len(resp.Body) > bombRatio*len(body) {
			t.Fatalf("%s: %d bytes from %d compressed: past the bomb ratio", enc, len(resp.Body), len(body))
		}
		if enc == Identity && !bytes.Equal(resp.Body, body) {
			t.Fatal("identity body changed")
		}
	})
}

// TestZstdCorruptFrameEnds: a corrupt zstd frame made DecodeAll return no
// slice, and the retry loop doubled its capacity of zero forever (found by
// FuzzDecompress: one CPU spun and the download never ended). It must end
// with an error.
func TestZstdCorruptFrameEnds(t *testing.T) {
	body := []byte("(\xb5/\xfd\x01\x00Q\x00\x00onion-key\n\x036{\xa3")
	done := make(chan error, 1)
	go func() {
		_, err := (&Client{}).Do(context.Background(), &bytesConn{bytes.NewReader(response("200 OK", Zstd, body))}, &Request{Path: "/x", MaxBody: 100})
		done <- err
	}()
	if err := <-done; err == nil {
		t.Fatal("a corrupt zstd frame decoded")
	}
}
