package netdoc

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/base64"
	"net/netip"
	"strings"
	"time"
)

// Consensus is a microdesc-flavoured network-status consensus (dir-spec
// 3.4.1, 3.9.2). A *Consensus is obtained only from
// (*UncheckedConsensus).Check (or the Dangerously bypass); treat it as
// immutable.
type Consensus struct {
	// Flavor is "microdesc".
	Flavor          string
	ConsensusMethod int
	ValidAfter      time.Time
	FreshUntil      time.Time
	ValidUntil      time.Time
	VoteDelay       time.Duration // voting-delay VoteSeconds
	DistDelay       time.Duration // voting-delay DistSeconds

	ClientVersions []string // recommended client versions; nil if absent
	ServerVersions []string // recommended relay versions; nil if absent
	KnownFlags     []string // known-flags, as listed

	// Protocol lists; nil when the line is absent.
	RecommendedClientProtocols *Protocols
	RecommendedRelayProtocols  *Protocols
	RequiredClientProtocols    *Protocols
	RequiredRelayProtocols     *Protocols

	Params           Params        // "params", in document order
	SharedRandPrev   *SharedRandom // nil if absent
	SharedRandCur    *SharedRandom // nil if absent
	Authorities      []DirSource   // the authority section, in order
	Relays           []RouterStatus
	BandwidthWeights Params // footer "bandwidth-weights"; nil if absent

	Signatures []DirectorySignature
	Digests    Digests

	// Verified holds, after Check, the outcome for each entry of
	// Signatures (same order).
	Verified []SignatureResult
}

// Digests of a consensus. The signed part runs from the start of the
// document through the space after the first "directory-signature".
type Digests struct {
	SignedSHA1   [20]byte // for "sha1" directory signatures
	SignedSHA256 [32]byte // for "sha256" directory signatures
	SignedSHA3   [32]byte // consensus-diff FromDigest of this document
	FullSHA3     [32]byte // consensus-diff ToDigest: SHA3-256 of the whole document
}

// Params is a list of Keyword=Int32 pairs ("params", "bandwidth-weights").
type Params []Param

// Param is one Keyword=Int32 pair.
type Param struct {
	Name  string
	Value int32
}

// Get returns the value of name, or def when it is absent.
func (p Params) Get(name string, def int32) int32 {
	for _, x := range p {
		if x.Name == name {
			return x.Value
		}
	}
	return def
}

// Lookup returns the value of name and whether it is present.
func (p Params) Lookup(name string) (int32, bool) {
	for _, x := range p {
		if x.Name == name {
			return x.Value, true
		}
	}
	return 0, false
}

// SharedRandom is a shared-rand-previous-value / -current-value.
type SharedRandom struct {
	NumReveals uint32
	Value      [32]byte
}

// DirSource is one authority in a consensus's authority section.
type DirSource struct {
	Nickname   string
	Identity   [20]byte // v3 identity (certificate fingerprint)
	Hostname   string
	IP         netip.Addr
	DirPort    uint16
	ORPort     uint16
	Contact    string
	VoteDigest [20]byte
	// Legacy marks a "-legacy" dir-source line for an old identity key;
	// it has no contact or vote-digest.
	Legacy bool
}

// RouterStatus is one relay entry of a microdesc consensus. It holds no
// reference into the parsed document.
type RouterStatus struct {
	Identity        [20]byte       // RSA identity digest ("r" line)
	MicrodescDigest [32]byte       // SHA-256 of the relay's microdescriptor ("m" line)
	Nickname        string         // shares one backing string with all other nicknames
	Addr            netip.AddrPort // IPv4 address and ORPort
	IPv6            netip.AddrPort // first IPv6 "a" line; invalid (zero) if none
	Flags           RelayFlags
	Bandwidth       uint32 // "w Bandwidth=", in kilobytes per second
	Version         string // "v" line, interned; "" if absent
	// Protocols is the "pr" line, interned (relays with the same line
	// share it; do not modify); nil if absent.
	Protocols  *Protocols
	published  int64 // unix seconds
	DirPort    uint16
	HasWeight  bool // a "w" line with Bandwidth= was present
	Unmeasured bool // "w ... Unmeasured=1"
}

