package dirclient

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/onionlite/onionlite/memquota"
)

// Content encodings as Tor names them (proposal 278).
const (
	Identity = "identity"
	Deflate  = "deflate"
	Gzip     = "gzip"
	Zstd     = "x-zstd"
	LZMA     = "x-tor-lzma" // recognised, never requested: no decoder is linked
)

// DefaultEncodings is what a Client offers when Encodings is nil: zstd first
// (it halves modern microdescriptor batches against deflate), then the two
// the standard formats Tor always serves.
var DefaultEncodings = []string{Zstd, Deflate, Gzip}

// Limits.
const (
	// DefaultMaxBody caps a decompressed body when a Request sets none.
	DefaultMaxBody = 16 << 20
	// maxHeader caps the status line plus headers.
	maxHeader = 16 << 10
	// Bomb check, as C tor's src/lib/compress/compress.c: once the output
	// has reached bombCheckAfter bytes, an output/input ratio above
	// bombRatio aborts the download.
	bombCheckAfter = 64 << 10
	bombRatio      = 25
)

// Errors returned by Do. Match them with errors.Is.
var (
	ErrMalformed = errors.New("dirclient: malformed HTTP response")
	ErrTooLarge  = errors.New("dirclient: body exceeds the size limit")
	ErrBomb      = errors.New("dirclient: compression ratio exceeds the bomb limit")
	ErrEncoding  = errors.New("dirclient: unsupported or unrequested content encoding")
)

// StatusError is a non-200, non-304 answer.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dirclient: HTTP %d %s", e.Code, e.Reason)
}

// Request is one directory GET.
type Request struct {
	// Path is the URL path, e.g. "/tor/status-vote/current/consensus-microdesc".
	Path string
	// DiffFrom, when non-nil, asks for a consensus diff from the consensus
	// whose signed part has this SHA3-256 (X-Or-Diff-From-Consensus).
	DiffFrom *[32]byte
	// IfModifiedSince, when non-zero, is sent as If-Modified-Since.
	IfModifiedSince time.Time
	// MaxBody caps the decompressed body. Zero means DefaultMaxBody.
	MaxBody int64
	// SizeHint is the expected decompressed size, used to size the body
	// buffer once instead of growing it by doubling. Zero means unknown.
	SizeHint int
	// Account is where the download's buffers are charged while Do runs:
	// Do opens a child account "dir body" below it and claims, before
	// allocating, the header reader, the decoder's window (estimated from
	// the zstd frame header; 32 KiB for deflate and gzip) and every
	// growth of the body buffer. If the memory quota reclaims it, the
	// download stops with an error wrapping the *memquota.ReclaimedError.
	// The body handed back is no longer charged. Nil means the conn's
	// own account when conn has one (a *stream.Stream's MemoryAccount),
	// else none.
	Account *memquota.Account
}

// Response is a directory answer. On a 304 the Body is empty.
type Response struct {
	Code     int
	Reason   string
	Encoding string // the Content-Encoding the server used
	Body     []byte // decompressed
	// WireBytes counts every byte read from the stream: status line,
	// headers and the (compressed) body.
	WireBytes int64
}

// Client decodes directory responses. The zero value is ready to use and
// offers DefaultEncodings. A Client keeps a few deflate and gzip decoders
// for reuse (zstd decoders are made per body: see decodeZstd) and is safe
// for concurrent use.
type Client struct {
	// Encodings lists what the client accepts, in preference order.
	// Nil means DefaultEncodings. Identity is always acceptable.
	Encodings []string

	mu    sync.Mutex
	zlibs []io.ReadCloser
	gzips []*gzip.Reader
}

// maxPooled bounds the decoders kept per encoding (parallel downloads).
const maxPooled = 3

func (c *Client) encodings() []string {
	if c.Encodings == nil {
		return DefaultEncodings
	}
	return c.Encodings
}

