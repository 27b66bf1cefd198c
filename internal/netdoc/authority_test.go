package netdoc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseDirAuthority(t *testing.T) {
	for _, tt := range []struct {
		line string
		want string // String() of the result; "" for an error
	}{
		{"DirAuthority auth0 orport=24000 no-v2 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF",
			"auth0 orport=24000 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF"},
		{"auth0 orport=24000 v3ident=0123456789abcdef0123456789abcdef01234567 127.0.0.1:24100 89AB CDEF 0123 4567 89AB CDEF 0123 4567 89AB CDEF",
			"auth0 orport=24000 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF"},
		{"  dirauthority x hs v3 weight=5 orport=1 ipv6=[2001:db8::1]:443 bridge 10.0.0.1:80 0000000000000000000000000000000000000000  ",
			"x orport=1 bridge ipv6=[2001:db8::1]:443 10.0.0.1:80 0000000000000000000000000000000000000000"},
		{"auth0 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},                         // no orport
		{"auth0 orport=1 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDE", ""},                 // short fingerprint
		{"auth0 orport=1 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEFFF", ""},              // long fingerprint
		{"auth0 orport=1 127.0.0.1 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},                      // no dirport
		{"auth0 orport=1 v3ident=12 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},     // bad v3ident
		{"auth0 orport=0 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},                // port 0
		{"auth0 orport=1 ipv6=1.2.3.4:5 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""}, // ipv6= with IPv4
		{"auth_0 orport=1 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},               // bad nickname
		{"auth0 orport=1 [::1]:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF", ""},                    // not IPv4
		{"auth0 orport=1 v3ident=0123456789ABCDEF0123456789ABCDEF01234567", ""},                        // no address
		{"", ""},
	} {
		a, err := ParseDirAuthority(tt.line)
		if tt.want == "" {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: err = %v, want ErrMalformed", tt.line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if a.String() != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.line, a, tt.want)
		}
		if b, err := ParseDirAuthority(a.String()); err != nil || b != a {
			t.Errorf("round trip of %s: %v", a, err)
		}
	}
}

func TestParseAuthorityFile(t *testing.T) {
	text := `# test network
DirAuthority auth0 orport=24000 no-v2 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24100 89ABCDEF0123456789ABCDEF0123456789ABCDEF

DirAuthority auth1 orport=24001 no-v2 v3ident=1123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:24101 99ABCDEF0123456789ABCDEF0123456789ABCDEF # trailing
   # indented comment
`
	as, err := ParseAuthorityFile(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[1].Nickname != "auth1" || as[1].ORAddr().String() != "127.0.0.1:24001" || as[1].Addr.Port() != 24101 {
		t.Errorf("%+v", as)
	}
	_, err = ParseAuthorityFile(text + "DirAuthority broken\n")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 6 {
		t.Errorf("err = %v, want an error on line 6", err)
	}
	if _, err := ParseAuthorityFile("# nothing\n\n"); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty file: err = %v", err)
	}
}

// TestDefaultAuthoritiesMatch2026 checks every built-in authority against
// the 2026 consensus: its dir-source line (v3 identity, address, ports)
// and its Authority-flagged router entry (relay fingerprint, ORPort,
// DirPort, IPv6); and that the list verifies that consensus.
func TestDefaultAuthoritiesMatch2026(t *testing.T) {
	u, err := ParseConsensus(realDoc(t, path2026))
	if err != nil {
		t.Fatal(err)
	}
	c := u.DangerouslyAssumeChecked()
	as := DefaultAuthorities()
	if len(as) != 9 {
		t.Fatalf("%d authorities", len(as))
	}
	seen := map[string]bool{}
	for _, a := range as {
		seen[a.Nickname] = true
		var ds *DirSource
		for i := range c.Authorities {
			if c.Authorities[i].Nickname == a.Nickname {
				ds = &c.Authorities[i]
			}
		}
		if ds == nil {
			t.Errorf("%s: no dir-source", a.Nickname)
			continue
		}
		if ds.Identity != a.V3Ident || ds.IP != a.Addr.Addr() || ds.DirPort != a.Addr.Port() || ds.ORPort != a.ORPort {
			t.Errorf("%s: dir-source %X %v %d %d; built in %X %v %d", a.Nickname, ds.Identity, ds.IP, ds.DirPort, ds.ORPort, a.V3Ident, a.Addr, a.ORPort)
		}
		i, ok := c.RelayByIdentity(a.Fingerprint)
		if !ok {
			t.Errorf("%s: relay %X not in the consensus", a.Nickname, a.Fingerprint)
			continue
		}
		r := c.Relays[i]
		if r.Nickname != a.Nickname || !r.Flags.Has(FlagAuthority) || r.Addr != a.ORAddr() || r.DirPort != a.Addr.Port() || r.IPv6 != a.IPv6 {
			t.Errorf("%s: relay entry %s %v %v dirport %d ipv6 %v", a.Nickname, r.Nickname, r.Flags, r.Addr, r.DirPort, r.IPv6)
		}
	}
	if len(seen) != 9 {
		t.Errorf("duplicate nicknames")
	}
	// The three authorities with new identity keys have them.
	for nick, v3 := range map[string]string{
		"moria1": "F533C81CEF0BC0267857C99B2F471ADF249FA232", "tor26": "2F3DF9CA0E5D36F2685A2DA67184EB8DCB8CBA8C",
		"faravahar": "70849B868D606BAECFB6128C5E3D782029AA394F"} {
		for _, a := range as {
			if a.Nickname == nick && fmt.Sprintf("%X", a.V3Ident) != v3 {
				t.Errorf("%s v3ident %X, want %s", nick, a.V3Ident, v3)
			}
		}
	}
	now := mustTime("2026-06-27 05:00:00")
	if _, err := u.Check(now, as, checkedCerts(t, certs2026, now)); err != nil {
		t.Errorf("DefaultAuthorities do not verify the 2026 consensus: %v", err)
	}
	// A fresh copy each call.
	as[0].Nickname = "changed"
	if DefaultAuthorities()[0].Nickname == "changed" {
		t.Errorf("DefaultAuthorities shares its slice")
	}
	if !strings.HasPrefix(DefaultAuthorities()[0].String(), "moria1 orport=9201 v3ident=F533") {
		t.Errorf("String %q", DefaultAuthorities()[0])
	}
}