// Published returns the "r" line publication time. Modern (method 28+)
// microdesc consensuses put a fixed 2038-01-01 placeholder here; clients
// should ignore it.
func (r *RouterStatus) Published() time.Time { return time.Unix(r.published, 0).UTC() }

// DigestAlgorithm names the digest of a directory signature.
type DigestAlgorithm uint8

// Directory signature digest algorithms.
const (
	DigestUnknown DigestAlgorithm = iota // unrecognized; such signatures are ignored
	DigestSHA1
	DigestSHA256
)

func (a DigestAlgorithm) String() string {
	switch a {
	case DigestSHA1:
		return "sha1"
	case DigestSHA256:
		return "sha256"
	}
	return "unknown"
}

// DirectorySignature is one "directory-signature" footer item.
type DirectorySignature struct {
	Algorithm        DigestAlgorithm
	Identity         [20]byte // v3 identity of the signing authority
	SigningKeyDigest [20]byte // SHA-1 of the signing key (DER)
	Signature        []byte
}

// CertKey names the certificate needed to check a signature: an
// authority's v3 identity and the digest of its signing key.
type CertKey struct {
	Identity         [20]byte
	SigningKeyDigest [20]byte
}

// UncheckedConsensus is a parsed consensus whose signatures and validity
// time have not been checked. Use Check to obtain the *Consensus.
type UncheckedConsensus struct {
	c *Consensus
}

// ValidAfter, FreshUntil and ValidUntil return the unchecked lifetime
// (for choosing which consensus to check or fetch).
func (u *UncheckedConsensus) ValidAfter() time.Time { return u.c.ValidAfter }

// FreshUntil: see ValidAfter.
func (u *UncheckedConsensus) FreshUntil() time.Time { return u.c.FreshUntil }

// ValidUntil: see ValidAfter.
func (u *UncheckedConsensus) ValidUntil() time.Time { return u.c.ValidUntil }

// Digests returns the document digests (needed for consensus diffs
// before checking).
func (u *UncheckedConsensus) Digests() Digests { return u.c.Digests }

// Signatures returns the unchecked directory signatures. Do not modify.
func (u *UncheckedConsensus) Signatures() []DirectorySignature { return u.c.Signatures }

// NumRelays returns the number of router entries.
func (u *UncheckedConsensus) NumRelays() int { return len(u.c.Relays) }

// DangerouslyAssumeChecked returns the consensus without checking its
// signatures or lifetime. It is for tools that inspect documents (such as
// a trimmed sample), never for choosing paths.
func (u *UncheckedConsensus) DangerouslyAssumeChecked() *Consensus { return u.c }

const docConsensus = "consensus"

// consensus sections, in document order.
const (
	secPreamble = iota
	secAuthority
	secRouters
	secFooter
	secSignatures
)

// preamble items that may appear at most once.
const (
	hVoteStatus = 1 << iota
	hMethod
	hValidAfter
	hFreshUntil
	hValidUntil
	hVotingDelay
	hClientVersions
	hServerVersions
	hKnownFlags
	hRecClient
	hRecRelay
	hReqClient
	hReqRelay
	hParams
	hSRPrev
	hSRCur
)

type consensusParser struct {
	t        tokenizer
	c        *Consensus
	sec      int
	seen     uint32
	known    []RelayFlags // bit for each known-flags entry (0 if unknown to us)
	knownRaw [][]byte

	// current relay entry state
	rs       *RouterStatus
	rsSeen   uint8
	rsLine   int
	nickOffs []uint32 // nickname arena offsets, one per relay plus end
	nicks    strings.Builder
	versions map[string]string
	protos   map[string]*Protocols

	// current dir-source state
	ds     *DirSource
	dsSeen uint8
	dsLine int

	footerSeen  bool
	bwSeen      bool
	signedEnd   int
	lastRelayID [20]byte
}