// Encode appends the HTTP request for r to b.
func (c *Client) Encode(b []byte, r *Request) []byte {
	b = append(b, "GET "...)
	b = append(b, r.Path...)
	b = append(b, " HTTP/1.0\r\n"...)
	if enc := c.encodings(); len(enc) > 0 {
		b = append(b, "Accept-Encoding: "...)
		b = append(b, strings.Join(enc, ", ")...)
		b = append(b, "\r\n"...)
	}
	if r.DiffFrom != nil {
		b = append(b, "X-Or-Diff-From-Consensus: "...)
		b = append(b, strings.ToUpper(hex.EncodeToString(r.DiffFrom[:]))...)
		b = append(b, "\r\n"...)
	}
	if !r.IfModifiedSince.IsZero() {
		b = append(b, "If-Modified-Since: "...)
		b = append(b, r.IfModifiedSince.UTC().Format(httpTime)...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

// Do sends r over conn, reads the whole answer and closes nothing: the
// caller owns conn. When the context is done, blocked I/O is interrupted by
// setting conn's deadline into the past.
//
// On a read error after the headers, Do returns the Response holding the
// decompressed prefix received so far together with the error, so a caller
// can keep complete documents from a truncated batch. Any error other than
// a *StatusError means the stream should not be reused.
func (c *Client) Do(ctx context.Context, conn net.Conn, r *Request) (*Response, error) {
	// The context interrupts blocked I/O by moving conn's deadline into
	// the past when it is done; conn's own deadlines are left to the
	// caller (they may be on a clock other than the context's).
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := c.do(conn, r, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if err != nil && ctx.Err() != nil {
		return resp, fmt.Errorf("dirclient: %s: %w (%v)", r.Path, ctx.Err(), err)
	}
	return resp, err
}

// do runs a request over conn; interrupt, if not nil, makes conn's
// blocked and later I/O fail (the memory quota calls it on reclaim).
func (c *Client) do(conn io.ReadWriter, r *Request, interrupt func()) (_ *Response, err error) {
	if !strings.HasPrefix(r.Path, "/") || strings.ContainsAny(r.Path, " \r\n") {
		return nil, fmt.Errorf("dirclient: bad request path %q", r.Path)
	}
	parent := r.Account
	if parent == nil {
		if h, ok := conn.(interface{ MemoryAccount() *memquota.Account }); ok {
			parent = h.MemoryAccount()
		}
	}
	q, err := newBodyQuota(parent, interrupt)
	if err != nil {
		return nil, err
	}
	defer func() {
		q.close()
		if err != nil {
			err = q.explain(err)
		}
	}()
	if _, err := conn.Write(c.Encode(nil, r)); err != nil {
		return nil, fmt.Errorf("dirclient: sending request: %w", err)
	}
	if err := q.claim(headerBuf); err != nil {
		return nil, err
	}
	cr := &countingReader{r: conn}
	br := bufio.NewReaderSize(cr, headerBuf)
	resp, err := readHeader(br)
	if err != nil {
		return nil, err
	}
	resp.WireBytes = cr.n - int64(br.Buffered())
	if resp.Code == 304 {
		return resp, nil
	}
	if resp.Code != 200 {
		io.Copy(io.Discard, io.LimitReader(br, maxHeader)) // drain a small error page
		resp.WireBytes = cr.n
		return resp, &StatusError{Code: resp.Code, Reason: resp.Reason}
	}
	if !c.accepts(resp.Encoding) {
		return resp, fmt.Errorf("%w: %q", ErrEncoding, resp.Encoding)
	}
	max := r.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	body, err := c.decode(resp.Encoding, br, max, r.SizeHint, cr, int64(br.Buffered()), q)
	resp.Body = body
	resp.WireBytes = cr.n
	return resp, err
}

func (c *Client) accepts(enc string) bool {
	if enc == Identity || enc == Deflate {
		return true // a Tor server always counts these acceptable
	}
	for _, e := range c.encodings() {
		if e == enc {
			return true
		}
	}
	return false
}

// readHeader parses the status line and the headers Tor sends.
func readHeader(br *bufio.Reader) (*Response, error) {
	var total int
	line := func() (string, error) {
		s, err := br.ReadString('\n')
		total += len(s)
		if total > maxHeader {
			return "", fmt.Errorf("%w: header longer than %d bytes", ErrMalformed, maxHeader)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: stream ended inside the header", ErrMalformed)
			}
			return "", fmt.Errorf("dirclient: reading header: %w", err)
		}
		return strings.TrimRight(s, "\r\n"), nil
	}
	status, err := line()
	if err != nil {
		return nil, err
	}
	proto, rest, ok := strings.Cut(status, " ")
	if !ok || (proto != "HTTP/1.0" && proto != "HTTP/1.1") {
		return nil, fmt.Errorf("%w: status line %q", ErrMalformed, truncate(status))
	}
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || code < 100 || code > 999 {
		return nil, fmt.Errorf("%w: status line %q", ErrMalformed, truncate(status))
	}
	resp := &Response{Code: code, Reason: reason, Encoding: Identity}
	for {
		h, err := line()
		if err != nil {
			return nil, err
		}
		if h == "" {
			return resp, nil
		}
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("%w: header line %q", ErrMalformed, truncate(h))
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-encoding":
			resp.Encoding = strings.ToLower(strings.TrimSpace(v))
		case "transfer-encoding":
			return nil, fmt.Errorf("%w: transfer-encoding %q", ErrMalformed, truncate(v))
		}
	}
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decode reads the rest of br through the decoder for enc into a buffer
// capped at max bytes. cr counts the compressed bytes for the bomb check;
// base is what the header reader had already buffered.
func (c *Client) decode(enc string, br *bufio.Reader, max int64, hint int, cr *countingReader, buffered int64, q *bodyQuota) ([]byte, error) {
	start := cr.n - buffered // compressed bytes of the body begin here
	if hint < 0 || int64(hint) > max {
		hint = int(max)
	}
	if enc == Zstd {
		return decodeZstd(br, max, hint, q)
	}
	var src io.Reader
	var release func()
	if err := q.claim(decoderCost(enc)); err != nil {
		return nil, err
	}
	switch enc {
	case Identity:
		src = br
	case Deflate:
		z, err := c.getZlib(br)
		if err != nil {
			return nil, fmt.Errorf("dirclient: deflate: %w", err)
		}
		src, release = z, func() { c.putZlib(z) }
	case Gzip:
		g, err := c.getGzip(br)
		if err != nil {
			return nil, fmt.Errorf("dirclient: gzip: %w", err)
		}
		src, release = g, func() { c.putGzip(g) }
	default:
		return nil, fmt.Errorf("%w: %q", ErrEncoding, enc)
	}
	if release != nil {
		defer release()
	}
	// The body is charged while it is what the source sent (identity);
	// a decoded body is the document itself, bounded by max and the bomb
	// ratio, and not charged (see bodyQuota).
	out := q
	if enc != Identity {
		out = nil
	}
	var body []byte
	if err := out.grow(&body, hint); err != nil {
		return nil, err
	}
	for {
		// Read straight into the body's spare room, growing it (charged
		// first when charged) by doubling, up to one byte past max to
		// detect excess.
		room, err := out.room(&body, max+1)
		if err != nil {
			return body, err
		}
		n, err := src.Read(room)
		if int64(len(body)+n) > max {
			return body, fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
		}
		body = body[:len(body)+n]
		if enc != Identity && len(body) >= bombCheckAfter {
			in := cr.n - start - int64(br.Buffered())
			if in <= 0 || int64(len(body)) > bombRatio*in {
				return body, fmt.Errorf("%w: %d bytes from %d", ErrBomb, len(body), in)
			}
		}
		if err == io.EOF {
			return body, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return body, fmt.Errorf("dirclient: %s body truncated: %w", enc, err)
			}
			return body, fmt.Errorf("dirclient: reading %s body: %w", enc, err)
		}
	}
}

// Buffer sizes, as the memory quota is charged for them.
const (
	headerBuf = 4096     // the bufio reader under the header and the decoder
	readChunk = 32 << 10 // the most read in one call
	// flateWindow is a deflate or gzip decoder's history plus tables.
	flateWindow = 48 << 10
	// zstdState is a low-memory zstd block decoder's buffers (a block is
	// at most 128 KiB).
	zstdState = 128 << 10
	// zstdBlockSlack: a zstd block decodes to at most 128 KiB, and the
	// decoder wants a little room past it for its fast copies.
	zstdBlockSlack = 128<<10 + 1<<10
	// zstdMaxWindow is the largest window a frame may declare. Decoding
	// whole bodies does not allocate it; it only bounds back references.
	zstdMaxWindow = 8 << 20
)

// decoderCost is what a streaming decoder for enc holds: the history
// window and tables of deflate and gzip.
func decoderCost(enc string) int64 {
	if enc == Deflate || enc == Gzip {
		return flateWindow
	}
	return 0
}

// decodeZstd reads a zstd body whole and decodes it in one call. A
// streaming zstd decoder keeps a ring as large as the frame's declared
// window (C tor declares 4 MiB whatever the document's size) plus two
// blocks, and keeps it across resets; decoding the whole input at once
// uses the output itself as the history, so a download costs its
// compressed and decompressed bytes and nothing more. The decoded size is
// capped at max and at C tor's bomb ratio to the input. A body cut short
// (or a frame that stops decoding) gives the decoded prefix with the
// error, as the streaming decoders do.
func decodeZstd(br *bufio.Reader, maxBody int64, hint int, q *bodyQuota) ([]byte, error) {
	var in []byte
	var readErr error
	for readErr == nil {
		room, err := q.room(&in, maxBody+1)
		if err != nil {
			return nil, err
		}
		n, err := br.Read(room)
		in = in[:len(in)+n]
		if int64(len(in)) > maxBody {
			return nil, fmt.Errorf("%w (%d compressed bytes)", ErrTooLarge, maxBody)
		}
		if err == io.EOF {
			break
		}
		readErr = err
	}
	limit := min(maxBody, int64(bombRatio)*int64(len(in)))
	limit = max(limit, min(maxBody, bombCheckAfter))
	if err := q.claim(zstdState); err != nil {
		return nil, err
	}
	// The decoder writes into out's capacity and no further (it does not
	// allocate output itself). The decoded document is not charged (see
	// bodyQuota); its capacity is bounded by limit. A capacity too small
	// for the body is doubled, up to limit, and the body decoded again.
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("dirclient: zstd: %w", err)
	}
	defer d.Close()
	size := int64(hint) + 1 // one byte of slack tells an exact fit from excess
	if hint == 0 {
		size = 4 * int64(len(in))
	}
	size = min(max(size, readChunk), limit+1)
	// buf is the charged buffer; out is what DecodeAll returns in it. On
	// an error DecodeAll may return another slice (nil for a corrupt
	// frame), so sizes come from buf: sizing from out once doubled a
	// capacity of zero forever.
	var buf, out []byte
	var derr error
	short := false // the last attempt ran out of room
	for {
		// A retry starts over: buf holds nothing to copy.
		if err := (*bodyQuota)(nil).grow(&buf, int(size)); err != nil {
			return nil, err
		}
		out, derr = d.DecodeAll(in, buf[:0])
		// Running out of room is ErrDecoderSizeExceeded, or, when it
		// happens inside a block, an untyped error with less than a block
		// of room left. A corrupt body erring there too is decoded again
		// with more room, and then errs far from the end.
		short = derr != nil && (errors.Is(derr, zstd.ErrDecoderSizeExceeded) || cap(buf)-len(out) <= zstdBlockSlack)
		if !short || int64(cap(buf)) > limit {
			break
		}
		size = min(2*int64(cap(buf)), limit+1)
	}
	if short || int64(len(out)) > limit {
		out, derr = out[:min(int64(len(out)), limit)], zstd.ErrDecoderSizeExceeded
	}
	q.release(int64(cap(in)))
	switch {
	case errors.Is(derr, zstd.ErrDecoderSizeExceeded) && limit == maxBody:
		return out, fmt.Errorf("%w (%d bytes)", ErrTooLarge, maxBody)
	case errors.Is(derr, zstd.ErrDecoderSizeExceeded):
		return out, fmt.Errorf("%w: over %d bytes from %d", ErrBomb, limit, len(in))
	case readErr != nil:
		return out, fmt.Errorf("dirclient: reading %s body: %w", Zstd, readErr)
	case derr != nil:
		return out, fmt.Errorf("dirclient: %s body truncated or corrupt: %w", Zstd, derr)
	}
	return out, nil
}

// bodyQuota charges one download's buffers to a "dir body" account: what
// the source sent and the download still holds (the compressed body, read
// buffers, decoder state). Its data is as old as the download:
// reclamation sees it as one queue growing since the request went out.
//
// A decoded body is not charged: it is the document, which the caller
// parses and drops (or keeps as the network view, counted there), and it
// is bounded by the request's MaxBody and the bomb ratio to the bytes
// that were charged. Charging it made a phone's queue quota (2 MiB at the
// 16 MiB budget) reclaim every full-scale consensus download: 0.6-1.2 MB
// compressed decode to 2.4-3.6 MB. A nil *bodyQuota's grow and room only
// allocate.
type bodyQuota struct {
	acct      *memquota.Account
	part      *memquota.Participation
	start     time.Time
	interrupt func()
	reclaimed atomic.Pointer[error]
	charged   int64 // owned by the downloading goroutine
}

func newBodyQuota(parent *memquota.Account, interrupt func()) (*bodyQuota, error) {
	q := &bodyQuota{interrupt: interrupt}
	if parent == nil {
		return q, nil
	}
	a, err := parent.NewChild("dir body")
	if err != nil {
		return nil, fmt.Errorf("dirclient: memory quota: %w", err)
	}
	q.start = a.Tracker().Now()
	p, err := a.Register(q)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("dirclient: memory quota: %w", err)
	}
	q.acct, q.part = a, p
	return q, nil
}

