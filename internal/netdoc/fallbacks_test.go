package netdoc

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultFallbacks(t *testing.T) {
	fs := DefaultFallbacks()
	if len(fs) < 10 {
		t.Fatalf("only %d default fallbacks", len(fs))
	}
	auths := map[[20]byte]bool{}
	for _, a := range DefaultAuthorities() {
		auths[a.Fingerprint] = true
	}
	ids := map[[20]byte]bool{}
	addrs := map[netip.AddrPort]bool{}
	for i, f := range fs {
		if f.Fingerprint == ([20]byte{}) {
			t.Errorf("%d %s: zero fingerprint", i, f.Nickname)
		}
		if !validNickname([]byte(f.Nickname)) {
			t.Errorf("%d: bad nickname %q", i, f.Nickname)
		}
		if a := f.Addr.Addr(); !a.Is4() || !a.IsGlobalUnicast() || a.IsPrivate() || f.Addr.Port() == 0 {
			t.Errorf("%s: bad IPv4 ORPort %s", f.Nickname, f.Addr)
		}
		if f.IPv6.IsValid() {
			if a := f.IPv6.Addr(); !a.Is6() || a.Is4In6() || !a.IsGlobalUnicast() || a.IsPrivate() || a.Zone() != "" || f.IPv6.Port() == 0 {
				t.Errorf("%s: bad IPv6 ORPort %s", f.Nickname, f.IPv6)
			}
		}
		if ids[f.Fingerprint] {
			t.Errorf("%s: duplicate fingerprint %X", f.Nickname, f.Fingerprint)
		}
		ids[f.Fingerprint] = true
		for _, ap := range []netip.AddrPort{f.Addr, f.IPv6} {
			if ap.IsValid() && addrs[ap] {
				t.Errorf("%s: duplicate address %s", f.Nickname, ap)
			}
			addrs[ap] = true
		}
		if auths[f.Fingerprint] {
			t.Errorf("%s: a directory authority is not a fallback (dir-list-spec 2.4)", f.Nickname)
		}
		if i > 0 && bytes.Compare(fs[i-1].Fingerprint[:], f.Fingerprint[:]) >= 0 {
			t.Errorf("%s: not sorted by fingerprint", f.Nickname)
		}
		// String is FallbackDir syntax, without the nickname.
		g, err := ParseFallbackLine("FallbackDir " + f.String())
		want := f
		want.Nickname = ""
		if err != nil || g != want {
			t.Errorf("%s: String %q parses to %+v, %v", f.Nickname, f.String(), g, err)
		}
	}

	// A fresh copy each call.
	fs[0].Nickname, fs[0].Addr = "changed", netip.AddrPort{}
	if again := DefaultFallbacks(); again[0].Nickname == "changed" || !again[0].Addr.IsValid() {
		t.Error("DefaultFallbacks shares its backing array")
	}
}

// TestDefaultFallbacksInConsensus checks the built-in list against the real
// 2026 consensus it was derived from: every fallback is there with the same
// identity, IPv4 ORPort, IPv6 ORPort (if any) and nickname, and has the
// flags a fallback needs.
func TestDefaultFallbacksInConsensus(t *testing.T) {
	now := mustTime("2026-06-27 04:30:00")
	u, err := ParseConsensus(realDoc(t, path2026))
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Check(now, DefaultAuthorities(), checkedCerts(t, certs2026, now))
	if err != nil {
		t.Fatal(err)
	}
	const need = FlagRunning | FlagValid | FlagFast | FlagStable | FlagV2Dir
	withIPv6 := 0
	for _, f := range DefaultFallbacks() {
		i, ok := c.RelayByIdentity(f.Fingerprint)
		if !ok {
			t.Errorf("%s %X: not in the 2026 consensus", f.Nickname, f.Fingerprint)
			continue
		}
		rs := &c.Relays[i]
		if rs.Addr != f.Addr {
			t.Errorf("%s: consensus has %s, list has %s", f.Nickname, rs.Addr, f.Addr)
		}
		if f.IPv6.IsValid() {
			withIPv6++
			if rs.IPv6 != f.IPv6 {
				t.Errorf("%s: consensus has IPv6 %s, list has %s", f.Nickname, rs.IPv6, f.IPv6)
			}
		}
		if rs.Nickname != f.Nickname {
			t.Errorf("%X: consensus nickname %q, list has %q", f.Fingerprint, rs.Nickname, f.Nickname)
		}
		if !rs.Flags.Has(need) {
			t.Errorf("%s: lacks %s", f.Nickname, need&^rs.Flags)
		}
		if bad := rs.Flags & (FlagBadExit | FlagMiddleOnly); bad != 0 {
			t.Errorf("%s: has %s", f.Nickname, bad)
		}
	}
	if withIPv6 == 0 {
		t.Error("no fallback has an IPv6 ORPort")
	}
}

// A real entry of C tor's fallback_dirs.inc (June 2023; relay "dike"),
// its two C string constants joined.
const realFallbackLine = "37.120.171.188 orport=443 id=037BCD0EBDF7DB9F3D562DA27D463F0F78F1494B ipv6=[2a03:4000:6:543b::443]:443"

