package netdoc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSyntheticConsensusFields(t *testing.T) {
	as := testAuths(t)
	u, err := ParseConsensus(signConsensus(testConsensusBody(as), as, "sha1"))
	if err != nil {
		t.Fatal(err)
	}
	c := u.DangerouslyAssumeChecked()
	if len(c.ServerVersions) != 0 || c.ServerVersions == nil || len(c.ClientVersions) != 1 {
		t.Errorf("versions %q %q", c.ClientVersions, c.ServerVersions)
	}
	if c.Params.Get("neg", 0) != -5 || len(c.Params) != 4 {
		t.Errorf("params %v", c.Params)
	}
	if v, ok := c.BandwidthWeights.Lookup("Wbd"); !ok || v != 0 {
		t.Errorf("Wbd %v %v", v, ok)
	}
	if c.RecommendedClientProtocols.Versions("FutureProto") != 2 || c.RecommendedClientProtocols.String() != "Cons=2 FutureProto=1 Link=4-5 Microdesc=2 Relay=2-4" {
		t.Errorf("protocols %q", c.RecommendedClientProtocols)
	}
	r := c.Relays[0]
	if r.Flags != FlagAuthority|FlagFast|FlagGuard|FlagRunning|FlagStable|FlagV2Dir|FlagValid || !r.Unmeasured || r.Bandwidth != 30 ||
		r.IPv6.String() != "[::1]:5000" || r.DirPort != 7000 || r.Flags.String() != "Authority Fast Guard Running Stable V2Dir Valid" {
		t.Errorf("relay 0 %+v", r)
	}
	if c.Relays[1].Protocols != nil || c.Relays[1].Version != "" || c.Relays[1].IPv6.IsValid() {
		t.Errorf("relay 1 %+v", c.Relays[1])
	}
	if c.Signatures[0].Algorithm != DigestSHA1 || c.Signatures[0].Identity != as[0].v3 {
		t.Errorf("signature %+v", c.Signatures[0])
	}
}

// mutate replaces the first occurrence of old in the synthetic
// consensus (which must exist).
func mutate(t *testing.T, doc []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(doc, []byte(old)) {
		t.Fatalf("fixture lacks %q", old)
	}
	return bytes.Replace(doc, []byte(old), []byte(new), 1)
}