// Relay entry items that must appear at most (or exactly) once.
const (
	rsS = 1 << iota
	rsV
	rsPr
	rsW
	rsM
	rsA
)

// ParseConsensus parses a microdesc-flavoured consensus. It checks the
// syntax of every item this package understands, ignores unknown items
// (forward compatibility) and computes the document digests. It does not
// check signatures or times: see (*UncheckedConsensus).Check.
//
// The result does not reference doc.
func ParseConsensus(doc []byte) (*UncheckedConsensus, error) {
	p := &consensusParser{
		t:        newTokenizer(doc, docConsensus),
		c:        &Consensus{},
		versions: make(map[string]string),
		protos:   make(map[string]*Protocols),
	}
	// Size the relay slice once. Real entries are about 350 bytes; the cap
	// keeps a hostile document from making us preallocate more than about
	// 1.5 times its own size.
	n := min(bytes.Count(doc, []byte("\nr ")), len(doc)/128)
	p.c.Relays = make([]RouterStatus, 0, n)
	p.nickOffs = make([]uint32, 0, n+1)
	p.nicks.Grow(n * 19)
	if err := p.parse(); err != nil {
		return nil, err
	}
	p.c.Digests = computeDigests(doc, p.signedEnd)
	return &UncheckedConsensus{c: p.c}, nil
}

func computeDigests(doc []byte, signedEnd int) Digests {
	var d Digests
	signed := doc[:signedEnd]
	d.SignedSHA1 = sha1.Sum(signed)
	d.SignedSHA256 = sha256.Sum256(signed)
	var h sha3.SHA3 // zero value is SHA3-256
	h.Write(signed)
	h.Sum(d.SignedSHA3[:0])
	h.Write(doc[signedEnd:])
	h.Sum(d.FullSHA3[:0])
	return d
}

func (p *consensusParser) errf(line int, format string, args ...any) error {
	return parseErr(docConsensus, line, format, args...)
}

func (p *consensusParser) parse() error {
	it, ok, err := p.t.next()
	if err != nil {
		return err
	}
	if !ok {
		return p.errf(0, "empty document")
	}
	if err := p.version(it); err != nil {
		return err
	}
	for {
		it, ok, err := p.t.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := p.item(it); err != nil {
			return err
		}
	}
	return p.finish()
}

func (p *consensusParser) version(it item) error {
	if !kwIs(it.kw, "network-status-version") {
		return p.errf(it.line, "document does not start with network-status-version")
	}
	v, rest := nextArg(it.args)
	fl, _ := nextArg(rest)
	if string(v) != "3" {
		return unsupportedErr(docConsensus, it.line, "network-status-version %.10q, want 3", v)
	}
	if string(fl) != "microdesc" {
		if len(fl) == 0 {
			fl = []byte("ns")
		}
		return unsupportedErr(docConsensus, it.line, "consensus flavor %.20q, want microdesc", fl)
	}
	if it.hasObj {
		return p.errf(it.line, "unexpected object")
	}
	p.c.Flavor = "microdesc"
	return nil
}

