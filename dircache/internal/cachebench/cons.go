package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"

	"github.com/onionlite/onionlite/dircache"
	"github.com/onionlite/onionlite/dircache/internal/tuning"
	"github.com/onionlite/onionlite/internal/consdiff"
)

// Consensus storage strategies: where the hourly 3.4 MB document lives.
var strategies = []struct{ name, note string }{
	{"file-zstd", "zstd file (1 MiB window, reused encoder/decoder), temp+fsync+rename, SHA3 checked on load"},
	{"file-raw", "plain text file, temp+fsync+rename, SHA3 checked on load"},
	{"dircache", "dircache.Open + PutConsensus/Consensus (file-zstd plus opening badger)"},
	{"badger-raw", "one badger value (value log 16 MiB so that it fits)"},
	{"badger-zstd", "one zstd-compressed badger value (value log 16 MiB)"},
}

const hourlyPuts = 24

func consensusTable(realDir string, runs int) {
	fmt.Printf("| strategy | put ms (mean of %d) | write peak RSS | disk after %d puts real / apparent | load ms | load peak RSS |\n", hourlyPuts, hourlyPuts)
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, s := range strategies {
		d, err := os.MkdirTemp("", "cachebench-cons-")
		if err != nil {
			fatal(err)
		}
		w := spawn("cons-"+s.name+":write", variant{}, d, realDir, 1)
		real, app := diskUse(d)
		l := spawn("cons-"+s.name+":load", variant{}, d, realDir, runs)
		os.RemoveAll(d)
		if w.Err != "" || l.Err != "" {
			fmt.Printf("| %s | error: %s %s |\n", s.name, w.Err, l.Err)
			continue
		}
		fmt.Printf("| %s | %.1f | %s | %s / %s | %.1f | %s |\n", s.name, w.Millis/hourlyPuts, mb(w.HWM), mb(real), mb(app), l.Millis, mb(l.HWM))
	}
	fmt.Println()
	for _, s := range strategies {
		fmt.Printf("- %s: %s\n", s.name, s.note)
	}
}

type quiet struct{}

func (quiet) Errorf(string, ...any)   {}
func (quiet) Warningf(string, ...any) {}
func (quiet) Infof(string, ...any)    {}
func (quiet) Debugf(string, ...any)   {}

// consStore is one strategy.
type consStore interface {
	put(text []byte) error
	load() ([]byte, error)
	close() error
}

func openStrategy(name, dir string) (consStore, error) {
	switch name {
	case "file-zstd":
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		return rawFile{path: filepath.Join(dir, "consensus"), enc: enc, dec: dec}, nil
	case "dircache":
		db, err := dircache.Open(dir, dircache.Options{})
		if err != nil {
			return nil, err
		}
		return dcStore{db}, nil
	case "file-raw":
		return rawFile{path: filepath.Join(dir, "consensus")}, nil
	case "badger-raw", "badger-zstd":
		o := tuning.Options(dir, quiet{}, false).WithValueLogFileSize(16 << 20)
		db, err := badger.Open(o)
		if err != nil {
			return nil, err
		}
		bs := &badgerStore{db: db}
		if name == "badger-zstd" {
			bs.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
			bs.dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		}
		return bs, nil
	}
	return nil, fmt.Errorf("unknown strategy %q", name)
}

type dcStore struct{ db *dircache.DB }

func (s dcStore) put(text []byte) error {
	return s.db.PutConsensus("microdesc", text, dircache.ConsensusMeta{})
}

func (s dcStore) load() ([]byte, error) {
	c, err := s.db.Consensus("microdesc")
	if err != nil {
		return nil, err
	}
	return c.Text, nil
}

func (s dcStore) close() error { return s.db.Close() }

type rawFile struct {
	path string
	enc  *zstd.Encoder // nil: stored raw
	dec  *zstd.Decoder
}

func (f rawFile) put(text []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), "tmp-*")
	if err != nil {
		return err
	}
	v := append(text[:len(text):len(text)], consdiffDigest(text)...)
	if f.enc != nil {
		v = f.enc.EncodeAll(v, nil)
	}
	if _, err := tmp.Write(v); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	tmp.Close()
	return os.Rename(tmp.Name(), f.path)
}

func (f rawFile) load() ([]byte, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	if f.dec != nil {
		if b, err = f.dec.DecodeAll(b, nil); err != nil {
			return nil, err
		}
	}
	return checkDigest(b)
}

func (rawFile) close() error { return nil }

// consdiffDigest and checkDigest give the raw strategies the same SHA3
// check that dircache does.
func consdiffDigest(text []byte) []byte {
	d := consdiff.FullDigest(text)
	return d[:]
}

func checkDigest(b []byte) ([]byte, error) {
	if len(b) < 32 {
		return nil, errors.New("short")
	}
	text := b[:len(b)-32]
	if d := consdiff.FullDigest(text); string(d[:]) != string(b[len(b)-32:]) {
		return nil, errors.New("digest mismatch")
	}
	return text, nil
}

type badgerStore struct {
	db  *badger.DB
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var consKey = []byte("consensus-microdesc")

func (s *badgerStore) put(text []byte) error {
	v := append(text[:len(text):len(text)], consdiffDigest(text)...)
	if s.enc != nil {
		v = s.enc.EncodeAll(v, nil)
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(consKey, v) })
}

func (s *badgerStore) load() ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(consKey)
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.dec != nil {
		if v, err = s.dec.DecodeAll(v, nil); err != nil {
			return nil, err
		}
	}
	return checkDigest(v)
}

func (s *badgerStore) close() error { return s.db.Close() }

// consChild runs "<strategy>:write" (hourlyPuts versions of the 2026
// consensus) or "<strategy>:load" (best of runs: open, load, verify,
// close).
func consChild(spec, dir, realDir string, runs int) result {
	name, phase, _ := strings.Cut(spec, ":")
	text, err := os.ReadFile(filepath.Join(realDir, "2026-06-27-latest-consensus", "consensus-microdesc-2026-06-27-04-00-00"))
	if err != nil {
		return result{Err: err.Error()}
	}
	var r result
	switch phase {
	case "write":
		s, err := openStrategy(name, dir)
		if err != nil {
			return result{Err: err.Error()}
		}
		start := now()
		for h := range hourlyPuts {
			// A different document each hour, as a diff would make.
			doc := bytesReplace(text, "valid-after 2026-06-27 04", fmt.Sprintf("valid-after 2026-06-27 %02d", h))
			if err := s.put(doc); err != nil {
				return result{Err: err.Error()}
			}
		}
		r.Millis = ms(now().Sub(start))
		if err := s.close(); err != nil {
			return result{Err: err.Error()}
		}
	case "load":
		text = nil
		r.Millis = 1e18
		for range runs {
			start := now()
			s, err := openStrategy(name, dir)
			if err != nil {
				return result{Err: err.Error()}
			}
			if _, err := s.load(); err != nil {
				return result{Err: err.Error()}
			}
			if err := s.close(); err != nil {
				return result{Err: err.Error()}
			}
			r.Millis = min(r.Millis, ms(now().Sub(start)))
		}
	}
	st := procStatus()
	r.HWM, r.Peak = st["VmHWM"], st["VmPeak"]
	return r
}
