package consdiff

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/onionlite/onionlite/internal/realnet"
)

const realDir = "2021-08-29-consensus-diffs/"

func readReal(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(realnet.Path(t, realDir+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustHex(t testing.TB, s string) [32]byte {
	t.Helper()
	var d [32]byte
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		t.Fatal(err)
	}
	return d
}

// The digests below are from the realnet README, computed independently.
func TestRealDigests(t *testing.T) {
	for _, c := range []struct{ file, signed, full string }{
		{"consensus-microdesc-2021-08-26-19-00-00", "F45CBD0C54ED1A575CA52212CBEF08A5D052C44EC2BDDF00D0B6419A95E53985", ""},
		{"consensus-microdesc-2021-08-29-17-00-00", "ED4942C91560A740AAFC53927A0144A2216CDDBEE4CE41F0C6FCDCC8E86FA1ED", ""},
		{"consensus-microdesc-2021-08-29-19-00-00", "329DFC71E78BCB19FC116B88C169B0AE2C05B6277B97294DBCEA127738A40AFD", "60A8C62783E69EE751C288D37E33D271A842C354818993823E79925603240E80"},
	} {
		doc := readReal(t, c.file)
		got, err := SignedPartDigest(doc)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if got != mustHex(t, c.signed) {
			t.Errorf("%s: signed part digest %X, want %s", c.file, got, c.signed)
		}
		s2, f2, err := Digests(doc)
		if err != nil || s2 != got || f2 != FullDigest(doc) {
			t.Errorf("%s: Digests disagrees with SignedPartDigest/FullDigest", c.file)
		}
		if c.full != "" && FullDigest(doc) != mustHex(t, c.full) {
			t.Errorf("%s: full digest %X, want %s", c.file, FullDigest(doc), c.full)
		}
	}
}

func TestApplyReal(t *testing.T) {
	target := readReal(t, "consensus-microdesc-2021-08-29-19-00-00")
	wantTo := mustHex(t, "60A8C62783E69EE751C288D37E33D271A842C354818993823E79925603240E80")
	oneHour := readReal(t, "diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00")
	for _, c := range []struct {
		name string
		base string
		diff []byte
	}{
		{"1h", "consensus-microdesc-2021-08-29-17-00-00", oneHour},
		{"1h-gzip", "consensus-microdesc-2021-08-29-17-00-00", gunzip(t, readReal(t, "diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00.gz"))},
		{"72h", "consensus-microdesc-2021-08-26-19-00-00", readReal(t, "diff-microdesc-2021-08-26-19-00-00_to_2021-08-29-19-00-00")},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := readReal(t, c.base)
			baseCopy := bytes.Clone(base)
			diffCopy := bytes.Clone(c.diff)
			from, to, err := ParseHeader(c.diff)
			if err != nil {
				t.Fatal(err)
			}
			if sp, _ := SignedPartDigest(base); sp != from {
				t.Fatalf("FROM %X does not name the base (%X)", from, sp)
			}
			if to != wantTo {
				t.Fatalf("TO %X, want %X", to, wantTo)
			}
			out, err := Apply(base, c.diff)
			if err != nil {
				t.Fatal(err)
			}
			if FullDigest(out) != wantTo {
				t.Fatalf("result digest %X", FullDigest(out))
			}
			if !bytes.Equal(out, target) {
				t.Fatalf("result differs from the real 19:00 consensus")
			}
			if cap(out) != len(out) {
				t.Errorf("result buffer not exactly sized: len %d cap %d", len(out), cap(out))
			}
			if !bytes.Equal(base, baseCopy) || !bytes.Equal(c.diff, diffCopy) {
				t.Fatal("Apply modified its inputs")
			}
		})
	}
	if !LooksLikeDiff(oneHour) || LooksLikeDiff(target) {
		t.Error("LooksLikeDiff")
	}
}