func (p *consensusParser) item(it item) error {
	kw := it.kw
	// Section transitions.
	switch {
	case kwIs(kw, "dir-source"):
		if p.sec > secAuthority {
			return p.errf(it.line, "dir-source after router entries")
		}
		if p.sec == secPreamble {
			if err := p.endPreamble(it.line); err != nil {
				return err
			}
		}
		p.sec = secAuthority
	case kwIs(kw, "r"):
		if p.sec > secRouters {
			return p.errf(it.line, "router entry in the footer")
		}
		if p.sec == secPreamble {
			return p.errf(it.line, "router entry before the authority section")
		}
		p.sec = secRouters
	case kwIs(kw, "directory-footer"), kwIs(kw, "bandwidth-weights"):
		if p.sec == secSignatures {
			return p.errf(it.line, "%s after directory-signature", kw)
		}
		if p.sec < secAuthority {
			return p.errf(it.line, "%s before the authority section", kw)
		}
		p.sec = secFooter
	case kwIs(kw, "directory-signature"):
		if p.sec < secAuthority {
			return p.errf(it.line, "directory-signature before the authority section")
		}
		if p.sec != secSignatures {
			p.signedEnd = it.start + len("directory-signature ")
			if it.lineEnd-it.start <= len("directory-signature ") || p.t.doc[p.signedEnd-1] != ' ' {
				return p.errf(it.line, "directory-signature must be followed by a space and arguments")
			}
		}
		p.sec = secSignatures
	}
	if p.sec != secRouters && p.rs != nil {
		if err := p.endRelay(); err != nil {
			return err
		}
	}
	if p.sec != secAuthority && p.ds != nil {
		if err := p.endDirSource(); err != nil {
			return err
		}
	}
	switch p.sec {
	case secPreamble:
		return p.preamble(it)
	case secAuthority:
		return p.authority(it)
	case secRouters:
		return p.router(it)
	case secFooter:
		return p.footer(it)
	default:
		return p.signature(it)
	}
}

func (p *consensusParser) once(bit uint32, it item) error {
	if p.seen&bit != 0 {
		return p.errf(it.line, "duplicate %s", it.kw)
	}
	p.seen |= bit
	if it.hasObj {
		return p.errf(it.line, "unexpected object after %s", it.kw)
	}
	return nil
}

func (p *consensusParser) preamble(it item) error {
	c := p.c
	switch string(it.kw) {
	case "network-status-version":
		return p.errf(it.line, "duplicate network-status-version")
	case "vote-status":
		if err := p.once(hVoteStatus, it); err != nil {
			return err
		}
		if s, _ := nextArg(it.args); string(s) != "consensus" {
			return unsupportedErr(docConsensus, it.line, "vote-status %.20q, want consensus", s)
		}
	case "consensus-method":
		if err := p.once(hMethod, it); err != nil {
			return err
		}
		a, rest := nextArg(it.args)
		v, ok := parseUint(a, 1<<31-1)
		if !ok || v == 0 || len(rest) != 0 {
			return p.errf(it.line, "malformed consensus-method")
		}
		c.ConsensusMethod = int(v)
	case "valid-after", "fresh-until", "valid-until":
		bit, dst := uint32(hValidAfter), &c.ValidAfter
		if kwIs(it.kw, "fresh-until") {
			bit, dst = hFreshUntil, &c.FreshUntil
		} else if kwIs(it.kw, "valid-until") {
			bit, dst = hValidUntil, &c.ValidUntil
		}
		if err := p.once(bit, it); err != nil {
			return err
		}
		t, _, ok := timeArgs(it.args)
		if !ok {
			return p.errf(it.line, "malformed time in %s", it.kw)
		}
		*dst = t
	case "voting-delay":
		if err := p.once(hVotingDelay, it); err != nil {
			return err
		}
		var a [2][]byte
		_, ok := argN(it.args, a[:])
		v1, ok1 := parseUint(a[0], 1<<31-1)
		v2, ok2 := parseUint(a[1], 1<<31-1)
		if !ok || !ok1 || !ok2 {
			return p.errf(it.line, "malformed voting-delay")
		}
		c.VoteDelay, c.DistDelay = time.Duration(v1)*time.Second, time.Duration(v2)*time.Second
	case "client-versions", "server-versions":
		bit, dst := uint32(hClientVersions), &c.ClientVersions
		if kwIs(it.kw, "server-versions") {
			bit, dst = hServerVersions, &c.ServerVersions
		}
		if err := p.once(bit, it); err != nil {
			return err
		}
		a, _ := nextArg(it.args)
		*dst = []string{}
		if len(a) > 0 {
			*dst = strings.Split(string(a), ",")
		}
	case "known-flags":
		if err := p.once(hKnownFlags, it); err != nil {
			return err
		}
		args := it.args
		for len(args) > 0 {
			var f []byte
			f, args = nextArg(args)
			if len(p.knownRaw) >= 64 {
				return p.errf(it.line, "more than 64 known-flags")
			}
			p.knownRaw = append(p.knownRaw, f)
			p.known = append(p.known, flagByName(f))
			c.KnownFlags = append(c.KnownFlags, string(f))
		}
	case "recommended-client-protocols", "recommended-relay-protocols",
		"required-client-protocols", "required-relay-protocols":
		var bit uint32
		var dst **Protocols
		switch string(it.kw) {
		case "recommended-client-protocols":
			bit, dst = hRecClient, &c.RecommendedClientProtocols
		case "recommended-relay-protocols":
			bit, dst = hRecRelay, &c.RecommendedRelayProtocols
		case "required-client-protocols":
			bit, dst = hReqClient, &c.RequiredClientProtocols
		default:
			bit, dst = hReqRelay, &c.RequiredRelayProtocols
		}
		if err := p.once(bit, it); err != nil {
			return err
		}
		pr, msg := parseProtocols(it.args)
		if pr == nil {
			return p.errf(it.line, "%s: %s", it.kw, msg)
		}
		*dst = pr
	case "params":
		if err := p.once(hParams, it); err != nil {
			return err
		}
		ps, err := p.params(it)
		if err != nil {
			return err
		}
		c.Params = ps
	case "shared-rand-previous-value", "shared-rand-current-value":
		bit, dst := uint32(hSRPrev), &c.SharedRandPrev
		if kwIs(it.kw, "shared-rand-current-value") {
			bit, dst = hSRCur, &c.SharedRandCur
		}
		if err := p.once(bit, it); err != nil {
			return err
		}
		var a [2][]byte
		_, ok := argN(it.args, a[:])
		n, ok1 := parseUint(a[0], 1<<32-1)
		sr := &SharedRandom{NumReveals: uint32(n)}
		if !ok || !ok1 || !parseB64Fixed(sr.Value[:], a[1]) {
			return p.errf(it.line, "malformed %s", it.kw)
		}
		*dst = sr
	case "consensus-methods", "published", "flag-thresholds":
		return unsupportedErr(docConsensus, it.line, "%s: this is a vote, not a consensus", it.kw)
	}
	return nil
}

