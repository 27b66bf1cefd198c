package netdoc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

const docMicrodesc = "microdescriptor"

// Microdesc is one microdescriptor (dir-spec 3.3). It is trusted only
// once its Digest matches an "m" line of a checked consensus. It holds no
// reference into the parsed batch.
type Microdesc struct {
	// Digest is SHA-256 of the microdescriptor's exact text, from its
	// first line up to the next microdescriptor or annotation.
	Digest [32]byte
	// NtorKey is the curve25519 ntor onion key.
	NtorKey [32]byte
	// Ed25519ID is the relay's ed25519 identity ("id ed25519"); all zero
	// if absent. Ignore it when the consensus entry has NoEdConsensus.
	Ed25519ID [32]byte
	// Family is the declared family; nil if there is no "family" line.
	// Microdescriptors of one batch with the same family line share one
	// *Family; do not modify it.
	Family *Family
	// FamilyIDs are the "family-ids" entries as written, e.g.
	// "ed25519:<base64>" (proposal 321); nil if absent. Shared within a
	// batch like Family.
	FamilyIDs []string
	// IPv4Policy and IPv6Policy are the "p" and "p6" summaries; never nil
	// (an absent line is RejectAllPolicy()). Shared within a batch.
	IPv4Policy *PortPolicy
	IPv6Policy *PortPolicy
	// IPv6 is the first IPv6 "a" line (only old microdescriptors carry
	// one); invalid (zero) if none.
	IPv6       netip.AddrPort
	lastListed int64 // unix seconds; 0 if none
	start, end int   // extent of the text in the parsed batch
}

// Extent returns where the microdescriptor's text lies in the batch it was
// parsed from: batch[start:end] is exactly the text Digest covers, so a
// cache can store it without re-serialising.
func (m *Microdesc) Extent() (start, end int) { return m.start, m.end }

// LastListed returns the "@last-listed" annotation time of a cached
// microdescriptor, or the zero Time.
func (m *Microdesc) LastListed() time.Time {
	if m.lastListed == 0 {
		return time.Time{}
	}
	return time.Unix(m.lastListed, 0).UTC()
}

// Family is a declared relay family ("family" line). Canonical lines
// (consensus method 29+) hold only "$HEX" entries, the relay itself
// included.
type Family struct {
	// IDs are the RSA identity digests of "$HEX", "$HEX=nick" and
	// "$HEX~nick" entries, in line order.
	IDs [][20]byte
	// Nicknames are the bare-nickname entries (pre-2019 style).
	Nicknames []string
	// Key is SHA-256 of the family line's arguments: equal lines give
	// equal keys, so callers can intern families across batches.
	Key [32]byte
}

// Contains reports whether id is listed.
func (f *Family) Contains(id [20]byte) bool {
	if f == nil {
		return false
	}
	for _, x := range f.IDs {
		if x == id {
			return true
		}
	}
	return false
}

// MicrodescBatchError reports microdescriptors that were dropped from a
// batch because they were malformed. It matches ErrMalformed.
type MicrodescBatchError struct {
	// Errors holds one *ParseError per dropped microdescriptor (and one
	// for a syntax error that stopped parsing).
	Errors []error
	// Dropped lists the digests of dropped microdescriptors whose extent
	// was known, so a caller can mark them failed.
	Dropped [][32]byte
}

func (e *MicrodescBatchError) Error() string {
	if len(e.Errors) == 1 {
		return e.Errors[0].Error()
	}
	return fmt.Sprintf("%d malformed microdescriptors; first: %v", len(e.Errors), e.Errors[0])
}

// Unwrap returns the individual errors.
func (e *MicrodescBatchError) Unwrap() []error { return e.Errors }

// md items that may appear at most once.
const (
	mOnionKey = 1 << iota
	mNtor
	mFamily
	mFamilyIDs
	mP
	mP6
	mIDEd
	mIDRSA
)