// Oldest implements memquota.Participant.
func (q *bodyQuota) Oldest() (time.Time, bool) { return q.start, true }

// Reclaimed implements memquota.Participant: the download is abandoned.
func (q *bodyQuota) Reclaimed(err error) {
	q.reclaimed.Store(&err)
	if q.interrupt != nil {
		q.interrupt()
	}
}

func (q *bodyQuota) claim(n int64) error {
	if err := q.part.Claim(n); err != nil {
		return fmt.Errorf("dirclient: download buffers: %w", err)
	}
	q.charged += n
	return nil
}

// room returns the spare room of *b for the next read (at most readChunk
// bytes), first growing it by doubling, charged, up to limit bytes.
func (q *bodyQuota) room(b *[]byte, limit int64) ([]byte, error) {
	if len(*b) == cap(*b) {
		next := max(int64(2*cap(*b)), readChunk)
		if err := q.grow(b, int(min(limit, next))); err != nil {
			return nil, err
		}
	}
	return (*b)[len(*b):min(cap(*b), len(*b)+readChunk)], nil
}

func (q *bodyQuota) release(n int64) {
	q.part.Release(n)
	q.charged -= n
}

// grow makes *b's capacity newCap, claiming the new buffer before it is
// allocated and releasing the old one after the copy.
func (q *bodyQuota) grow(b *[]byte, newCap int) error {
	old := int64(cap(*b))
	if newCap <= cap(*b) {
		return nil
	}
	if q == nil {
		nb := make([]byte, len(*b), newCap)
		copy(nb, *b)
		*b = nb
		return nil
	}
	if err := q.claim(int64(newCap)); err != nil {
		return err
	}
	nb := make([]byte, len(*b), newCap)
	copy(nb, *b)
	*b = nb
	q.part.Release(old)
	q.charged -= old
	return nil
}