func (p *consensusParser) params(it item) (Params, error) {
	var ps Params
	args := it.args
	for len(args) > 0 {
		var a []byte
		a, args = nextArg(args)
		eq := indexByte(a, '=')
		if eq <= 0 {
			return nil, p.errf(it.line, "malformed %s entry %.40q", it.kw, a)
		}
		for _, ch := range a[:eq] {
			if !kwChar[ch] && ch != '_' {
				return nil, p.errf(it.line, "malformed %s name %.40q", it.kw, a[:eq])
			}
		}
		v, ok := parseInt32(a[eq+1:])
		if !ok {
			return nil, p.errf(it.line, "malformed %s value %.40q", it.kw, a)
		}
		ps = append(ps, Param{Name: string(a[:eq]), Value: v})
	}
	return ps, nil
}

func (p *consensusParser) endPreamble(line int) error {
	const need = hVoteStatus | hValidAfter | hFreshUntil | hValidUntil | hVotingDelay | hKnownFlags
	if p.seen&need != need {
		missing := []string{}
		for _, x := range []struct {
			bit  uint32
			name string
		}{{hVoteStatus, "vote-status"}, {hValidAfter, "valid-after"}, {hFreshUntil, "fresh-until"},
			{hValidUntil, "valid-until"}, {hVotingDelay, "voting-delay"}, {hKnownFlags, "known-flags"}} {
			if p.seen&x.bit == 0 {
				missing = append(missing, x.name)
			}
		}
		return p.errf(line, "preamble lacks %s", strings.Join(missing, ", "))
	}
	c := p.c
	if p.seen&hMethod == 0 {
		c.ConsensusMethod = 1
	}
	if !c.ValidAfter.Before(c.FreshUntil) || !c.FreshUntil.Before(c.ValidUntil) {
		return p.errf(line, "times out of order: need valid-after < fresh-until < valid-until")
	}
	return nil
}