type mdParser struct {
	t        tokenizer
	out      []Microdesc
	policies map[string]*PortPolicy
	families map[[32]byte]*Family
	fids     map[string][]string
	errs     *MicrodescBatchError

	// the microdescriptor being parsed
	in    bool
	md    Microdesc
	start int
	line  int
	seen  uint16
	err   error
	// hasNtor: an ntor-onion-key line was seen (even in a malformed
	// microdescriptor); the next one starts a new microdescriptor.
	hasNtor bool
}

// ParseMicrodescs parses a batch of microdescriptors: either as served
// over HTTP (/tor/micro/d/..., no annotations) or a Tor cache file
// (cached-microdescs, each preceded by "@last-listed" and possibly other
// annotation lines, which are not part of the digest).
//
// A microdescriptor starts at an "onion-key" line or, since onion-key is
// optional in newer formats, at an "ntor-onion-key" line that is not
// preceded by onion-key in the same microdescriptor; it ends where the
// next one or an annotation starts. Unknown items are ignored; malformed
// known items make that microdescriptor invalid.
//
// All well-formed microdescriptors are returned, in batch order. If any
// was dropped, err is a *MicrodescBatchError (matching ErrMalformed)
// alongside the good ones. A syntax error in the meta-format itself stops
// parsing at that point.
func ParseMicrodescs(batch []byte) ([]Microdesc, error) {
	p := &mdParser{
		t:        newTokenizer(batch, docMicrodesc),
		policies: make(map[string]*PortPolicy),
		families: make(map[[32]byte]*Family),
		fids:     make(map[string][]string),
	}
	p.t.annot = true
	// One ntor-onion-key per microdescriptor; real ones are 150 bytes and
	// more, and the cap bounds preallocation for hostile input.
	n := min(bytes.Count(batch, []byte("ntor-onion-key ")), len(batch)/128)
	p.out = make([]Microdesc, 0, n)
	// Annotations before the next microdescriptor.
	var pendingLast int64
	var pendingErr error
	pendingLine := 0
	for {
		it, ok, err := p.t.next()
		if err != nil {
			p.fail(err)
			if p.in {
				p.in = false // extent unknown: not reported in Dropped
			}
			break
		}
		if !ok {
			break
		}
		kw := it.kw
		if kw[0] == '@' {
			p.end(it.start)
			if pendingLine == 0 {
				pendingLine = it.line
			}
			if kwIs(kw, "@last-listed") {
				tm, _, ok := timeArgs(it.args)
				if !ok {
					pendingErr = parseErr(docMicrodesc, it.line, "malformed @last-listed")
				} else {
					pendingLast = tm.Unix()
				}
			}
			continue
		}
		isNtor := kwIs(kw, "ntor-onion-key")
		if p.in && (kwIs(kw, "onion-key") || isNtor && p.hasNtor) {
			p.end(it.start)
		}
		if !p.in {
			p.begin(it, pendingLast)
			if pendingErr != nil {
				p.err = pendingErr // a bad annotation drops its microdescriptor
			}
			pendingLast, pendingErr, pendingLine = 0, nil, 0
		}
		p.hasNtor = p.hasNtor || isNtor
		if p.err == nil {
			p.err = p.item(it)
		}
	}
	p.end(len(batch))
	if pendingLine != 0 {
		p.fail(parseErr(docMicrodesc, pendingLine, "annotation not followed by a microdescriptor"))
	}
	if p.errs != nil {
		return p.out, p.errs
	}
	return p.out, nil
}

func (p *mdParser) fail(err error) {
	if p.errs == nil {
		p.errs = &MicrodescBatchError{}
	}
	p.errs.Errors = append(p.errs.Errors, err)
}

