package dirclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/onionlite/onionlite/internal/realnet"
)

// serve answers one request on a pipe with the raw bytes resp, and returns
// the client end plus a channel carrying the request text.
func serve(t *testing.T, resp []byte) (net.Conn, <-chan string) {
	t.Helper()
	cli, srv := net.Pipe()
	reqc := make(chan string, 1)
	go func() {
		defer srv.Close()
		var req []byte
		buf := make([]byte, 1024)
		for !bytes.Contains(req, []byte("\r\n\r\n")) {
			n, err := srv.Read(buf)
			if err != nil {
				return
			}
			req = append(req, buf[:n]...)
		}
		reqc <- string(req)
		srv.Write(resp)
	}()
	t.Cleanup(func() { cli.Close() })
	return cli, reqc
}

func response(code string, enc string, body []byte) []byte {
	h := "HTTP/1.0 " + code + "\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\nContent-Type: text/plain\r\n"
	if enc != "" {
		h += "Content-Encoding: " + enc + "\r\n"
	}
	return append([]byte(h+"\r\n"), body...)
}

func compress(t *testing.T, enc string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case Zstd:
		w, _ = zstd.NewWriter(&out, zstd.WithWindowSize(4<<20))
	case Deflate:
		w = zlib.NewWriter(&out)
	case Gzip:
		w = gzip.NewWriter(&out)
	default:
		return b
	}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func TestEncodings(t *testing.T) {
	// Document-like text that compresses about as well as a consensus (a
	// too-regular one would trip the bomb check, as it should).
	var doc []byte
	h := sha256.Sum256(nil)
	for i := 0; i < 3000; i++ {
		h = sha256.Sum256(h[:])
		doc = fmt.Appendf(doc, "r relay%d %s 2038-01-01 00:00:00 127.0.0.1 5000 0\nm %x\n", i, base64.RawStdEncoding.EncodeToString(h[:20]), h[:8])
	}
	c := &Client{}
	for _, enc := range []string{Identity, Zstd, Deflate, Gzip} {
		for round := 0; round < 2; round++ { // second round reuses pooled decoders
			conn, reqc := serve(t, response("200 OK", enc, compress(t, enc, doc)))
			resp, err := c.Do(context.Background(), conn, &Request{Path: "/tor/status-vote/current/consensus-microdesc", SizeHint: len(doc)})
			if err != nil {
				t.Fatalf("%s: %v", enc, err)
			}
			if !bytes.Equal(resp.Body, doc) {
				t.Fatalf("%s: body differs (%d vs %d bytes)", enc, len(resp.Body), len(doc))
			}
			if resp.Encoding != enc {
				t.Fatalf("encoding %q, want %q", resp.Encoding, enc)
			}
			req := <-reqc
			if !strings.HasPrefix(req, "GET /tor/status-vote/current/consensus-microdesc HTTP/1.0\r\n") ||
				!strings.Contains(req, "\r\nAccept-Encoding: x-zstd, deflate, gzip\r\n") {
				t.Fatalf("request %q", req)
			}
			if resp.WireBytes <= int64(len(compress(t, enc, doc))) {
				t.Fatalf("%s: WireBytes %d does not include headers", enc, resp.WireBytes)
			}
		}
	}
}