func TestParseFallbackLine(t *testing.T) {
	id := [20]byte{0x7b, 0xe6, 0x83, 0xe6, 0x5d, 0x48, 0x14, 0x13, 0x21, 0xc5, 0xed, 0x92, 0xf0, 0x75, 0xc5, 0x53, 0x64, 0xac, 0x71, 0x23}
	v4 := netip.MustParseAddrPort("193.23.244.244:443")
	v6 := netip.MustParseAddrPort("[2001:678:558:1000::244]:443")
	for _, tc := range []struct {
		line string
		want Fallback
	}{
		// The tor(1) form, with a DirPort.
		{"FallbackDir 193.23.244.244:80 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC7123",
			Fallback{Fingerprint: id, Addr: v4}},
		// C tor's built-in entries have no DirPort since 2021.
		{"193.23.244.244 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC7123 ipv6=[2001:678:558:1000::244]:443",
			Fallback{Fingerprint: id, Addr: v4, IPv6: v6}},
		// Options anywhere, lower-case hex, weight and unknown options
		// ignored, keyword and "ipv6" in any case, any blanks.
		{"  fallbackdir\torport=443  IPV6=[2001:678:558:1000:0:0:0:244]:443 weight=0.5 193.23.244.244:80 future=1 id=7be683e65d48141321c5ed92f075c55364ac7123 \n",
			Fallback{Fingerprint: id, Addr: v4, IPv6: v6}},
	} {
		got, err := ParseFallbackLine(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	f, err := ParseFallbackLine(realFallbackLine)
	if err != nil || f.String() != realFallbackLine {
		t.Errorf("real line: %+v %v; String %q", f, err, f.String())
	}
}

func TestParseFallbackLineErrors(t *testing.T) {
	const id = "id=7BE683E65D48141321C5ED92F075C55364AC7123"
	for _, tc := range []struct{ line, want string }{
		{"", "empty line"},
		{"FallbackDir", "empty line"},
		{"FallbackDir orport=443 " + id, "missing IPV4[:DIRPORT]"},
		{"193.23.244.244:80 " + id, "missing orport="},
		{"193.23.244.244:80 orport=443", "missing id="},
		{"193.23.244.244:80 orport=0 " + id, "bad orport"},
		{"193.23.244.244:80 orport=65536 " + id, "bad orport"},
		{"193.23.244.244:80 orport=https " + id, "bad orport"},
		{"193.23.244.244:80 orport= " + id, "bad orport"},
		{"193.23.244.244:80 orport=443 orport=443 " + id, "orport given twice"},
		{"193.23.244.244:80 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC71", "bad id"},
		{"193.23.244.244:80 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC712Z", "bad id"},
		{"193.23.244.244:80 orport=443 id=$7BE683E65D48141321C5ED92F075C55364AC712", "bad id"},
		{"193.23.244.244:80 orport=443 id=0000000000000000000000000000000000000000", "all zeros"},
		{"193.23.244.244:80 orport=443 " + id + " " + id, "id given twice"},
		{"193.23.244.244:80 orport=443 7BE6 83E6 " + id, "more than one address"},
		{"193.23.244.244:80 10.0.0.1:80 orport=443 " + id, "more than one address"},
		{"193.23.244.244:80 orport=443 bridge " + id, "more than one address"},
		{"[2001:678:558:1000::244]:80 orport=443 " + id, "bad address"},
		{"dannenberg.torauth.de:80 orport=443 " + id, "bad address"},
		{"0.0.0.0:80 orport=443 " + id, "bad address"},
		{"193.023.244.244:80 orport=443 " + id, "bad address"},
		{"193.23.244:80 orport=443 " + id, "bad address"},
		{"193.23.244.244:0 orport=443 " + id, "bad DirPort"},
		{"193.23.244.244:70000 orport=443 " + id, "bad DirPort"},
		{"193.23.244.244: orport=443 " + id, "bad DirPort"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=2001:678:558:1000::244:443", "bad ipv6"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=[2001:678:558:1000::244]", "bad ipv6"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=[2001:678:558:1000::244]:0", "bad ipv6"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=193.23.244.244:443", "bad ipv6"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=[::]:443", "bad ipv6"},
		{"193.23.244.244:80 orport=443 " + id + " ipv6=[2001:db8::1]:443 ipv6=[2001:db8::2]:443", "ipv6 given twice"},
	} {
		f, err := ParseFallbackLine(tc.line)
		if err == nil {
			t.Errorf("%q: accepted as %+v", tc.line, f)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v does not match ErrMalformed", tc.line, err)
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "FallbackDir line") {
			t.Errorf("%q: error %q, want it to mention %q", tc.line, err, tc.want)
		}
		if f != (Fallback{}) {
			t.Errorf("%q: error with a non-zero Fallback %+v", tc.line, f)
		}
	}
}

func FuzzParseFallbackLine(f *testing.F) {
	for _, fb := range DefaultFallbacks() {
		f.Add(fb.String())
	}
	f.Add(realFallbackLine)
	f.Add("FallbackDir 193.23.244.244:80 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC7123 weight=1.0")
	f.Add("193.23.244.244 orport=443 id=7BE683E65D48141321C5ED92F075C55364AC7123 ipv6=[::ffff:1.2.3.4]:1")
	f.Add("FallbackDir orport=1 id=0 ipv6=[::]:0 0.0.0.0:0")
	f.Fuzz(func(t *testing.T, line string) {
		fb, err := ParseFallbackLine(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: error %v does not match ErrMalformed", line, err)
			}
			return
		}
		if fb.Nickname != "" || fb.Fingerprint == ([20]byte{}) || !fb.Addr.Addr().Is4() || fb.Addr.Port() == 0 {
			t.Fatalf("%q: parsed to bad %+v", line, fb)
		}
		if fb.IPv6.IsValid() && (!fb.IPv6.Addr().Is6() || fb.IPv6.Port() == 0) {
			t.Fatalf("%q: parsed to bad IPv6 %s", line, fb.IPv6)
		}
		again, err := ParseFallbackLine(fb.String())
		if err != nil || again != fb {
			t.Fatalf("%q: String %q reparses to %+v, %v; want %+v", line, fb.String(), again, err, fb)
		}
	})
}
