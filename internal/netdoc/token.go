package netdoc

import "bytes"

// The tokenizer splits a document in the dir-spec 1.2 meta-format into
// items: a keyword line with its arguments, optionally followed by one
// PEM-like object. It works on the caller's []byte and copies nothing:
// every []byte in an item is a subslice of the document, valid only while
// the document is, and never retained by parsed values.
//
// It is deliberately strict where the format is (every line ends in NL,
// keywords are [A-Za-z0-9-] not starting with '-', an object's END label
// equals its BEGIN label, object bodies are base64) and tolerant where
// Tor is (blank lines, tabs as whitespace, trailing whitespace).

// object is the PEM-like block after a keyword line.
type object struct {
	label []byte // e.g. "RSA PUBLIC KEY"
	body  []byte // the base64 lines between BEGIN and END, NLs included
	line  int    // line number of the BEGIN line
}

// item is one keyword line and its optional object.
type item struct {
	kw      []byte // keyword (with its '@' for annotations)
	args    []byte // arguments: the rest of the line, outer whitespace trimmed
	obj     object
	hasObj  bool
	start   int // offset of the keyword line in the document
	lineEnd int // offset just past the keyword line's NL
	end     int // offset just past the item, object included
	line    int // 1-based line number of the keyword line
}

type tokenizer struct {
	doc   []byte
	pos   int    // offset of the next unread line
	line  int    // line number of the line at pos
	annot bool   // accept annotation lines ("@keyword ...")
	name  string // document kind, for errors
}

func newTokenizer(doc []byte, name string) tokenizer {
	return tokenizer{doc: doc, line: 1, name: name}
}

var (
	beginPrefix = []byte("-----BEGIN ")
	endPrefix   = []byte("-----END ")
	dashes      = []byte("-----")
)

// kwChar marks the bytes allowed in a keyword.
var kwChar = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'] = true
	return t
}()

// b64Char marks the bytes allowed in an object body line.
var b64Char = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['+'], t['/'], t['='] = true, true, true
	return t
}()

func isWS(c byte) bool { return c == ' ' || c == '\t' }

// readLine returns the line at t.pos without its NL and advances past it.
func (t *tokenizer) readLine() ([]byte, error) {
	rest := t.doc[t.pos:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, parseErr(t.name, t.line, "last line is not terminated by a newline (truncated document?)")
	}
	t.pos += i + 1
	t.line++
	return rest[:i], nil
}

// peekLine reports whether the next line starts with prefix.
func (t *tokenizer) peekPrefix(prefix []byte) bool {
	return bytes.HasPrefix(t.doc[t.pos:], prefix)
}

// next returns the next item; ok is false at the end of the document.
func (t *tokenizer) next() (it item, ok bool, err error) {
	var l []byte
	for {
		if t.pos >= len(t.doc) {
			return item{}, false, nil
		}
		it.start, it.line = t.pos, t.line
		if l, err = t.readLine(); err != nil {
			return item{}, false, err
		}
		if len(l) != 0 {
			break
		}
	}
	it.lineEnd = t.pos
	if err := t.splitKeywordLine(&it, l); err != nil {
		return item{}, false, err
	}
	if t.peekPrefix(beginPrefix) {
		if err := t.readObject(&it); err != nil {
			return item{}, false, err
		}
	}
	it.end = t.pos
	return it, true, nil
}

func (t *tokenizer) splitKeywordLine(it *item, l []byte) error {
	i := 0
	if t.annot && l[0] == '@' {
		i = 1
	}
	kwStart := i
	for i < len(l) && kwChar[l[i]] {
		i++
	}
	switch {
	case l[0] == '-' && bytes.HasPrefix(l, dashes):
		return parseErr(t.name, it.line, "object without a keyword line before it")
	case i == kwStart || l[kwStart] == '-':
		return parseErr(t.name, it.line, "line does not start with a keyword: %.40q", l)
	case i < len(l) && !isWS(l[i]):
		return parseErr(t.name, it.line, "invalid character %q in keyword", l[i])
	}
	it.kw = l[:i]
	args := l[i:]
	for len(args) > 0 && isWS(args[0]) {
		args = args[1:]
	}
	for len(args) > 0 && isWS(args[len(args)-1]) {
		args = args[:len(args)-1]
	}
	for _, c := range args {
		if c < 0x20 && c != '\t' || c == 0x7f {
			if c == '\r' {
				return parseErr(t.name, it.line, "carriage return in line (CRLF line endings are not allowed)")
			}
			return parseErr(t.name, it.line, "control character %q in line", c)
		}
	}
	it.args = args
	return nil
}

func (t *tokenizer) readObject(it *item) error {
	begLine := t.line
	bl, err := t.readLine()
	if err != nil {
		return err
	}
	if len(bl) <= len(beginPrefix)+len(dashes) || !bytes.HasSuffix(bl, dashes) {
		return parseErr(t.name, begLine, "malformed object BEGIN line")
	}
	label := bl[len(beginPrefix) : len(bl)-len(dashes)]
	if !validLabel(label) {
		return parseErr(t.name, begLine, "malformed object label %.40q", label)
	}
	bodyStart := t.pos
	for {
		lineStart, lineNo := t.pos, t.line
		if t.pos >= len(t.doc) {
			return parseErr(t.name, begLine, "object %q has no END line (truncated document?)", label)
		}
		l, err := t.readLine()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(l, dashes) {
			if !bytes.HasPrefix(l, endPrefix) || !bytes.HasSuffix(l, dashes) ||
				len(l) != len(endPrefix)+len(label)+len(dashes) ||
				!bytes.Equal(l[len(endPrefix):len(l)-len(dashes)], label) {
				return parseErr(t.name, lineNo, "object END line does not match BEGIN %q", label)
			}
			it.obj = object{label: label, body: t.doc[bodyStart:lineStart], line: begLine}
			it.hasObj = true
			return nil
		}
		for _, c := range l {
			if !b64Char[c] {
				if c == '\r' {
					return parseErr(t.name, lineNo, "carriage return in object (CRLF line endings are not allowed)")
				}
				return parseErr(t.name, lineNo, "invalid character %q in object %q", c, label)
			}
		}
	}
}

// validLabel checks Keyword (" " Keyword)*.
func validLabel(l []byte) bool {
	if len(l) == 0 || l[0] == ' ' || l[len(l)-1] == ' ' {
		return false
	}
	prevSpace := false
	for _, c := range l {
		if c == ' ' {
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		}
		if !kwChar[c] {
			return false
		}
		prevSpace = false
	}
	return true
}

// nextArg splits the first whitespace-separated argument off args.
func nextArg(args []byte) (arg, rest []byte) {
	i := 0
	for i < len(args) && !isWS(args[i]) {
		i++
	}
	arg = args[:i]
	for i < len(args) && isWS(args[i]) {
		i++
	}
	return arg, args[i:]
}

// argN splits off exactly n leading arguments; ok is false when fewer
// are present. Extra arguments are returned in rest.
func argN(args []byte, dst [][]byte) (rest []byte, ok bool) {
	for i := range dst {
		dst[i], args = nextArg(args)
		if len(dst[i]) == 0 {
			return args, false
		}
	}
	return args, true
}

func kwIs(kw []byte, s string) bool { return string(kw) == s }
