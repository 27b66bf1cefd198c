package main

import (
	"bytes"
	"fmt"
	"go/format"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// incList is a parsed fallback_dirs.inc (dir-list-spec 2).
type incList struct {
	Version   string // header "version=", e.g. "4.0.0"
	Timestamp string // header "timestamp="
	Generated string // "// Generated on: ..." line, if any
	Source    string // where the file came from (flag), for the header
	SHA256    [32]byte
	// Entries in file order; Nickname is the "nickname=" comment.
	Entries []netdoc.Fallback
}

// parseInc parses a dir-list-spec fallback list. It is stricter than the
// spec asks of parsers ("SHOULD ignore" a bad entry): a line it does not
// understand is an error, so that a format change is noticed by a person
// instead of silently shrinking the list.
func parseInc(text string) (incList, error) {
	var (
		l         incList
		parts     []string // C string constants of the entry being read
		nick      string
		haveNick  bool
		entryLine int
		sawType   bool
		seen      = map[[20]byte]int{}
	)
	flush := func() error {
		if len(parts) == 0 {
			if haveNick {
				return fmt.Errorf("line %d: nickname comment outside an entry", entryLine)
			}
			return nil
		}
		f, err := netdoc.ParseFallbackLine(strings.Join(parts, ""))
		if err != nil {
			return fmt.Errorf("entry at line %d: %w", entryLine, err)
		}
		if !haveNick {
			return fmt.Errorf("entry at line %d: no nickname comment", entryLine)
		}
		if prev, dup := seen[f.Fingerprint]; dup {
			return fmt.Errorf("entry at line %d: identity %X already listed at line %d", entryLine, f.Fingerprint, prev)
		}
		seen[f.Fingerprint] = entryLine
		f.Nickname = nick
		l.Entries = append(l.Entries, f)
		parts, nick, haveNick = nil, "", false
		return nil
	}
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if !sawType && line != "" {
			if k, v, ok := structured(line); !ok || k != "type" || v != "fallback" {
				return l, fmt.Errorf("line %d: want /* type=fallback */ first, got %.60q", n, line)
			}
			sawType = true
			continue
		}
		switch {
		case line == "" || line == ",":
		case strings.HasPrefix(line, "//"):
			if g, ok := strings.CutPrefix(strings.TrimSpace(line[2:]), "Generated on:"); ok {
				l.Generated = strings.TrimSpace(g)
			}
		case strings.HasPrefix(line, `"`):
			s, ok := strings.CutSuffix(line[1:], `"`)
			if !ok || len(line) < 2 || strings.ContainsAny(s, `"\`) {
				return l, fmt.Errorf("line %d: not a simple C string constant: %.60q", n, line)
			}
			if len(parts) == 0 {
				entryLine = n
			}
			parts = append(parts, s)
		case isSeparator(line):
			if err := flush(); err != nil {
				return l, err
			}
		default:
			k, v, ok := structured(line)
			if !ok {
				return l, fmt.Errorf("line %d: unexpected %.60q", n, line)
			}
			switch {
			case k == "nickname" && len(parts) > 0:
				if haveNick {
					return l, fmt.Errorf("line %d: second nickname in an entry", n)
				}
				if v != "" && !validNickname(v) {
					return l, fmt.Errorf("line %d: bad nickname %.40q", n, v)
				}
				nick, haveNick = v, true
			case k == "version" && len(l.Entries) == 0 && len(parts) == 0:
				major, _, _ := strings.Cut(v, ".")
				if major != "2" && major != "3" && major != "4" {
					return l, fmt.Errorf("line %d: format version %q: only 2.x-4.x are known (dir-list-spec)", n, v)
				}
				l.Version = v
			case k == "timestamp" && len(l.Entries) == 0 && len(parts) == 0:
				l.Timestamp = v
			}
			// Other key=value comments (extrainfo, source, future
			// fields) carry nothing a client needs.
		}
	}
	if !sawType {
		return l, fmt.Errorf("empty list")
	}
	if err := flush(); err != nil {
		return l, err
	}
	if l.Version == "" {
		return l, fmt.Errorf("no /* version=... */ header")
	}
	if len(l.Entries) == 0 {
		return l, fmt.Errorf("no entries")
	}
	return l, nil
}

// structured splits a "/* key=value */" comment.
func structured(line string) (key, value string, ok bool) {
	s, ok1 := strings.CutPrefix(line, "/*")
	s, ok2 := strings.CutSuffix(s, "*/")
	if !ok1 || !ok2 {
		return "", "", false
	}
	return strings.Cut(strings.TrimSpace(s), "=")
}

func isSeparator(line string) bool {
	s, ok1 := strings.CutPrefix(line, "/*")
	s, ok2 := strings.CutSuffix(s, "*/")
	return ok1 && ok2 && strings.TrimSpace(s) == "====="
}

func validNickname(s string) bool {
	if len(s) == 0 || len(s) > 19 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Why an entry was dropped; each dropped entry counts under the first
// reason that applies, in this order.
type reason int

const (
	kept        reason = iota
	notListed          // identity not in the consensus
	moved              // identity listed, at another IPv4 address
	portChanged        // identity listed at the same IPv4 address, another ORPort
	badFlag            // BadExit or MiddleOnly
	missingFlag        // lacks one of the required flags
	numReasons
)

var reasonText = [numReasons]string{
	kept:        "kept",
	notListed:   "RSA identity not in the consensus",
	moved:       "IPv4 address changed",
	portChanged: "same IPv4 address, ORPort changed",
	badFlag:     "BadExit or MiddleOnly",
	missingFlag: "lacks a required flag (Running, Valid, Fast, Stable, V2Dir)",
}

const (
	requiredFlags  = netdoc.FlagRunning | netdoc.FlagValid | netdoc.FlagFast | netdoc.FlagStable | netdoc.FlagV2Dir
	forbiddenFlags = netdoc.FlagBadExit | netdoc.FlagMiddleOnly
)

type outcome struct {
	Listed netdoc.Fallback // as in the .inc
	Why    reason
	Detail string
}

type result struct {
	List            incList
	ValidAfter      time.Time
	NumRelays       int
	ConsensusSHA256 [32]byte
	CheckedAt       time.Time
	SignedBy        int

	Outcomes []outcome
	Kept     []netdoc.Fallback // sorted by fingerprint
	Count    [numReasons]int
	// Lacking counts, among the missingFlag entries, how many lack each
	// required flag (an entry may lack several).
	Lacking map[string]int
	// IPv6 among kept entries: listed in the .inc; kept; dropped because
	// the consensus has no or another IPv6 ORPort.
	IPv6Listed, IPv6Kept, IPv6Dropped int
	Renamed                           int // kept entries whose nickname changed
}

// filter keeps the entries of l that c still vouches for.
func filter(l incList, c *netdoc.Consensus) result {
	r := result{List: l, ValidAfter: c.ValidAfter, NumRelays: len(c.Relays), Lacking: map[string]int{}}
	for _, f := range l.Entries {
		o := outcome{Listed: f}
		i, ok := c.RelayByIdentity(f.Fingerprint)
		var rs *netdoc.RouterStatus
		if ok {
			rs = &c.Relays[i]
		}
		switch {
		case !ok:
			o.Why = notListed
		case rs.Addr.Addr() != f.Addr.Addr():
			o.Why, o.Detail = moved, fmt.Sprintf("now %s", rs.Addr)
		case rs.Addr.Port() != f.Addr.Port():
			o.Why, o.Detail = portChanged, fmt.Sprintf("now %s", rs.Addr)
		case rs.Flags&forbiddenFlags != 0:
			o.Why, o.Detail = badFlag, (rs.Flags & forbiddenFlags).String()
		case !rs.Flags.Has(requiredFlags):
			lack := requiredFlags &^ rs.Flags
			o.Why, o.Detail = missingFlag, "lacks "+lack.String()
			for _, name := range strings.Fields(lack.String()) {
				r.Lacking[name]++
			}
		default:
			k := netdoc.Fallback{Nickname: rs.Nickname, Fingerprint: f.Fingerprint, Addr: f.Addr}
			if k.Nickname != f.Nickname {
				r.Renamed++
				o.Detail = "renamed " + rs.Nickname
			}
			if f.IPv6.IsValid() {
				r.IPv6Listed++
				if rs.IPv6 == f.IPv6 {
					k.IPv6 = f.IPv6
					r.IPv6Kept++
				} else {
					r.IPv6Dropped++
					now := "none"
					if rs.IPv6.IsValid() {
						now = rs.IPv6.String()
					}
					o.Detail = strings.TrimSpace(o.Detail + fmt.Sprintf(" ipv6 dropped (consensus: %s)", now))
				}
			}
			r.Kept = append(r.Kept, k)
		}
		r.Count[o.Why]++
		r.Outcomes = append(r.Outcomes, o)
	}
	slices.SortFunc(r.Kept, func(a, b netdoc.Fallback) int {
		return bytes.Compare(a.Fingerprint[:], b.Fingerprint[:])
	})
	return r
}

// report writes every entry's outcome and the counts.
func (r *result) report(w io.Writer) {
	for _, o := range r.Outcomes {
		fmt.Fprintf(w, "%-4s %-19s %X %s", shortReason(o.Why), o.Listed.Nickname, o.Listed.Fingerprint, o.Listed.Addr)
		if o.Detail != "" {
			fmt.Fprintf(w, ": %s", o.Detail)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, line := range r.summary() {
		fmt.Fprintln(w, line)
	}
}

func shortReason(x reason) string {
	return [numReasons]string{"keep", "gone", "move", "port", "bad", "flag"}[x]
}

// summary is the human-readable account shared by the stderr report and
// the generated file's header.
func (r *result) summary() []string {
	total := len(r.List.Entries)
	out := []string{
		fmt.Sprintf("%d of %d entries kept; %d dropped:", len(r.Kept), total, total-len(r.Kept)),
	}
	for x := notListed; x < numReasons; x++ {
		s := fmt.Sprintf("  %3d  %s", r.Count[x], reasonText[x])
		if x == missingFlag && len(r.Lacking) > 0 {
			var parts []string
			for _, name := range slices.Sorted(maps.Keys(r.Lacking)) {
				parts = append(parts, fmt.Sprintf("%s %d", name, r.Lacking[name]))
			}
			s += " [lacking: " + strings.Join(parts, ", ") + "]"
		}
		out = append(out, s)
	}
	out = append(out, fmt.Sprintf("IPv6 ORPorts of kept entries: %d listed, %d kept, %d dropped (the consensus has another or none).",
		r.IPv6Listed, r.IPv6Kept, r.IPv6Dropped))
	out = append(out, fmt.Sprintf("Nicknames are the consensus's (%d kept relays were renamed since the list).", r.Renamed))
	return out
}

// render returns the gofmt'ed fallbacks_gen.go.
func render(r result) ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// Code generated by genfallbacks from two real documents; DO NOT EDIT.\n")
	p("//\n")
	p("// defaultFallbacks is data derived from two real documents:\n")
	p("//\n")
	src := r.List.Source
	if src == "" {
		src = "source not given"
	}
	p("//  1. C tor's fallback directory list, src/app/config/fallback_dirs.inc\n")
	p("//     from %s,\n", src)
	p("//     generated on %s, format version %s,\n", orUnknown(r.List.Generated), r.List.Version)
	p("//     SHA-256 %x:\n", r.List.SHA256)
	p("//     %d entries.\n", len(r.List.Entries))
	p("//  2. The real Tor network's microdesc consensus valid-after %s UTC\n", r.ValidAfter.UTC().Format(time.DateTime))
	p("//     (%d relays), SHA-256 %x,\n", r.NumRelays, r.ConsensusSHA256)
	p("//     checked at %s UTC against DefaultAuthorities and the\n", r.CheckedAt.Format(time.DateTime))
	p("//     authority certificates cached with it (valid signatures from %d authorities).\n", r.SignedBy)
	p("//\n")
	p("// An entry of (1) is kept only if (2) lists the same RSA identity at the\n")
	p("// same IPv4 address and ORPort with the flags Running, Valid, Fast, Stable\n")
	p("// and V2Dir and without BadExit or MiddleOnly; its IPv6 ORPort is kept only\n")
	p("// if (2) lists that exact IPv6 ORPort in an \"a\" line. Dropped entries count\n")
	p("// under the first reason that applies.\n")
	p("//\n")
	for _, line := range r.summary() {
		p("// %s\n", line)
	}
	p("//\n")
	p("// Entries are sorted by identity. To regenerate, see docs/fallbacks.md.\n")
	p("\n")
	p("package netdoc\n\n")
	p("import \"net/netip\"\n\n")
	p("var defaultFallbacks = []Fallback{\n")
	for _, f := range r.Kept {
		p("{\n")
		p("Nickname: %q,\n", f.Nickname)
		p("Fingerprint: [20]byte{ // %X\n", f.Fingerprint)
		for i, c := range f.Fingerprint {
			p("0x%02x,", c)
			if i == 9 {
				p("\n")
			}
		}
		p("\n},\n")
		p("Addr: netip.MustParseAddrPort(%q),\n", f.Addr.String())
		if f.IPv6.IsValid() {
			p("IPv6: netip.MustParseAddrPort(%q),\n", f.IPv6.String())
		}
		p("},\n")
	}
	p("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("BUG: generated source does not parse: %w", err)
	}
	return out, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown date"
	}
	return s
}