func (p *mdParser) begin(it item, lastListed int64) {
	p.in = true
	p.md = Microdesc{lastListed: lastListed, IPv4Policy: rejectAll, IPv6Policy: rejectAll}
	p.start, p.line, p.seen, p.err, p.hasNtor = it.start, it.line, 0, nil, false
	if !kwIs(it.kw, "onion-key") && !kwIs(it.kw, "ntor-onion-key") {
		p.err = parseErr(docMicrodesc, it.line, "microdescriptor starts with %.40q, not onion-key or ntor-onion-key", it.kw)
	}
}

// end finishes the current microdescriptor, whose text ends at off.
func (p *mdParser) end(off int) {
	if !p.in {
		return
	}
	p.in = false
	p.md.Digest = sha256.Sum256(p.t.doc[p.start:off])
	p.md.start, p.md.end = p.start, off
	if p.err == nil && p.seen&mNtor == 0 {
		p.err = parseErr(docMicrodesc, p.line, "microdescriptor lacks ntor-onion-key")
	}
	if p.err != nil {
		p.fail(p.err)
		p.errs.Dropped = append(p.errs.Dropped, p.md.Digest)
		return
	}
	p.out = append(p.out, p.md)
}

func (p *mdParser) once(bit uint16, it item) error {
	if p.seen&bit != 0 {
		return parseErr(docMicrodesc, it.line, "duplicate %s", it.kw)
	}
	p.seen |= bit
	if it.hasObj && bit != mOnionKey {
		return parseErr(docMicrodesc, it.line, "unexpected object after %s", it.kw)
	}
	return nil
}

func (p *mdParser) item(it item) error {
	md := &p.md
	switch string(it.kw) {
	case "onion-key":
		if err := p.once(mOnionKey, it); err != nil {
			return err
		}
		if len(it.args) != 0 {
			return parseErr(docMicrodesc, it.line, "onion-key takes no arguments")
		}
		if it.hasObj {
			// The TAP key is obsolete and unused; check only that the
			// object is a well-formed base64 RSA key of sane size.
			if string(it.obj.label) != "RSA PUBLIC KEY" {
				return parseErr(docMicrodesc, it.obj.line, "onion-key object is %q", it.obj.label)
			}
			var buf [1200]byte
			if base64.StdEncoding.DecodedLen(len(it.obj.body)) > len(buf) {
				return parseErr(docMicrodesc, it.obj.line, "onion-key object too large")
			}
			if _, err := base64.StdEncoding.Decode(buf[:], it.obj.body); err != nil {
				return parseErr(docMicrodesc, it.obj.line, "bad base64 in onion-key")
			}
		}
	case "ntor-onion-key":
		if err := p.once(mNtor, it); err != nil {
			return err
		}
		a, _ := nextArg(it.args)
		if !parseB64Fixed(md.NtorKey[:], a) {
			return parseErr(docMicrodesc, it.line, "malformed ntor-onion-key")
		}
	case "a":
		a, _ := nextArg(it.args)
		ap, ok := parseAddrPort(a)
		if !ok || it.hasObj {
			return parseErr(docMicrodesc, it.line, "malformed a line")
		}
		if ap.Addr().Is6() && !md.IPv6.IsValid() {
			md.IPv6 = ap
		}
	case "family":
		if err := p.once(mFamily, it); err != nil {
			return err
		}
		md.Family = p.family(it.args)
	case "family-ids":
		if err := p.once(mFamilyIDs, it); err != nil {
			return err
		}
		ids, err := p.familyIDs(it)
		if err != nil {
			return err
		}
		md.FamilyIDs = ids
	case "p", "p6":
		bit, dst := uint16(mP), &md.IPv4Policy
		if kwIs(it.kw, "p6") {
			bit, dst = mP6, &md.IPv6Policy
		}
		if err := p.once(bit, it); err != nil {
			return err
		}
		pol, ok := p.policies[string(it.args)]
		if !ok {
			var msg string
			if pol, msg = parsePortPolicy(it.args); pol == nil {
				return parseErr(docMicrodesc, it.line, "%s: %s", it.kw, msg)
			}
			p.policies[string(it.args)] = pol
		}
		*dst = pol
	case "id":
		kt, rest := nextArg(it.args)
		v, _ := nextArg(rest)
		if len(v) == 0 {
			return parseErr(docMicrodesc, it.line, "id line needs a key type and a key")
		}
		switch string(kt) {
		case "ed25519":
			if err := p.once(mIDEd, it); err != nil {
				return err
			}
			if !parseB64Fixed(md.Ed25519ID[:], v) {
				return parseErr(docMicrodesc, it.line, "malformed ed25519 id")
			}
		case "rsa1024":
			// Present only to prevent collisions (dir-spec 3.3).
			if err := p.once(mIDRSA, it); err != nil {
				return err
			}
		}
	}
	return nil
}