// explain turns an error caused by a reclaim (interrupted I/O) into one
// that says so.
func (q *bodyQuota) explain(err error) error {
	if e := q.reclaimed.Load(); e != nil && !errors.Is(err, memquota.ErrReclaimed) {
		return fmt.Errorf("dirclient: download reclaimed: %w (%v)", *e, err)
	}
	return err
}

// close ends the accounting; the body now belongs to the caller.
func (q *bodyQuota) close() {
	q.part.Close()
	q.acct.Close()
}

func (c *Client) getZlib(r io.Reader) (io.ReadCloser, error) {
	c.mu.Lock()
	if n := len(c.zlibs); n > 0 {
		z := c.zlibs[n-1]
		c.zlibs = c.zlibs[:n-1]
		c.mu.Unlock()
		return z, z.(zlib.Resetter).Reset(r, nil)
	}
	c.mu.Unlock()
	return zlib.NewReader(r)
}

func (c *Client) putZlib(z io.ReadCloser) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.zlibs) < maxPooled {
		c.zlibs = append(c.zlibs, z)
	}
}

func (c *Client) getGzip(r io.Reader) (*gzip.Reader, error) {
	c.mu.Lock()
	if n := len(c.gzips); n > 0 {
		g := c.gzips[n-1]
		c.gzips = c.gzips[:n-1]
		c.mu.Unlock()
		return g, g.Reset(r)
	}
	c.mu.Unlock()
	return gzip.NewReader(r)
}

func (c *Client) putGzip(g *gzip.Reader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gzips) < maxPooled {
		c.gzips = append(c.gzips, g)
	}
}

// Close releases pooled decoders. The Client stays usable.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.zlibs, c.gzips = nil, nil
}