func (p *consensusParser) authority(it item) error {
	switch string(it.kw) {
	case "dir-source":
		if p.ds != nil {
			if err := p.endDirSource(); err != nil {
				return err
			}
		}
		if it.hasObj {
			return p.errf(it.line, "unexpected object after dir-source")
		}
		var a [6][]byte
		_, ok := argN(it.args, a[:])
		if !ok {
			return p.errf(it.line, "dir-source needs 6 arguments")
		}
		ds := DirSource{Nickname: string(a[0]), Hostname: string(a[2])}
		nick := a[0]
		if bytes.HasSuffix(nick, []byte("-legacy")) {
			ds.Legacy = true
			nick = nick[:len(nick)-len("-legacy")]
		}
		var ok1, ok2, ok3, ok4 bool
		ds.Identity, ok1 = parseHex20(a[1])
		ds.IP, ok2 = parseIPv4(a[3])
		if !ok2 {
			ds.IP, ok2 = parseIPv6(a[3])
		}
		ds.DirPort, ok3 = parsePort(a[4])
		ds.ORPort, ok4 = parsePort(a[5])
		if !validNickname(nick) || !ok1 || !ok2 || !ok3 || !ok4 {
			return p.errf(it.line, "malformed dir-source")
		}
		for i := range p.c.Authorities {
			if p.c.Authorities[i].Identity == ds.Identity {
				return p.errf(it.line, "duplicate dir-source identity")
			}
		}
		p.c.Authorities = append(p.c.Authorities, ds)
		p.ds = &p.c.Authorities[len(p.c.Authorities)-1]
		p.dsSeen, p.dsLine = 0, it.line
	case "contact":
		if p.dsSeen&1 != 0 || p.ds.Legacy {
			return p.errf(it.line, "unexpected contact")
		}
		p.dsSeen |= 1
		p.ds.Contact = string(it.args)
	case "vote-digest":
		if p.dsSeen&2 != 0 || p.ds.Legacy {
			return p.errf(it.line, "unexpected vote-digest")
		}
		p.dsSeen |= 2
		a, _ := nextArg(it.args)
		d, ok := parseHex20(a)
		if !ok {
			return p.errf(it.line, "malformed vote-digest")
		}
		p.ds.VoteDigest = d
	}
	return nil
}

func (p *consensusParser) endDirSource() error {
	if !p.ds.Legacy && p.dsSeen != 3 {
		return p.errf(p.dsLine, "dir-source %s lacks contact or vote-digest", p.ds.Nickname)
	}
	p.ds = nil
	return nil
}