// TestApplyRealNegative damages the real 1-hour diff in each way a client
// can meet and checks the error kind.
func TestApplyRealNegative(t *testing.T) {
	base := readReal(t, "consensus-microdesc-2021-08-29-17-00-00")
	diff := readReal(t, "diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00")
	other := readReal(t, "consensus-microdesc-2021-08-26-19-00-00")
	lines := strings.SplitAfter(string(diff), "\n")
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	replaceLine := func(i int, s string) []byte {
		ls := append([]string(nil), lines...)
		ls[i] = s
		return join(ls)
	}
	// Find the first "c" command after the first few, to swap commands.
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	// A TO that cannot match: flip one hex digit of TO.
	badTo := replaceLine(1, lines[1][:len(lines[1])-2]+string(lines[1][len(lines[1])-2]^1)+"\n")
	// The block text after the third command changed: result digest differs.
	blockFlip := flip(diff, bytes.Index(diff, []byte("bandwidth-weights"))+3)

	cases := []struct {
		name       string
		base, diff []byte
		want       error
		line       int // for ErrMalformed; 0: don't check
	}{
		{"wrong base", other, diff, ErrFromDigest, 0},
		{"base one byte changed in signed part", flip(base, 100), diff, ErrFromDigest, 0},
		{"base without signature", base[:bytes.Index(base, []byte("directory-signature"))], diff, ErrFromDigest, 0},
		{"wrong TO", base, badTo, ErrToDigest, 0},
		{"changed block text", base, blockFlip, ErrToDigest, 0},
		{"garbage header", base, append([]byte("network-status-diff-version 2\n"), diff[len(lines[0]):]...), ErrMalformed, 1},
		{"not a diff", base, base, ErrMalformed, 1},
		{"empty", base, nil, ErrMalformed, 1},
		{"hash line missing TO", base, replaceLine(1, lines[1][:5+64]+"\n"), ErrMalformed, 2},
		{"hash line not hex", base, replaceLine(1, "hash "+strings.Repeat("Z", 64)+lines[1][5+64:]), ErrMalformed, 2},
		{"hash line two spaces", base, replaceLine(1, "hash  "+lines[1][5:]), ErrMalformed, 2},
		{"header only, truncated", base, diff[:len(lines[0])+10], ErrMalformed, 2},
		{"ascending commands", base, swapFirstTwoCommands(t, lines), ErrMalformed, 0},
		{"range past end", base, replaceLine(2, "43000,$d\n"), ErrMalformed, 3},
		{"line past end", base, replaceLine(2, "99999d\n"), ErrMalformed, 3},
		{"range end past end", base, replaceLine(2, "42844,99999d\n"), ErrMalformed, 3},
		{"unknown command", base, replaceLine(2, "42844,$x\n"), ErrMalformed, 3},
		{"$ with c", base, replaceLine(2, "42844,$c\n"), ErrMalformed, 3},
		{"empty range", base, replaceLine(2, "42844,42844d\n"), ErrMalformed, 3},
		{"zero line", base, replaceLine(2, "0d\n"), ErrMalformed, 3},
		{"missing '.'", base, bytes.TrimSuffix(diff, []byte(".\n")), ErrMalformed, 0},
		{"truncated mid-line", base, diff[:len(diff)-1], ErrMalformed, 0},
		{"truncated inside a block", base, diff[:bytes.Index(diff, []byte("bandwidth-weights"))+20], ErrMalformed, 4},
		{"truncated after a block", base, truncateAfterBlock(t, diff), ErrToDigest, 0},
		{"base truncated after signed part", base[:len(base)-1], diff, ErrBase, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Apply(c.base, c.diff)
			if out != nil {
				t.Errorf("got a result with error %v", err)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.want == ErrMalformed {
				var me *MalformedError
				if !errors.As(err, &me) {
					t.Fatalf("%T is not a *MalformedError", err)
				}
				if c.line != 0 && me.Line != c.line {
					t.Errorf("line %d, want %d (%v)", me.Line, c.line, err)
				}
			}
		})
	}
}

