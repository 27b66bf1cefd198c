package testnet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The served bodies are deterministic: hello.txt is fixed text, and each
// .bin file is the stream SHA-256(bodySeed || name || counter) for
// counter = 0, 1, 2, ... (8 bytes big-endian), truncated to its size.
const (
	bodySeed  = "onionlite testnet body v1\x00"
	helloText = "Hello from the onionlite test network.\n"
)

var bodySizes = []struct {
	name string
	size int64
}{
	{"hello.txt", int64(len(helloText))},
	{"64KiB.bin", 64 << 10},
	{"1MiB.bin", 1 << 20},
	{"10MiB.bin", 10 << 20},
}

var (
	bodiesOnce sync.Once
	bodiesList []Body
)

// Bodies returns the files every HTTP target serves, with their sizes and
// SHA-256 (computed once per process).
func bodies() []Body {
	bodiesOnce.Do(func() {
		for _, bs := range bodySizes {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(&bodyContent{name: bs.name, size: bs.size}, 0, bs.size)); err != nil {
				panic("BUG: generating body: " + err.Error())
			}
			bodiesList = append(bodiesList, Body{Name: bs.name, Size: bs.size, SHA256: hex.EncodeToString(h.Sum(nil))})
		}
	})
	return append([]Body(nil), bodiesList...)
}

// bodyContent generates a body on demand; it implements io.ReaderAt.
type bodyContent struct {
	name string
	size int64
}

func (b *bodyContent) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if int64(len(p)) > b.size-off {
		p = p[:b.size-off]
	}
	if b.name == "hello.txt" {
		n := copy(p, helloText[off:])
		if off+int64(n) == b.size {
			return n, io.EOF
		}
		return n, nil
	}
	var in [len(bodySeed) + 32 + 8]byte
	prefix := append(append(in[:0], bodySeed...), b.name...)
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		ctr := uint64(pos / sha256.Size)
		block := sha256.Sum256(binary.BigEndian.AppendUint64(prefix, ctr))
		n += copy(p[n:], block[pos%sha256.Size:])
	}
	if off+int64(n) == b.size {
		return n, io.EOF
	}
	return n, nil
}

func bodySize(name string) (int64, bool) {
	for _, bs := range bodySizes {
		if bs.name == name {
			return bs.size, true
		}
	}
	return 0, false
}

// targetHandler serves the bodies at "/NAME" (GET and HEAD, with ranges).
func targetHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, b := range bodies() {
				fmt.Fprintf(w, "%s %d %s\n", b.Name, b.Size, b.SHA256)
			}
			return
		}
		size, ok := bodySize(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		ct := "application/octet-stream"
		if strings.HasSuffix(name, ".txt") {
			ct = "text/plain; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		http.ServeContent(w, r, name, time.Time{}, io.NewSectionReader(&bodyContent{name: name, size: size}, 0, size))
	})
}

// httpTarget is the in-process HTTP server.
type httpTarget struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startHTTPTarget() (*httpTarget, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &httpTarget{
		srv:  &http.Server{Handler: targetHandler(), ReadHeaderTimeout: 30 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(t.done)
		t.srv.Serve(ln)
	}()
	return t, nil
}

func (t *httpTarget) addr() string { return t.ln.Addr().String() }

func (t *httpTarget) close() {
	t.srv.Close()
	<-t.done
}

// httpAddrFile is where a detached HTTP target writes its address.
const httpAddrFile = "http_target"

// ServeHTTPTarget serves the HTTP target on a free 127.0.0.1 port until
// ctx is done, after writing "127.0.0.1:PORT" to DIR/http_target. It is
// the body of "onionlite testnet serve-http", which a detached network
// (Config.HTTPCommand) starts.
func ServeHTTPTarget(ctx context.Context, dir string) error {
	t, err := startHTTPTarget()
	if err != nil {
		return err
	}
	defer t.close()
	if err := writeFileAtomic(filepath.Join(dir, httpAddrFile), []byte(t.addr()+"\n")); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case <-t.done:
		return errors.New("testnet: HTTP target stopped")
	}
}

// writeFileAtomic writes b to a temporary file beside p and renames it.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
