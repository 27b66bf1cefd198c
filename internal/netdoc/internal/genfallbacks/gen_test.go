package main

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/netdoc"
)

// sampleInc follows dir-list-spec (format 4.0.0, as C tor ships it since
// 2021: no DirPort), with made-up relays.
const sampleInc = `/* type=fallback */
/* version=4.0.0 */
/* timestamp=20210412000000 */
/* source=offer-list */
//
// Generated on: Thu, 01 Jun 2023 13:35:33 +0000

"192.0.2.1 orport=9001 id=0101010101010101010101010101010101010101"
" ipv6=[2001:db8::1]:9001"
/* nickname=keepme */
/* extrainfo=0 */
/* ===== */
,
"192.0.2.2 orport=443 id=0202020202020202020202020202020202020202"
/* nickname=gone */
/* extrainfo=0 */
/* ===== */
,
"192.0.2.3 orport=443 id=0303030303030303030303030303030303030303"
/* nickname=moved */
/* extrainfo=0 */
/* ===== */
,
"192.0.2.4:80 orport=443 id=0404040404040404040404040404040404040404"
/* nickname=badexit */
/* extrainfo=1 */
/* ===== */
,
"192.0.2.5 orport=443 id=0505050505050505050505050505050505050505"
/* nickname=slow */
/* extrainfo=0 */
/* ===== */
,
"192.0.2.7 orport=443 id=0707070707070707070707070707070707070707"
/* nickname=newport */
/* extrainfo=0 */
/* ===== */
,
"192.0.2.6 orport=443 id=0606060606060606060606060606060606060606"
" ipv6=[2001:db8::6]:443"
/* nickname= */
/* extrainfo=0 */
/* ===== */
,
`

func id(b byte) (out [20]byte) {
	for i := range out {
		out[i] = b
	}
	return out
}

func TestParseInc(t *testing.T) {
	l, err := parseInc(sampleInc)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != "4.0.0" || l.Timestamp != "20210412000000" || l.Generated != "Thu, 01 Jun 2023 13:35:33 +0000" {
		t.Errorf("header: %+v", l)
	}
	if len(l.Entries) != 7 {
		t.Fatalf("%d entries, want 7", len(l.Entries))
	}
	want0 := netdoc.Fallback{Nickname: "keepme", Fingerprint: id(1),
		Addr: netip.MustParseAddrPort("192.0.2.1:9001"), IPv6: netip.MustParseAddrPort("[2001:db8::1]:9001")}
	if l.Entries[0] != want0 {
		t.Errorf("entry 0 = %+v, want %+v", l.Entries[0], want0)
	}
	if e := l.Entries[3]; e.Addr != netip.MustParseAddrPort("192.0.2.4:443") || e.Nickname != "badexit" {
		t.Errorf("entry with a DirPort: %+v", e)
	}
	if l.Entries[6].Nickname != "" {
		t.Errorf("empty nickname: got %q", l.Entries[6].Nickname)
	}
}