// swapFirstTwoCommands moves the 2nd command (with its block) in front of
// the first one, which makes the line numbers ascend.
func swapFirstTwoCommands(t *testing.T, lines []string) []byte {
	t.Helper()
	// lines[2] is "42844,$d", lines[3] starts a c block ending in ".".
	end := 3
	for lines[end] != ".\n" {
		end++
	}
	var b strings.Builder
	b.WriteString(lines[0] + lines[1])
	for _, l := range lines[3 : end+1] {
		b.WriteString(l)
	}
	b.WriteString(lines[2])
	for _, l := range lines[end+1:] {
		b.WriteString(l)
	}
	return []byte(b.String())
}

// truncateAfterBlock cuts the diff right after its 3rd "." line: well-formed,
// but incomplete.
func truncateAfterBlock(t *testing.T, diff []byte) []byte {
	t.Helper()
	n := 0
	for i := 0; ; {
		j := bytes.Index(diff[i:], []byte("\n.\n"))
		if j < 0 {
			t.Fatal("no blocks")
		}
		i += j + 3
		if n++; n == 3 {
			return diff[:i]
		}
	}
}

// doc builds a small consensus-like document with a signature section.
func doc(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\ndirectory-signature sha256 AA BB\n-----BEGIN SIGNATURE-----\nxx\n-----END SIGNATURE-----\n")
}

// mkdiff wraps an ed script in a header whose digests fit base and want.
func mkdiff(base, want []byte, script string) []byte {
	from, err := SignedPartDigest(base)
	if err != nil {
		panic(err)
	}
	return fmt.Appendf(nil, "network-status-diff-version 1\nhash %X %X\n%s", from, FullDigest(want), script)
}

func TestApplySmall(t *testing.T) {
	base := doc("l1", "l2", "l3", "l4", "l5") // 9 lines: 5 + 4 of signature
	cases := []struct {
		name   string
		script string
		want   []byte
	}{
		{"no commands", "", base},
		{"delete one", "3d\n", doc("l1", "l2", "l4", "l5")},
		{"delete range", "2,4d\n", doc("l1", "l5")},
		{"delete to end", "6,$d\n", []byte("l1\nl2\nl3\nl4\nl5\n")},
		{"delete everything", "1,$d\n", []byte{}},
		{"change one", "1c\nx\ny\n.\n", doc("x", "y", "l2", "l3", "l4", "l5")},
		{"change range", "2,5c\nz\n.\n", doc("l1", "z")},
		{"append at start", "0a\nfirst\n.\n", doc("first", "l1", "l2", "l3", "l4", "l5")},
		{"append at end", "9a\nlast\n.\n", append(bytes.Clone(base), "last\n"...)},
		{"append then change same line", "3a\nafter3\n.\n3c\nthree\n.\n", doc("l1", "l2", "three", "after3", "l4", "l5")},
		{"change then append before", "3c\nthree\n.\n2a\nafter2\n.\n", doc("l1", "l2", "after2", "three", "l4", "l5")},
		{"dot-prefixed and empty lines", "1c\n..\n\n. \n.\n", doc("..", "", ". ", "l2", "l3", "l4", "l5")},
		{"block line looks like a command", "5c\n1,$d\n.\n", doc("l1", "l2", "l3", "l4", "1,$d")},
		{"typical shape", "6,$d\n5c\nfooter\ndirectory-signature sha256 CC DD\n.\n2,3c\nm\n.\n", []byte("l1\nm\nl4\nfooter\ndirectory-signature sha256 CC DD\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Apply(base, mkdiff(base, c.want, c.script))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, c.want) {
				t.Fatalf("got %q\nwant %q", out, c.want)
			}
		})
	}
}

