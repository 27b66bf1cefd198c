package consdiff

import (
	"bytes"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Errors returned by this package. Match them with errors.Is; the message
// text is not stable.
var (
	// ErrMalformed: the diff is not a well-formed diff of this format, or
	// a command is out of range or out of order. The error is a
	// *MalformedError carrying the diff line number.
	ErrMalformed = errors.New("consdiff: malformed diff")
	// ErrFromDigest: the base's signed-part digest is not the diff's FROM.
	ErrFromDigest = errors.New("consdiff: base does not match the diff's FROM digest")
	// ErrToDigest: applying the diff did not give the diff's TO digest.
	ErrToDigest = errors.New("consdiff: result does not match the diff's TO digest")
	// ErrBase: the base is not a complete document (no newline at its end,
	// or too large to index).
	ErrBase = errors.New("consdiff: base is not a complete consensus document")
)

// MalformedError describes where a diff is malformed. It matches
// ErrMalformed under errors.Is.
type MalformedError struct {
	Line   int    // 1-based line of the diff
	Reason string // what is wrong, for people
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("consdiff: malformed diff at line %d: %s", e.Line, e.Reason)
}

// Is reports whether target is ErrMalformed.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(line int, format string, args ...any) error {
	return &MalformedError{Line: line, Reason: fmt.Sprintf(format, args...)}
}

const (
	versionLine = "network-status-diff-version 1"
	sigKeyword  = "directory-signature "
)

// LooksLikeDiff reports whether doc starts like a consensus diff rather
// than a full consensus. It checks only the first line's keyword.
func LooksLikeDiff(doc []byte) bool {
	return bytes.HasPrefix(doc, []byte(versionLine))
}

// FullDigest returns the SHA3-256 of the whole document: the ToDigest of a
// diff that produces doc.
func FullDigest(doc []byte) [32]byte {
	return sha3.Sum256(doc)
}

// signedPartLen returns the length of doc's signed part: from the start
// through the space after the first "directory-signature" keyword that
// begins a line.
func signedPartLen(doc []byte) (int, bool) {
	if bytes.HasPrefix(doc, []byte(sigKeyword)) {
		return len(sigKeyword), true
	}
	i := bytes.Index(doc, []byte("\n"+sigKeyword))
	if i < 0 {
		return 0, false
	}
	return i + 1 + len(sigKeyword), true
}

// SignedPartDigest returns the SHA3-256 of doc's signed part (dir-spec
// 3.4.1: from the first byte through the space after the first
// "directory-signature"), the FromDigest a diff based on doc names and the
// value sent in X-Or-Diff-From-Consensus. It fails when doc has no
// directory-signature line.
func SignedPartDigest(doc []byte) ([32]byte, error) {
	n, ok := signedPartLen(doc)
	if !ok {
		return [32]byte{}, errors.New("consdiff: document has no directory-signature line")
	}
	return sha3.Sum256(doc[:n]), nil
}

// Digests returns both digests of doc in one pass: its signed-part digest
// (see SignedPartDigest) and its full digest (see FullDigest).
func Digests(doc []byte) (signed, full [32]byte, err error) {
	n, ok := signedPartLen(doc)
	if !ok {
		return signed, full, errors.New("consdiff: document has no directory-signature line")
	}
	h := sha3.New256()
	h.Write(doc[:n])
	c, err := h.Clone()
	if err != nil {
		panic("BUG: consdiff: cannot clone SHA3 state: " + err.Error())
	}
	c.Sum(signed[:0])
	h.Write(doc[n:])
	h.Sum(full[:0])
	return signed, full, nil
}

// ParseHeader reads the two header lines of a diff and returns its FROM
// digest (of the base's signed part) and TO digest (of the whole result),
// so that a caller can pick the base before applying. Errors are
// *MalformedError.
func ParseHeader(diff []byte) (from, to [32]byte, err error) {
	_, from, to, err = parseHeader(diff)
	return from, to, err
}