func (p *consensusParser) router(it item) error {
	if kwIs(it.kw, "r") {
		if p.rs != nil {
			if err := p.endRelay(); err != nil {
				return err
			}
		}
		return p.startRelay(it)
	}
	rs := p.rs
	switch string(it.kw) {
	case "a":
		// Keep the first IPv6 address; ignore others (dir-spec 3.4.1).
		a, _ := nextArg(it.args)
		ap, ok := parseAddrPort(a)
		if !ok {
			return p.errf(it.line, "malformed a line")
		}
		if ap.Addr().Is6() && !rs.IPv6.IsValid() {
			rs.IPv6 = ap
		}
		return nil
	case "s":
		if err := p.relayOnce(rsS, it); err != nil {
			return err
		}
		args := it.args
		for len(args) > 0 {
			var f []byte
			f, args = nextArg(args)
			idx := -1
			for i, k := range p.knownRaw {
				if bytes.Equal(k, f) {
					idx = i
					break
				}
			}
			if idx < 0 {
				return p.errf(it.line, "flag %.20q is not in known-flags", f)
			}
			rs.Flags |= p.known[idx]
		}
	case "v":
		if err := p.relayOnce(rsV, it); err != nil {
			return err
		}
		v, ok := p.versions[string(it.args)]
		if !ok {
			v = string(it.args)
			p.versions[v] = v
		}
		rs.Version = v
	case "pr":
		if err := p.relayOnce(rsPr, it); err != nil {
			return err
		}
		pr, ok := p.protos[string(it.args)]
		if !ok {
			var msg string
			if pr, msg = parseProtocols(it.args); pr == nil {
				return p.errf(it.line, "pr: %s", msg)
			}
			p.protos[string(it.args)] = pr
		}
		rs.Protocols = pr
	case "w":
		if err := p.relayOnce(rsW, it); err != nil {
			return err
		}
		args := it.args
		for len(args) > 0 {
			var kv []byte
			kv, args = nextArg(args)
			eq := indexByte(kv, '=')
			if eq <= 0 {
				return p.errf(it.line, "malformed w entry %.40q", kv)
			}
			v, ok := parseUint(kv[eq+1:], 1<<32-1)
			switch string(kv[:eq]) {
			case "Bandwidth":
				if !ok {
					return p.errf(it.line, "malformed Bandwidth")
				}
				rs.Bandwidth, rs.HasWeight = uint32(v), true
			case "Unmeasured":
				if !ok {
					return p.errf(it.line, "malformed Unmeasured")
				}
				rs.Unmeasured = v != 0
			}
		}
	case "m":
		if err := p.relayOnce(rsM, it); err != nil {
			return err
		}
		a, _ := nextArg(it.args)
		if len(a) != 43 || !parseB64Fixed(rs.MicrodescDigest[:], a) {
			return p.errf(it.line, "malformed m digest")
		}
	}
	return nil
}

func (p *consensusParser) relayOnce(bit uint8, it item) error {
	if p.rsSeen&bit != 0 {
		return p.errf(it.line, "duplicate %s line in router entry", it.kw)
	}
	p.rsSeen |= bit
	if it.hasObj {
		return p.errf(it.line, "unexpected object after %s", it.kw)
	}
	return nil
}

func (p *consensusParser) startRelay(it item) error {
	if len(p.c.Authorities) == 0 {
		return p.errf(it.line, "router entry before any dir-source")
	}
	if it.hasObj {
		return p.errf(it.line, "unexpected object after r")
	}
	var a [7][]byte
	_, ok := argN(it.args, a[:])
	if !ok {
		return p.errf(it.line, "r line needs 7 arguments (microdesc flavor)")
	}
	var rs RouterStatus
	if !validNickname(a[0]) {
		return p.errf(it.line, "malformed nickname %.40q", a[0])
	}
	if len(a[1]) != 27 || !parseB64Fixed(rs.Identity[:], a[1]) {
		return p.errf(it.line, "malformed identity")
	}
	pub, ok := parseTime(a[2], a[3])
	if !ok {
		return p.errf(it.line, "malformed publication time")
	}
	rs.published = pub.Unix()
	ip, ok := parseIPv4(a[4])
	orport, ok1 := parsePort(a[5])
	dirport, ok2 := parsePort(a[6])
	if !ok || !ok1 || !ok2 {
		return p.errf(it.line, "malformed address or port")
	}
	rs.Addr = netip.AddrPortFrom(ip, orport)
	rs.DirPort = dirport
	if n := len(p.c.Relays); n > 0 && bytes.Compare(rs.Identity[:], p.lastRelayID[:]) <= 0 {
		return p.errf(it.line, "router entries not in ascending identity order")
	}
	p.lastRelayID = rs.Identity
	p.nickOffs = append(p.nickOffs, uint32(p.nicks.Len()))
	p.nicks.Write(a[0])
	p.c.Relays = append(p.c.Relays, rs)
	p.rs = &p.c.Relays[len(p.c.Relays)-1]
	p.rsSeen, p.rsLine = 0, it.line
	return nil
}

func (p *consensusParser) endRelay() error {
	if p.rsSeen&rsS == 0 {
		return p.errf(p.rsLine, "router entry lacks an s line")
	}
	if p.rsSeen&rsM == 0 {
		return p.errf(p.rsLine, "router entry lacks an m line")
	}
	p.rs = nil
	return nil
}