// family parses a family line, interning it within the batch.
func (p *mdParser) family(args []byte) *Family {
	key := sha256.Sum256(args)
	if f, ok := p.families[key]; ok {
		return f
	}
	n := 0
	for rest := args; len(rest) > 0; n++ {
		_, rest = nextArg(rest)
	}
	f := &Family{Key: key, IDs: make([][20]byte, 0, n)}
	for rest := args; len(rest) > 0; {
		var e []byte
		e, rest = nextArg(rest)
		if e[0] == '$' {
			hexid := e[1:]
			if len(hexid) > 40 && (hexid[40] == '=' || hexid[40] == '~') && validNickname(hexid[41:]) {
				hexid = hexid[:40]
			}
			if id, ok := parseHex20(hexid); ok {
				f.IDs = append(f.IDs, id)
			}
			// Other "$..." forms are not valid entries; authorities drop
			// them (dir-spec 3.3), and so do we.
			continue
		}
		if validNickname(e) {
			f.Nicknames = append(f.Nicknames, string(e))
		}
		// Entries of unknown form are ignored (forward compatibility).
	}
	p.families[key] = f
	return f
}

// familyIDs parses a family-ids line: "ed25519:<base64 32 bytes>" entries
// are checked; entries of other kinds ("kind:value") are kept as written.
func (p *mdParser) familyIDs(it item) ([]string, error) {
	if ids, ok := p.fids[string(it.args)]; ok {
		return ids, nil
	}
	ids := []string{}
	for rest := it.args; len(rest) > 0; {
		var e []byte
		e, rest = nextArg(rest)
		kind, val, ok := bytes.Cut(e, []byte(":"))
		if !ok || len(kind) == 0 || len(val) == 0 {
			return nil, parseErr(docMicrodesc, it.line, "malformed family-ids entry %.60q", e)
		}
		if string(kind) == "ed25519" {
			var k [32]byte
			if !parseB64Fixed(k[:], val) {
				return nil, parseErr(docMicrodesc, it.line, "malformed ed25519 family id %.60q", e)
			}
		}
		ids = append(ids, string(e))
	}
	p.fids[string(it.args)] = ids
	return ids, nil
}

// Ed25519FamilyIDs returns the 32-byte keys of the "ed25519:" entries of
// FamilyIDs.
func (m *Microdesc) Ed25519FamilyIDs() [][32]byte {
	var out [][32]byte
	for _, s := range m.FamilyIDs {
		if v, ok := strings.CutPrefix(s, "ed25519:"); ok {
			var k [32]byte
			if parseB64Fixed(k[:], []byte(v)) {
				out = append(out, k)
			}
		}
	}
	return out
}

// MatchMicrodescs pairs microdescriptors with the relays of a checked
// consensus by digest: rel[i] is the index in c.Relays of mds[i], or -1
// when mds[i] is not listed (stale or unrequested). matched counts the
// listed ones.
func MatchMicrodescs(c *Consensus, mds []Microdesc) (rel []int, matched int) {
	idx := c.MicrodescIndex()
	rel = make([]int, len(mds))
	for i := range mds {
		j, ok := idx[mds[i].Digest]
		if !ok {
			rel[i] = -1
			continue
		}
		rel[i] = j
		matched++
	}
	return rel, matched
}