// TestRealServedBodies decodes bodies exactly as real relays served them.
func TestRealServedBodies(t *testing.T) {
	cases := []struct{ file, enc, plain string }{
		{"2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-19-00-00.z", Deflate, "2021-08-29-consensus-diffs/consensus-microdesc-2021-08-29-19-00-00"},
		{"2021-08-29-consensus-diffs/diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00.gz", Gzip, "2021-08-29-consensus-diffs/diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00"},
	}
	c := &Client{}
	for _, tc := range cases {
		wire, err := os.ReadFile(realnet.Path(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(realnet.Path(t, tc.plain))
		if err != nil {
			t.Fatal(err)
		}
		conn, _ := serve(t, response("200 OK", tc.enc, wire))
		resp, err := c.Do(context.Background(), conn, &Request{Path: "/x"})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !bytes.Equal(resp.Body, want) {
			t.Fatalf("%s: decoded body differs from the stored document", tc.file)
		}
	}
}

func TestDiffAndConditionalHeaders(t *testing.T) {
	var from [32]byte
	for i := range from {
		from[i] = byte(i)
	}
	conn, reqc := serve(t, response("304 Not modified", "", nil))
	ims := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	resp, err := (&Client{}).Do(context.Background(), conn, &Request{Path: "/c", DiffFrom: &from, IfModifiedSince: ims})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != 304 || len(resp.Body) != 0 {
		t.Fatalf("got %d with %d bytes", resp.Code, len(resp.Body))
	}
	req := <-reqc
	if !strings.Contains(req, "\r\nX-Or-Diff-From-Consensus: 000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\r\n") {
		t.Fatalf("no diff header in %q", req)
	}
	if !strings.Contains(req, "\r\nIf-Modified-Since: Sun, 22 Nov 2026 10:00:00 GMT\r\n") {
		t.Fatalf("no If-Modified-Since in %q", req)
	}
}

func TestErrors(t *testing.T) {
	zeros := make([]byte, 4<<20)
	bomb := compress(t, Zstd, zeros)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, ratio ~1
	truncated := compress(t, Zstd, big)
	truncated = truncated[:len(truncated)/2]
	cases := []struct {
		name string
		resp []byte
		req  Request
		want error
		code int
	}{
		{"404", response("404 Not found", "", []byte("nope")), Request{Path: "/x"}, nil, 404},
		{"bomb", response("200 OK", Zstd, bomb), Request{Path: "/x", MaxBody: 64 << 20}, ErrBomb, 0},
		{"too large", response("200 OK", Identity, big), Request{Path: "/x", MaxBody: 1000}, ErrTooLarge, 0},
		{"garbage status", []byte("SSH-2.0-OpenSSH\r\n\r\n"), Request{Path: "/x"}, ErrMalformed, 0},
		{"header cut", []byte("HTTP/1.0 200 OK\r\nContent-Enc"), Request{Path: "/x"}, ErrMalformed, 0},
		{"bad header", []byte("HTTP/1.0 200 OK\r\nno colon here\r\n\r\n"), Request{Path: "/x"}, ErrMalformed, 0},
		{"unknown encoding", response("200 OK", "x-tor-lzma", []byte{0x5d, 0}), Request{Path: "/x"}, ErrEncoding, 0},
		{"chunked", []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), Request{Path: "/x"}, ErrMalformed, 0},
		{"empty", nil, Request{Path: "/x"}, ErrMalformed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := serve(t, tc.resp)
			_, err := (&Client{}).Do(context.Background(), conn, &tc.req)
			if tc.code != 0 {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tc.code {
					t.Fatalf("err = %v, want status %d", err, tc.code)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("truncated keeps prefix", func(t *testing.T) {
		conn, _ := serve(t, response("200 OK", Zstd, truncated))
		resp, err := (&Client{}).Do(context.Background(), conn, &Request{Path: "/x"})
		if err == nil {
			t.Fatal("truncated zstd body accepted")
		}
		if resp == nil || !bytes.HasPrefix(big, resp.Body) {
			t.Fatal("prefix of a truncated body not returned")
		}
	})
	t.Run("bad path", func(t *testing.T) {
		conn, _ := serve(t, nil)
		if _, err := (&Client{}).Do(context.Background(), conn, &Request{Path: "/x y\r\n"}); err == nil {
			t.Fatal("path with CRLF accepted")
		}
	})
}

func TestContextCancel(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	defer srv.Close()
	go io.Copy(io.Discard, srv) // reads the request, never answers
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := (&Client{}).Do(ctx, cli, &Request{Path: "/x"})
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func FuzzResponse(f *testing.F) {
	f.Add(response("200 OK", "", []byte("hello")))
	f.Add(response("304 Not modified", "", nil))
	f.Add(response("200 OK", Deflate, []byte{0x78, 0xda, 1, 2, 3}))
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Encoding: x-zstd\r\n\r\n\x28\xb5\x2f\xfd\x00\x60"))
	c := &Client{}
	f.Fuzz(func(t *testing.T, b []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard}
		resp, err := c.do(rw, &Request{Path: "/x", MaxBody: 1 << 20}, nil)
		if err == nil && (resp == nil || len(resp.Body) > 1<<20) {
			t.Fatal("success without a bounded response")
		}
	})
}