func TestConsensusMalformed(t *testing.T) {
	as := testAuths(t)
	doc := signConsensus(testConsensusBody(as), as[:1], "sha256")
	for _, tt := range []struct {
		name, old, new string
		unsupported    bool
	}{
		{"ns flavor", "network-status-version 3 microdesc", "network-status-version 3", true},
		{"version 4", "network-status-version 3 microdesc", "network-status-version 4 microdesc", true},
		{"a vote", "vote-status consensus", "vote-status vote", true},
		{"vote item", "consensus-method 35\n", "consensus-method 35\npublished 2026-03-01 11:50:00\n", true},
		{"first line", "network-status-version 3 microdesc\n", "vote-status consensus\nnetwork-status-version 3 microdesc\n", false},
		{"duplicate network-status-version", "vote-status consensus\n", "vote-status consensus\nnetwork-status-version 3 microdesc\n", false},
		{"duplicate valid-after", "fresh-until", "valid-after 2026-03-01 12:00:00\nfresh-until", false},
		{"missing valid-until", "valid-until 2026-03-01 12:30:00\n", "", false},
		{"missing known-flags", "known-flags Authority Exit Fast Guard HSDir Running Stable V2Dir Valid FutureFlag\n", "", false},
		{"bad time", "valid-after 2026-03-01 12:00:00", "valid-after 2026-02-30 12:00:00", false},
		{"bad time format", "valid-after 2026-03-01 12:00:00", "valid-after 2026-03-01T12:00:00", false},
		{"times out of order", "fresh-until 2026-03-01 12:10:00", "fresh-until 2026-03-01 12:40:00", false},
		{"bad consensus-method", "consensus-method 35", "consensus-method x35", false},
		{"consensus-method extra", "consensus-method 35", "consensus-method 35 36", false},
		{"bad voting-delay", "voting-delay 20 20", "voting-delay 20", false},
		{"bad param value", "cc_alg=2", "cc_alg=two", false},
		{"param out of range", "cc_alg=2", "cc_alg=2147483648", false},
		{"param without value", "cc_alg=2", "cc_alg", false},
		{"protocol version 64", "Relay=2-4 FutureProto", "Relay=2-64 FutureProto", false},
		{"protocol range inverted", "Relay=2-4 FutureProto", "Relay=4-2 FutureProto", false},
		{"duplicate protocol", "Relay=2-4 FutureProto", "Relay=2-4 Relay=5", false},
		{"bad shared-rand", "shared-rand-current-value 3 Mnl1", "shared-rand-current-value 3 !nl1", false},
		{"dir-source short", " 127.0.0.1 7000 5000\ncontact", " 127.0.0.1 7000\ncontact", false},
		{"dir-source bad identity", "dir-source auth0 ", "dir-source auth0 00", false},
		{"dir-source without vote-digest", "vote-digest 0000000000000000000000000000000000000000\nr ", "r ", false},
		{"duplicate contact", "contact test\n", "contact test\ncontact again\n", false},
		{"r before dir-source", "dir-source", "r test000 AAEAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 127.0.0.1 5000 7000\ndir-source", false},
		{"r short", "127.0.0.2 5001 0\n", "127.0.0.2 5001\n", false},
		{"r bad nickname", "r test001", "r test-001", false},
		{"r bad identity", "AAIAAAAAAAAAAAAAAAAAAAAAAAA", "AAIAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"r bad address", "127.0.0.2 5001", "127.0.0.256 5001", false},
		{"r bad port", "127.0.0.2 5001", "127.0.0.2 65536", false},
		{"r unsorted", "r test001 AAIAAAAAAAAAAAAAAAAAAAAAAAA", "r test001 AAEAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"missing m", "m KoMvR0kTFTMsDDrYnH+OlkJKovaGYnJrwBqhlI6YlSs\n", "", false},
		{"missing s", "s Exit Fast Running Valid\n", "", false},
		{"duplicate s", "s Exit Fast Running Valid\n", "s Exit Fast Running Valid\ns Exit\n", false},
		{"bad m", "m KoMvR0kTFTMsDDrYnH+OlkJKovaGYnJrwBqhlI6YlSs", "m KoMvR0kTFTMsDDrYnH+OlkJKovaGYnJrwBqhlI6YlS", false},
		{"flag not known", "s Exit Fast Running Valid", "s Exit Fast Running Valid Sybil", false},
		{"bad w", "w Bandwidth=1000", "w Bandwidth=-1", false},
		{"bad a", "a [::1]:5000", "a [::1]", false},
		{"pr malformed", "pr Cons=1-2", "pr Cons", false},
		{"directory-footer args", "directory-footer\n", "directory-footer x\n", false},
		{"duplicate bandwidth-weights", "bandwidth-weights Wbd=0 Wee=10000 Wgg=10000\n", "bandwidth-weights Wbd=0\nbandwidth-weights Wbd=0\n", false},
		{"item after signature", "-----END SIGNATURE-----\n", "-----END SIGNATURE-----\nbandwidth-weights Wbd=0\n", false},
		{"unknown after signature", "-----END SIGNATURE-----\n", "-----END SIGNATURE-----\nx-injected 1\n", false},
		{"signature without object", "-----BEGIN SIGNATURE-----", "x-notsig\n-----BEGIN SIGNATURE-----", false},
		{"signature bad label", "-----BEGIN SIGNATURE-----", "-----BEGIN SIGNATURES-----", false},
		{"signature bad digest", "directory-signature sha256 ", "directory-signature sha256 ZZ", false},
		{"crlf", "vote-status consensus\n", "vote-status consensus\r\n", false},
		{"tab-only line", "vote-status consensus\n", "vote-status consensus\n\t\n", false},
		{"keyword with bad char", "vote-status consensus\n", "vote-status consensus\nx_y 1\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConsensus(mutate(t, doc, tt.old, tt.new))
			want := ErrMalformed
			if tt.unsupported {
				want = ErrUnsupported
			}
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line == 0 {
				t.Errorf("error without a line number: %v", err)
			}
		})
	}
	// Unknown items with objects are ignored everywhere but after the
	// signatures.
	ok := mutate(t, doc, "directory-footer\n", "x-unknown 1 2\n-----BEGIN THING-----\nAAAA\n-----END THING-----\ndirectory-footer\n")
	if _, err := ParseConsensus(ok); err != nil {
		t.Errorf("unknown item with object: %v", err)
	}
	// A signature with an unknown algorithm is kept and ignored.
	ok = mutate(t, doc, "directory-signature sha256 ", "directory-signature sha3-512 "+strings.Repeat("AB", 20)+" "+strings.Repeat("CD", 20)+"\n-----BEGIN SIGNATURE-----\nAAAA\n-----END SIGNATURE-----\ndirectory-signature sha256 ")
	u, err := ParseConsensus(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s := u.Signatures(); len(s) != 2 || s[0].Algorithm != DigestUnknown {
		t.Errorf("signatures %+v", s)
	}
}

func TestConsensusTruncatedAndGarbage(t *testing.T) {
	doc := realDoc(t, path2026)
	sig := bytes.Index(doc, []byte("\ndirectory-signature "))
	footer := bytes.Index(doc, []byte("\ndirectory-footer\n"))
	firstR := bytes.Index(doc, []byte("\nr "))
	cuts := []int{0, 1, 20, 100, firstR, firstR + 1, firstR + 30, len(doc) / 3, len(doc) / 2, footer + 1, footer + 5,
		sig + 1, sig + 10, sig + 21, sig + 80, sig + 100, len(doc) - 30, len(doc) - 1}
	for _, n := range cuts {
		_, err := ParseConsensus(doc[:n])
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated at %d: err = %v, want ErrMalformed", n, err)
		}
	}
	for _, g := range []string{
		"", "\n\n\n", "hello world\n", "\x00\x01\x02", "\x89PNG\r\n\x1a\n\x00\x00",
		"<html><body>503</body></html>\n",
		"network-status-version 3 microdesc\n",
		"-----BEGIN SIGNATURE-----\nAAAA\n-----END SIGNATURE-----\n",
	} {
		if _, err := ParseConsensus([]byte(g)); !errors.Is(err, ErrMalformed) {
			t.Errorf("garbage %q: err = %v", g, err)
		}
	}
	// Other document types.
	for _, rel := range []string{mds2026, certs2026, "2021-08-29-consensus-diffs/diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00"} {
		if _, err := ParseConsensus(realDoc(t, rel)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s as consensus: err = %v", rel, err)
		}
	}
}

func TestTokenizer(t *testing.T) {
	doc := []byte("kw a  b\t c  \n\nk-2\n-----BEGIN A B-----\nQUJD\nREVG\n-----END A B-----\nlast\n")
	tk := newTokenizer(doc, "test")
	it, ok, err := tk.next()
	if err != nil || !ok || string(it.kw) != "kw" || string(it.args) != "a  b\t c" || it.line != 1 || it.hasObj {
		t.Fatalf("item 1: %+v %v %v", it, ok, err)
	}
	a, rest := nextArg(it.args)
	b, rest := nextArg(rest)
	c, rest := nextArg(rest)
	if string(a) != "a" || string(b) != "b" || string(c) != "c" || len(rest) != 0 {
		t.Errorf("args %q %q %q %q", a, b, c, rest)
	}
	it, ok, err = tk.next()
	if err != nil || !ok || string(it.kw) != "k-2" || it.line != 3 || !it.hasObj || string(it.obj.label) != "A B" ||
		string(it.obj.body) != "QUJD\nREVG\n" || string(doc[it.start:it.end]) != "k-2\n-----BEGIN A B-----\nQUJD\nREVG\n-----END A B-----\n" ||
		it.lineEnd != it.start+4 {
		t.Fatalf("item 2: %+v %v %v", it, ok, err)
	}
	body, err := decodeObject(it.obj.body)
	if err != nil || string(body) != "ABCDEF" {
		t.Errorf("object %q %v", body, err)
	}
	it, ok, err = tk.next()
	if err != nil || !ok || string(it.kw) != "last" || it.line != 8 {
		t.Fatalf("item 3: %+v %v %v", it, ok, err)
	}
	if _, ok, err = tk.next(); ok || err != nil {
		t.Fatalf("end: %v %v", ok, err)
	}
	for _, bad := range []string{
		"-kw\n", "k\x01w\n", "kw \x7f\n", "kw\n-----BEGIN X-----\n", "kw\n-----BEGIN X----\nAA\n-----END X-----\n",
		"kw\n-----BEGIN  X-----\nAA\n-----END  X-----\n", "kw\n-----BEGIN X-----\nA A\n-----END X-----\n",
		"kw\n-----BEGIN X-----\nAA\n-----END Y-----\n", "kw\n-----BEGIN X-----\nAA\n-----END X------\n", "@ann x\n",
		"kw", "kw\n-----BEGIN X-----\nAA",
	} {
		tk := newTokenizer([]byte(bad), "test")
		var err error
		for {
			var ok bool
			if _, ok, err = tk.next(); err != nil || !ok {
				break
			}
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
