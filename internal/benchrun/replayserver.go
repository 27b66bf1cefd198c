package benchrun

import (
	"bytes"
	"compress/zlib"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// replayServer serves the replayed documents over plain HTTP, as the
// authorities' DirPorts would, to the C tor relay that fills its cache
// from them. It answers only what a directory cache asks for:
//
//	/tor/status-vote/current/consensus-microdesc[/<fp>+<fp>...][.z]
//	/tor/micro/d/<d1>-<d2>-...[.z]
//	/tor/keys/all, /tor/keys/fp/<id>+..., /tor/keys/fp-sk/<id>-<sk>+...,
//	/tor/keys/sk/<sk>+...                                      [.z]
//
// and 404 to everything else. A consensus request naming the current
// consensus (X-Or-Diff-From-Consensus, or If-Modified-Since at or after
// its valid-after) gets 304. Bodies are deflated when the client accepts
// deflate (a ".z" suffix adds it, as in tor). No Date header is sent: the
// relay runs on a shifted clock and would warn about the skew.
type replayServer struct {
	d          *replayData
	validAfter time.Time

	mu        sync.Mutex
	listeners []net.Listener
	srv       *http.Server
	wg        sync.WaitGroup

	requests, bodyBytes atomic.Int64
}

func newReplayServer(d *replayData) (*replayServer, error) {
	va, _, _, ok := consensusTimes(d.Consensus)
	if !ok {
		return nil, errNoTimes
	}
	s := &replayServer{d: d, validAfter: va}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	return s, nil
}

// listen serves on addr (host:port on loopback).
func (s *replayServer) listen(addr string) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}()
	return nil
}

func (s *replayServer) close() {
	s.srv.Close()
	s.wg.Wait()
}

func (s *replayServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Date"] = nil
	s.requests.Add(1)
	path := r.URL.Path
	deflate := strings.HasSuffix(path, ".z")
	path = strings.TrimSuffix(path, ".z")
	for _, enc := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if strings.TrimSpace(enc) == "deflate" {
			deflate = true
		}
	}
	body, status := s.lookup(r, path)
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	if deflate {
		var b bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
		zw.Write(body)
		zw.Close()
		body = b.Bytes()
		w.Header().Set("Content-Encoding", "deflate")
	} else {
		w.Header().Set("Content-Encoding", "identity")
	}
	w.Header().Set("Content-Type", "text/plain")
	s.bodyBytes.Add(int64(len(body)))
	w.Write(body)
}

func (s *replayServer) lookup(r *http.Request, path string) ([]byte, int) {
	switch {
	case path == "/tor/status-vote/current/consensus-microdesc" || strings.HasPrefix(path, "/tor/status-vote/current/consensus-microdesc/"):
		if strings.EqualFold(r.Header.Get("X-Or-Diff-From-Consensus"), s.d.SignedSHA) {
			return nil, http.StatusNotModified
		}
		if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !ims.Before(s.validAfter) {
			return nil, http.StatusNotModified
		}
		return s.d.Consensus, http.StatusOK
	case strings.HasPrefix(path, "/tor/micro/d/"):
		var out []byte
		for _, dg := range strings.Split(strings.TrimPrefix(path, "/tor/micro/d/"), "-") {
			out = append(out, s.d.MDs[dg]...)
		}
		if len(out) == 0 {
			return nil, http.StatusNotFound
		}
		return out, http.StatusOK
	case path == "/tor/keys/all":
		var out []byte
		for _, c := range s.d.Certs {
			out = append(out, c.Text...)
		}
		return out, http.StatusOK
	case strings.HasPrefix(path, "/tor/keys/fp/"), strings.HasPrefix(path, "/tor/keys/fp-sk/"), strings.HasPrefix(path, "/tor/keys/sk/"):
		var out []byte
		for _, c := range s.d.Certs {
			if certWanted(path, c) {
				out = append(out, c.Text...)
			}
		}
		if len(out) == 0 {
			return nil, http.StatusNotFound
		}
		return out, http.StatusOK
	}
	return nil, http.StatusNotFound
}

// certWanted reports whether a /tor/keys/fp|fp-sk|sk/ request names c.
func certWanted(path string, c replayCert) bool {
	kind, list, _ := strings.Cut(strings.TrimPrefix(path, "/tor/keys/"), "/")
	for _, k := range strings.Split(list, "+") {
		k = strings.ToUpper(k)
		switch kind {
		case "fp":
			if k == c.Identity {
				return true
			}
		case "sk":
			if k == c.Signing {
				return true
			}
		case "fp-sk":
			if k == c.Identity+"-"+c.Signing {
				return true
			}
		}
	}
	return false
}
