package netdoc

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseIPv6(t *testing.T) {
	for _, s := range []string{
		"::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1:0:0:1", "fe80::1:2:3:4:5", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6::",
		"::ffff:1.2.3.4", "64:ff9b::192.0.2.33", "2a0a:4cc0:c1:2aac::1", "ABCD::EF",
		"", ":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "1:2:3:4:5:6:7::8", "::1.2.3", "::1.2.3.04",
		"1.2.3.4", "::1:", ":1::", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0", "[::1]", "::-1",
	} {
		want, werr := netip.ParseAddr(s)
		got, ok := parseIPv6([]byte(s))
		wantOK := werr == nil && want.Is6() && want.Zone() == ""
		if ok != wantOK || ok && got != want {
			t.Errorf("%q: got %v %v, want %v %v", s, got, ok, want, wantOK)
		}
	}
}

func TestParseIPv4(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "", "a.b.c.d", "1..2.3"} {
		want, werr := netip.ParseAddr(s)
		got, ok := parseIPv4([]byte(s))
		wantOK := werr == nil && want.Is4()
		if ok != wantOK || ok && got != want {
			t.Errorf("%q: got %v %v, want %v %v", s, got, ok, want, wantOK)
		}
	}
}

func TestParseTimeAndNumbers(t *testing.T) {
	for _, tt := range []struct {
		d, c string
		ok   bool
	}{
		{"2026-06-27", "04:00:00", true}, {"2024-02-29", "23:59:59", true}, {"2023-02-29", "00:00:00", false},
		{"2026-13-01", "00:00:00", false}, {"2026-00-01", "00:00:00", false}, {"2026-01-32", "00:00:00", false},
		{"2026-01-01", "24:00:00", false}, {"2026-01-01", "00:60:00", false}, {"2026-1-01", "00:00:00", false},
		{"2026-01-01", "0:00:000", false}, {"2026+01-01", "00:00:00", false}, {"2026-01-01", "00:00:+1", false},
	} {
		got, ok := parseTime([]byte(tt.d), []byte(tt.c))
		if ok != tt.ok {
			t.Errorf("%s %s: ok = %v", tt.d, tt.c, ok)
			continue
		}
		if ok {
			want, err := time.Parse(time.DateTime, tt.d+" "+tt.c)
			if err != nil || !got.Equal(want) {
				t.Errorf("%s %s: %v, want %v", tt.d, tt.c, got, want)
			}
		}
	}
	for _, tt := range []struct {
		s  string
		v  int32
		ok bool
	}{{"0", 0, true}, {"-2147483648", -2147483648, true}, {"2147483647", 2147483647, true}, {"2147483648", 0, false},
		{"-2147483649", 0, false}, {"", 0, false}, {"-", 0, false}, {"1e3", 0, false}, {"+7", 7, true}, {"99999999999999999999999", 0, false}} {
		v, ok := parseInt32([]byte(tt.s))
		if ok != tt.ok || v != tt.v {
			t.Errorf("parseInt32(%q) = %d %v", tt.s, v, ok)
		}
	}
}

func TestProtocols(t *testing.T) {
	p, msg := parseProtocols([]byte("Link=1-5 LinkAuth=1,3 Relay=1-2,4 HSDir= Foo=0,63 Conflux=1"))
	if p == nil {
		t.Fatal(msg)
	}
	if p.Mask(ProtoLink) != 0b111110 || !p.Supports(ProtoLinkAuth, 3) || p.Supports(ProtoLinkAuth, 2) ||
		p.Versions("Foo") != 1|1<<63 || p.Mask(ProtoHSDir) != 0 || p.Versions("Nope") != 0 || !p.Supports(ProtoConflux, 1) {
		t.Errorf("masks %v", p)
	}
	if got := p.String(); got != "Conflux=1 Foo=0,63 Link=1-5 LinkAuth=1,3 Relay=1-2,4" {
		t.Errorf("String %q", got)
	}
	var nilp *Protocols
	if nilp.Supports(ProtoLink, 1) || nilp.String() != "" || !p.Covers(nil) {
		t.Errorf("nil protocols")
	}
	for _, bad := range []string{"Link", "=1", "Link=1-", "Link=-1", "Link=1,,2", "Link=1,", "Link=64", "Link=2-1", "Link=1 Link=2", "Li.nk=1", "Link=a"} {
		if p, _ := parseProtocols([]byte(bad)); p != nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if ProtoConflux.String() != "Conflux" || Proto(99).String() != "Proto(99)" {
		t.Errorf("Proto.String")
	}
}