func TestApplySmallMalformed(t *testing.T) {
	base := doc("l1", "l2", "l3", "l4", "l5") // 9 lines
	cases := []struct {
		name   string
		script string
		line   int
	}{
		{"ascending", "2d\n3d\n", 4},
		{"same line twice", "3d\n3d\n", 4},
		{"overlapping ranges", "3,5d\n5c\nx\n.\n", 4},
		{"append twice after one line", "3a\nx\n.\n3a\ny\n.\n", 6},
		{"append after a changed line", "3c\nx\n.\n3a\ny\n.\n", 6},
		{"delete past end", "10d\n", 3},
		{"append past end", "10a\nx\n.\n", 3},
		{"range past end", "8,10d\n", 3},
		{"reversed range", "5,3d\n", 3},
		{"equal range", "3,3c\nx\n.\n", 3},
		{"zero delete", "0d\n", 3},
		{"zero change", "0c\nx\n.\n", 3},
		{"ranged append", "2,3a\nx\n.\n", 3},
		{"dollar change", "3,$c\nx\n.\n", 3},
		{"dollar alone", "$d\n", 3},
		{"dollar after append at end", "9a\nx\n.\n5,$d\n", 6},
		{"bare a", "a\nx\n.\n", 3},
		{"missing command", "3\n", 3},
		{"two letters", "3dd\n", 3},
		{"space", "3 d\n", 3},
		{"sign", "+3d\n", 3},
		{"huge number", "12345678901d\n", 3},
		{"empty line", "\n", 3},
		{"empty block", "3c\n.\n", 3},
		{"unterminated block", "3c\nx\n", 3},
		{"unterminated block, dot without newline", "3c\nx\n.", 3},
		{"command without newline", "3d", 3},
		{"second command bad", "5d\n4x\n", 4},
		{"line count after block", "5c\na\nb\n.\nz\n", 7},
		{"CR line end", "3d\r\n", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Apply(base, mkdiff(base, base, c.script))
			var me *MalformedError
			if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v (%T), want *MalformedError; out %q", err, err, out)
			}
			if out != nil {
				t.Fatal("result with error")
			}
			if me.Line != c.line {
				t.Errorf("line %d, want %d: %v", me.Line, c.line, err)
			}
		})
	}
}

func TestSignedPart(t *testing.T) {
	for _, c := range []struct {
		doc    string
		signed string // "" when there is no signed part
	}{
		{"a\ndirectory-signature x\n", "a\ndirectory-signature "},
		{"directory-signature x\n", "directory-signature "},
		{"a directory-signature x\ndirectory-signature y\ndirectory-signature z\n", "a directory-signature x\ndirectory-signature "},
		{"a\ndirectory-signaturex\n", ""},
		{"a\n", ""},
		{"", ""},
	} {
		got, err := SignedPartDigest([]byte(c.doc))
		s2, f2, err2 := Digests([]byte(c.doc))
		if c.signed == "" {
			if err == nil || err2 == nil {
				t.Errorf("%q: no error", c.doc)
			}
			continue
		}
		if err2 != nil || s2 != got || f2 != FullDigest([]byte(c.doc)) {
			t.Errorf("%q: Digests %X %X %v", c.doc, s2, f2, err2)
		}
		if err != nil || got != FullDigest([]byte(c.signed)) {
			t.Errorf("%q: digest %X err %v, want digest of %q", c.doc, got, err, c.signed)
		}
	}
}

func TestParseHeader(t *testing.T) {
	from := strings.Repeat("ab", 32)
	to := strings.Repeat("0F", 32)
	f, tt, err := ParseHeader([]byte("network-status-diff-version 1\nhash " + from + " " + to + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(f[:]) != from || fmt.Sprintf("%X", tt) != to {
		t.Fatalf("got %X %X", f, tt)
	}
	for _, bad := range []string{
		"network-status-diff-version 1\n",
		"network-status-diff-version 1\nhash " + from + " " + to,
		"network-status-diff-version 1 \nhash " + from + " " + to + "\n",
		"network-status-diff-version 1\nhash " + from + " " + to + " \n",
		"network-status-diff-version 1\nhash " + from[2:] + " " + to + "00\n",
		"network-status-diff-version 1\nHASH " + from + " " + to + "\n",
	} {
		if _, _, err := ParseHeader([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	for _, c := range []struct{ name, base, diff string }{
		{"1h", "consensus-microdesc-2021-08-29-17-00-00", "diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00"},
		{"72h", "consensus-microdesc-2021-08-26-19-00-00", "diff-microdesc-2021-08-26-19-00-00_to_2021-08-29-19-00-00"},
	} {
		b.Run(c.name, func(b *testing.B) {
			base, diff := readReal(b, c.base), readReal(b, c.diff)
			b.SetBytes(int64(len(base)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Apply(base, diff); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