// parseHeader also returns the offset of the first command line.
func parseHeader(diff []byte) (body int, from, to [32]byte, err error) {
	l1, rest, ok := cutLine(diff)
	if !ok {
		return 0, from, to, malformed(1, "truncated header")
	}
	if string(l1) != versionLine {
		return 0, from, to, malformed(1, "want %q", versionLine)
	}
	l2, _, ok := cutLine(rest)
	if !ok {
		return 0, from, to, malformed(2, "truncated hash line")
	}
	// "hash" SP 64 hex SP 64 hex, single spaces.
	const hexLen = 2 * 32
	if len(l2) != len("hash ")+hexLen+1+hexLen || !bytes.HasPrefix(l2, []byte("hash ")) || l2[len("hash ")+hexLen] != ' ' {
		return 0, from, to, malformed(2, "want \"hash FROM TO\" with two 64-digit hex SHA3-256 digests")
	}
	if _, err := hex.Decode(from[:], l2[5:5+hexLen]); err != nil {
		return 0, from, to, malformed(2, "FROM digest is not hex")
	}
	if _, err := hex.Decode(to[:], l2[5+hexLen+1:]); err != nil {
		return 0, from, to, malformed(2, "TO digest is not hex")
	}
	return len(l1) + 1 + len(l2) + 1, from, to, nil
}

// cutLine splits off the first newline-terminated line of b. ok is false
// when b holds no newline.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	return b[:i], b[i+1:], true
}

// Apply applies diff to base and returns the new document. It checks the
// diff's FROM digest against base's signed part before anything else and
// the TO digest against the whole result at the end; on any error it
// returns nil. base and diff are not modified, and the result shares no
// memory with them.
func Apply(base, diff []byte) ([]byte, error) {
	body, from, to, err := parseHeader(diff)
	if err != nil {
		return nil, err
	}
	got, err := SignedPartDigest(base)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFromDigest, err)
	}
	if got != from {
		return nil, fmt.Errorf("%w: base signed part is %X, diff wants %X", ErrFromDigest, got, from)
	}
	out, err := applyScript(base, diff, body, 3)
	if err != nil {
		return nil, err
	}
	if d := FullDigest(out); d != to {
		return nil, fmt.Errorf("%w: result is %X, diff wants %X", ErrToDigest, d, to)
	}
	return out, nil
}

// edit replaces base lines [start, end] (1-based, inclusive; end = start-1
// for an empty range, as "a" has) by the diff bytes [blk0, blk1).
type edit struct {
	start, end int32
	blk0, blk1 int32
}

// indexLines returns the byte offset at which each line of doc starts, plus
// len(doc) at the end: line i (1-based) is doc[off[i-1]:off[i]].
func indexLines(doc []byte) ([]uint32, error) {
	if len(doc) >= math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d bytes is too large", ErrBase, len(doc))
	}
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		return nil, fmt.Errorf("%w: last line has no newline", ErrBase)
	}
	n := bytes.Count(doc, []byte{'\n'})
	off := make([]uint32, 0, n+1)
	off = append(off, 0)
	for i := 0; i < len(doc); {
		j := bytes.IndexByte(doc[i:], '\n')
		i += j + 1
		off = append(off, uint32(i))
	}
	return off, nil
}