func (p *consensusParser) footer(it item) error {
	switch string(it.kw) {
	case "directory-footer":
		if p.footerSeen || p.bwSeen {
			return p.errf(it.line, "unexpected directory-footer")
		}
		if len(it.args) != 0 || it.hasObj {
			return p.errf(it.line, "directory-footer takes no arguments")
		}
		p.footerSeen = true
	case "bandwidth-weights":
		if p.bwSeen || it.hasObj {
			return p.errf(it.line, "duplicate bandwidth-weights")
		}
		p.bwSeen = true
		ps, err := p.params(it)
		if err != nil {
			return err
		}
		if ps == nil {
			ps = Params{}
		}
		p.c.BandwidthWeights = ps
	}
	return nil
}

func (p *consensusParser) signature(it item) error {
	if !kwIs(it.kw, "directory-signature") {
		return p.errf(it.line, "unexpected %.40q after directory-signature", it.kw)
	}
	var a [3][]byte
	rest, ok := argN(it.args, a[:])
	if !ok {
		if _, ok2 := argN(it.args, a[:2]); !ok2 {
			return p.errf(it.line, "directory-signature needs identity and signing-key digest")
		}
		// No algorithm: sha1 (dir-spec 3.4.1).
		a[2], a[1], a[0] = a[1], a[0], []byte("sha1")
	}
	_ = rest
	var sig DirectorySignature
	switch string(a[0]) {
	case "sha1":
		sig.Algorithm = DigestSHA1
	case "sha256":
		sig.Algorithm = DigestSHA256
	}
	var ok1, ok2 bool
	sig.Identity, ok1 = parseHex20(a[1])
	sig.SigningKeyDigest, ok2 = parseHex20(a[2])
	if !ok1 || !ok2 {
		return p.errf(it.line, "malformed directory-signature digests")
	}
	if !it.hasObj || string(it.obj.label) != "SIGNATURE" {
		return p.errf(it.line, "directory-signature without a SIGNATURE object")
	}
	b, err := decodeObject(it.obj.body)
	if err != nil || len(b) == 0 {
		return p.errf(it.obj.line, "malformed signature object")
	}
	sig.Signature = b
	p.c.Signatures = append(p.c.Signatures, sig)
	return nil
}

func (p *consensusParser) finish() error {
	if p.sec != secSignatures {
		switch {
		case p.sec < secAuthority:
			return p.errf(p.t.line, "document ends in the preamble (truncated?)")
		default:
			return p.errf(p.t.line, "document has no directory-signature (truncated?)")
		}
	}
	c := p.c
	// Nicknames: one backing string for all.
	all := p.nicks.String()
	p.nickOffs = append(p.nickOffs, uint32(len(all)))
	for i := range c.Relays {
		c.Relays[i].Nickname = all[p.nickOffs[i]:p.nickOffs[i+1]]
	}
	return nil
}

// decodeObject decodes a base64 object body (newlines ignored).
func decodeObject(body []byte) ([]byte, error) {
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Decode(dst, body)
	if err != nil {
		return nil, err
	}
	return dst[:n:n], nil
}

// RelayByIdentity returns the index in Relays of the relay with the given
// RSA identity digest. Relays are sorted by identity, so this is a binary
// search.
func (c *Consensus) RelayByIdentity(id [20]byte) (int, bool) {
	lo, hi := 0, len(c.Relays)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(c.Relays[m].Identity[:], id[:]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(c.Relays) && c.Relays[lo].Identity == id {
		return lo, true
	}
	return 0, false
}

// MicrodescIndex maps each "m" digest to the index of its relay in
// Relays. It allocates a new map on each call; callers matching many
// microdescriptors build it once.
func (c *Consensus) MicrodescIndex() map[[32]byte]int {
	m := make(map[[32]byte]int, len(c.Relays))
	for i := range c.Relays {
		m[c.Relays[i].MicrodescDigest] = i
	}
	return m
}
