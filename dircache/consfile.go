package dircache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/onionlite/onionlite/internal/consdiff"
)

// A consensus lives in its own file, consensus-<flavor>.cons, replaced by
// write-to-temporary, fsync and rename, so a reader sees the old file or
// the new one, never a mix. Keeping it out of badger means an hourly
// multi-megabyte value never passes through badger's value log (which would
// need value-log GC and a value log at least as large as the document),
// and a damaged badger directory does not take the consensus with it.
// docs/dircache.md has the measurements behind this.
//
// File layout (integers big-endian):
//
//	magic "OLCONS1\n"
//	u8 flavor length, flavor
//	i64 valid-after, fresh-until, valid-until (unix seconds; MinInt64 = zero time)
//	u64 length of the text
//	[32] SHA3-256 of the signed part, [32] SHA3-256 of the whole text
//	[32] SHA-256 of everything above
//	zstd frame of the text (one frame, with its content size and checksum)
const consMagic = "OLCONS1\n"

// consFiles reads and writes the consensus files of one directory, with
// one zstd decoder reused across documents and an encoder per store.
type consFiles struct {
	dir string
	mu  sync.Mutex // serialises writers and the decoder
	dec *zstd.Decoder
}

func (cf *consFiles) path(flavor string) string {
	return filepath.Join(cf.dir, consPrefix+flavor+consSuffix)
}

func (cf *consFiles) close() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.dec != nil {
		cf.dec.Close()
		cf.dec = nil
	}
}

func putTime(b []byte, t time.Time) []byte {
	v := int64(math.MinInt64)
	if !t.IsZero() {
		v = t.Unix()
	}
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func getTime(b []byte) time.Time {
	v := int64(binary.BigEndian.Uint64(b))
	if v == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

// newEncoder returns the encoder for one store, writing to w. It is not
// kept: a store happens once an hour, and an encoder's state would
// otherwise stay on the heap for the life of the store.
func newEncoder(w io.Writer) (*zstd.Encoder, error) {
	// The fastest level with a 256 KiB window: the 2019 consensus
	// compresses to 607 KB instead of 587 KB at the default level and
	// 1 MiB window, for a third of the memory while it runs. Streamed to
	// the file, the compressed document is never held whole.
	return zstd.NewWriter(w,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(256<<10),
		zstd.WithLowerEncoderMem(true))
}

func (cf *consFiles) decoder() (*zstd.Decoder, error) {
	if cf.dec == nil {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(16<<20),
			zstd.WithDecoderMaxMemory(MaxConsensusSize))
		if err != nil {
			return nil, err
		}
		cf.dec = dec
	}
	return cf.dec, nil
}

func encodeConsHeader(c *Consensus) []byte {
	h := make([]byte, 0, 256)
	h = append(h, consMagic...)
	h = append(h, byte(len(c.Flavor)))
	h = append(h, c.Flavor...)
	h = putTime(h, c.ValidAfter)
	h = putTime(h, c.FreshUntil)
	h = putTime(h, c.ValidUntil)
	h = binary.BigEndian.AppendUint64(h, uint64(len(c.Text)))
	h = append(h, c.SignedDigest[:]...)
	h = append(h, c.FullDigest[:]...)
	sum := sha256.Sum256(h)
	return append(h, sum[:]...)
}

// decodeConsHeader parses the header; it returns the consensus without
// text, the text length and the payload.
func decodeConsHeader(b []byte) (*Consensus, int, []byte, error) {
	if !bytes.HasPrefix(b, []byte(consMagic)) || len(b) < len(consMagic)+1 {
		return nil, 0, nil, errors.New("bad magic")
	}
	fl := int(b[len(consMagic)])
	n := len(consMagic) + 1 + fl + 3*8 + 8 + 32 + 32
	if len(b) < n+32 {
		return nil, 0, nil, errors.New("truncated header")
	}
	if sha256.Sum256(b[:n]) != [32]byte(b[n:n+32]) {
		return nil, 0, nil, errors.New("header checksum mismatch")
	}
	p := len(consMagic) + 1
	c := &Consensus{Flavor: string(b[p : p+fl])}
	p += fl
	c.ValidAfter, c.FreshUntil, c.ValidUntil = getTime(b[p:]), getTime(b[p+8:]), getTime(b[p+16:])
	p += 24
	size := binary.BigEndian.Uint64(b[p:])
	p += 8
	copy(c.SignedDigest[:], b[p:])
	copy(c.FullDigest[:], b[p+32:])
	if size > MaxConsensusSize {
		return nil, 0, nil, fmt.Errorf("text length %d", size)
	}
	return c, int(size), b[n+32:], nil
}

func (cf *consFiles) store(c *Consensus) error {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	path := cf.path(c.Flavor)
	err := writeFileSyncFunc(path, func(w io.Writer) error {
		if _, err := w.Write(encodeConsHeader(c)); err != nil {
			return err
		}
		enc, err := newEncoder(w)
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		// The frame carries the text's size, as the layout says.
		enc.ResetContentSize(w, int64(len(c.Text)))
		if _, err := enc.Write(c.Text); err != nil {
			enc.Close()
			return err
		}
		return enc.Close()
	})
	if err != nil {
		return fsErr("write "+filepath.Base(path), err)
	}
	return nil
}

// load reads and verifies a consensus file. A file that fails is removed
// and reported as ErrCorrupt.
func (cf *consFiles) load(flavor string) (*Consensus, error) {
	path := cf.path(flavor)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s consensus", ErrNotFound, flavor)
	}
	if err != nil {
		return nil, fsErr("read "+filepath.Base(path), err)
	}
	c, err := cf.decode(flavor, b)
	if err != nil {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, fsErr("remove damaged "+filepath.Base(path), rerr)
		}
		return nil, fmt.Errorf("%w: %s consensus: %v", ErrCorrupt, flavor, err)
	}
	return c, nil
}

func (cf *consFiles) decode(flavor string, b []byte) (*Consensus, error) {
	c, size, payload, err := decodeConsHeader(b)
	if err != nil {
		return nil, err
	}
	if c.Flavor != flavor {
		return nil, fmt.Errorf("file holds flavor %q", c.Flavor)
	}
	cf.mu.Lock()
	dec, err := cf.decoder()
	if err != nil {
		cf.mu.Unlock()
		return nil, fmt.Errorf("zstd: %w", err)
	}
	text, err := dec.DecodeAll(payload, make([]byte, 0, size))
	cf.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(text) != size {
		return nil, fmt.Errorf("text is %d bytes, header says %d", len(text), size)
	}
	if consdiff.FullDigest(text) != c.FullDigest {
		return nil, errors.New("text does not match its SHA3-256")
	}
	c.Text = text
	return c, nil
}