func TestParseIncErrors(t *testing.T) {
	entry := func(s string) string {
		return "/* type=fallback */\n/* version=4.0.0 */\n" + s
	}
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "\n\n", "empty list"},
		{"no type", "/* version=4.0.0 */\n", "type=fallback"},
		{"other type", "/* type=authority */\n", "type=fallback"},
		{"unknown version", "/* type=fallback */\n/* version=5.0.0 */\n", "format version"},
		{"no version", "/* type=fallback */\n\"192.0.2.1 orport=1 id=0101010101010101010101010101010101010101\"\n/* nickname=a */\n/* ===== */\n", "no /* version"},
		{"no entries", entry("/* ===== */\n"), "no entries"},
		{"bad entry", entry("\"192.0.2.1 orport=0 id=0101010101010101010101010101010101010101\"\n/* nickname=a */\n/* ===== */\n"), "line 3"},
		{"no nickname", entry("\"192.0.2.1 orport=1 id=0101010101010101010101010101010101010101\"\n/* ===== */\n"), "no nickname"},
		{"two nicknames", entry("\"192.0.2.1 orport=1 id=0101010101010101010101010101010101010101\"\n/* nickname=a */\n/* nickname=b */\n/* ===== */\n"), "second nickname"},
		{"bad nickname", entry("\"192.0.2.1 orport=1 id=0101010101010101010101010101010101010101\"\n/* nickname=a-b */\n/* ===== */\n"), "bad nickname"},
		{"duplicate", entry("\"192.0.2.1 orport=1 id=0101010101010101010101010101010101010101\"\n/* nickname=a */\n/* ===== */\n,\n" +
			"\"192.0.2.2 orport=1 id=0101010101010101010101010101010101010101\"\n/* nickname=b */\n/* ===== */\n"), "already listed at line 3"},
		{"escape", entry("\"192.0.2.1 orport=1 id=01\\x\"\n"), "simple C string"},
		{"junk", entry("int x;\n"), "unexpected"},
	} {
		_, err := parseInc(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

const good = netdoc.FlagRunning | netdoc.FlagValid | netdoc.FlagFast | netdoc.FlagStable | netdoc.FlagV2Dir

func sampleConsensus() *netdoc.Consensus {
	rs := func(b byte, nick, addr string, flags netdoc.RelayFlags, v6 string) netdoc.RouterStatus {
		r := netdoc.RouterStatus{Identity: id(b), Nickname: nick, Addr: netip.MustParseAddrPort(addr), Flags: flags}
		if v6 != "" {
			r.IPv6 = netip.MustParseAddrPort(v6)
		}
		return r
	}
	return &netdoc.Consensus{Relays: []netdoc.RouterStatus{ // ascending identity
		rs(1, "keepme", "192.0.2.1:9001", good|netdoc.FlagGuard, "[2001:db8::1]:9001"),
		rs(3, "moved", "192.0.2.33:443", good, ""),
		rs(4, "badexit", "192.0.2.4:443", good|netdoc.FlagExit|netdoc.FlagBadExit, ""),
		rs(5, "slow", "192.0.2.5:443", good&^(netdoc.FlagFast|netdoc.FlagV2Dir), ""),
		rs(6, "renamed", "192.0.2.6:443", good, "[2001:db8::66]:443"),
		rs(7, "newport", "192.0.2.7:9001", good, ""),
	}}
}

func TestFilter(t *testing.T) {
	l, err := parseInc(sampleInc)
	if err != nil {
		t.Fatal(err)
	}
	r := filter(l, sampleConsensus())
	want := [numReasons]int{kept: 2, notListed: 1, moved: 1, portChanged: 1, badFlag: 1, missingFlag: 1}
	if r.Count != want {
		t.Errorf("counts %v, want %v", r.Count, want)
	}
	if r.Lacking["Fast"] != 1 || r.Lacking["V2Dir"] != 1 || len(r.Lacking) != 2 {
		t.Errorf("lacking %v", r.Lacking)
	}
	if len(r.Kept) != 2 {
		t.Fatalf("kept %+v", r.Kept)
	}
	if k := r.Kept[0]; k.Fingerprint != id(1) || k.IPv6 != netip.MustParseAddrPort("[2001:db8::1]:9001") {
		t.Errorf("kept[0] = %+v: IPv6 listed in the consensus should stay", k)
	}
	if k := r.Kept[1]; k.Fingerprint != id(6) || k.IPv6.IsValid() || k.Nickname != "renamed" {
		t.Errorf("kept[1] = %+v: IPv6 not in the consensus should go, nickname should be the consensus's", k)
	}
	if r.IPv6Listed != 2 || r.IPv6Kept != 1 || r.IPv6Dropped != 1 || r.Renamed != 1 {
		t.Errorf("ipv6 %d/%d/%d renamed %d", r.IPv6Listed, r.IPv6Kept, r.IPv6Dropped, r.Renamed)
	}
	var log bytes.Buffer
	r.report(&log)
	for _, s := range []string{"2 of 7 entries kept; 5 dropped", "move moved", "port newport", "now 192.0.2.33:443", "BadExit", "lacks Fast V2Dir", "ipv6 dropped"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, log.String())
		}
	}
}

func TestRender(t *testing.T) {
	l, err := parseInc(sampleInc)
	if err != nil {
		t.Fatal(err)
	}
	l.Source = "test"
	src, err := render(filter(l, sampleConsensus()))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	if !regexp.MustCompile(`(?m)^// Code generated .* DO NOT EDIT\.$`).MatchString(s) {
		t.Errorf("no generated-code marker:\n%s", s)
	}
	for _, want := range []string{
		"derived from two real documents",
		"var defaultFallbacks = []Fallback{",
		`netip.MustParseAddrPort("192.0.2.1:9001")`,
		`netip.MustParseAddrPort("[2001:db8::1]:9001")`,
		"// 0101010101010101010101010101010101010101",
		"\n\npackage netdoc\n", // the header is not a package doc comment
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "2001:db8::66") || strings.Contains(s, "192.0.2.2:") {
		t.Errorf("output has a dropped address:\n%s", s)
	}
}