// applyScript applies the ed script in diff[body:] to base without any
// digest check. firstLine is the diff line number of diff[body], for
// error messages.
func applyScript(base, diff []byte, body, firstLine int) ([]byte, error) {
	if len(diff) >= math.MaxInt32 {
		return nil, malformed(1, "diff of %d bytes is too large", len(diff))
	}
	off, err := indexLines(base)
	if err != nil {
		return nil, err
	}
	nlines := len(off) - 1

	// Pass 1: parse and check every command, and size the result.
	var edits []edit
	// Positions are doubled so that "after line n" (2n+1) sits between
	// lines n (2n) and n+1 (2n+2). Each command must end strictly before
	// the previous one begins.
	limit := 2*nlines + 2
	size := len(base)
	lineNo := firstLine
	for p := body; p < len(diff); {
		line, _, ok := cutLine(diff[p:])
		if !ok {
			return nil, malformed(lineNo, "last line has no newline (truncated diff?)")
		}
		cmdLine := lineNo
		p += len(line) + 1
		lineNo++
		c, err := parseCommand(line, nlines)
		if err != nil {
			return nil, malformed(cmdLine, "%v", err)
		}
		if c.dollar && len(edits) > 0 {
			// Only "Na" at the very end can precede it, and then "$"
			// would be ambiguous.
			return nil, malformed(cmdLine, "%q: $ is allowed only in the first command", line)
		}
		lo, hi := 2*c.start, 2*c.end
		if c.op == 'a' {
			lo, hi = 2*c.start+1, 2*c.start+1
		}
		if hi >= limit {
			return nil, malformed(cmdLine, "command %q is not strictly above the previous one", line)
		}
		limit = lo
		e := edit{start: int32(c.start), end: int32(c.end)}
		if c.op == 'a' {
			e.start, e.end = int32(c.start+1), int32(c.start)
		}
		size -= int(off[e.end] - off[e.start-1])
		if c.op != 'd' {
			e.blk0 = int32(p)
			for {
				tl, _, ok := cutLine(diff[p:])
				if !ok {
					return nil, malformed(cmdLine, "block of %q has no terminating \".\" line", line)
				}
				if len(tl) == 1 && tl[0] == '.' {
					break
				}
				p += len(tl) + 1
				lineNo++
			}
			e.blk1 = int32(p)
			p += 2 // the "." line
			lineNo++
			if e.blk1 == e.blk0 {
				return nil, malformed(cmdLine, "command %q inserts no lines", line)
			}
			size += int(e.blk1 - e.blk0)
		}
		edits = append(edits, e)
	}

	// Pass 2: edits are in descending order; build the result front to
	// back in one buffer of the exact size.
	out := make([]byte, 0, size)
	cur := uint32(0)
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		out = append(out, base[cur:off[e.start-1]]...)
		out = append(out, diff[e.blk0:e.blk1]...)
		cur = off[e.end]
	}
	out = append(out, base[cur:]...)
	if len(out) != size {
		panic("BUG: consdiff: result size mismatch")
	}
	return out, nil
}

type command struct {
	start, end int // for 'a', start is the line to append after
	op         byte
	dollar     bool // the range ended in "$"
}

// parseCommand parses one ed command line and checks its range against a
// base of nlines lines.
func parseCommand(line []byte, nlines int) (command, error) {
	var c command
	start, rest, ok := parseNum(line)
	if !ok {
		return c, fmt.Errorf("want an ed command, got %q", clip(line))
	}
	end, ranged, dollar := start, false, false
	if len(rest) > 0 && rest[0] == ',' {
		ranged = true
		if len(rest) > 1 && rest[1] == '$' {
			dollar = true
			end, rest = nlines, rest[2:]
		} else if end, rest, ok = parseNum(rest[1:]); !ok {
			return c, fmt.Errorf("range in %q has no end line", clip(line))
		}
	}
	if len(rest) != 1 {
		return c, fmt.Errorf("want one of the commands a, c, d in %q", clip(line))
	}
	c.op = rest[0]
	switch c.op {
	case 'a':
		if ranged {
			return c, fmt.Errorf("%q: a takes no range", clip(line))
		}
		if start > nlines {
			return c, fmt.Errorf("%q: line %d is past the end of the base (%d lines)", clip(line), start, nlines)
		}
	case 'c', 'd':
		if dollar && c.op != 'd' {
			return c, fmt.Errorf("%q: $ is allowed only with d", clip(line))
		}
		if start < 1 {
			return c, fmt.Errorf("%q: line numbers start at 1", clip(line))
		}
		if start > nlines {
			return c, fmt.Errorf("%q: line %d is past the end of the base (%d lines)", clip(line), start, nlines)
		}
		if ranged && end <= start {
			return c, fmt.Errorf("%q: range end must be after its start", clip(line))
		}
		if end > nlines {
			return c, fmt.Errorf("%q: line %d is past the end of the base (%d lines)", clip(line), end, nlines)
		}
	default:
		return c, fmt.Errorf("want one of the commands a, c, d in %q", clip(line))
	}
	c.start, c.end, c.dollar = start, end, dollar
	return c, nil
}

// parseNum reads a decimal line number (at most 9 digits, so it cannot
// overflow) from the start of b.
func parseNum(b []byte) (n int, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if i == 9 {
			return 0, b, false
		}
		n = n*10 + int(b[i]-'0')
		i++
	}
	return n, b[i:], i > 0
}

// clip shortens a line for an error message.
func clip(b []byte) string {
	const max = 40
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
