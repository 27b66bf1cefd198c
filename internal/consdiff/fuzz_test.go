package consdiff

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// realSeeds returns a small real pair for fast fuzzing: the first n lines
// of the real 17:00 base and the tail of the real 1-hour script whose
// commands stay within them.
func realSeeds(f *testing.F) (smallBase, smallScript []byte) {
	base := readReal(f, "consensus-microdesc-2021-08-29-17-00-00")
	diff := readReal(f, "diff-microdesc-2021-08-29-17-00-00_to_2021-08-29-19-00-00")
	const n = 150
	lines := bytes.SplitAfter(base, []byte("\n"))
	smallBase = bytes.Join(lines[:n], nil)
	body, _, _, err := parseHeader(diff)
	if err != nil {
		f.Fatal(err)
	}
	// Walk the commands; keep the script from the first one inside n.
	for p := body; p < len(diff); {
		line, _, _ := cutLine(diff[p:])
		c, err := parseCommand(line, len(lines)-1)
		if err != nil {
			f.Fatalf("real diff: %v", err)
		}
		if c.end <= n && c.start <= n {
			return smallBase, diff[p:]
		}
		p += len(line) + 1
		if c.op != 'd' {
			p += bytes.Index(diff[p:], []byte("\n.\n")) + 3
		}
	}
	f.Fatal("real diff has no command within the first lines")
	return
}

// FuzzApply checks that Apply never panics, and that whenever it succeeds
// both digests in the header hold.
func FuzzApply(f *testing.F) {
	base := doc("l1", "l2", "l3")
	f.Add(base, mkdiff(base, doc("l1", "x", "l3"), "2c\nx\n.\n"))
	f.Add(base, mkdiff(base, base, "4,$d\n1d\n"))
	// Seeded from the real 1-hour diff, cut down to its first lines so
	// that the fuzzer stays fast; TestApplyReal covers the full pairs.
	smallBase, smallScript := realSeeds(f)
	smallBase = append(bytes.Clone(smallBase), "directory-signature sha256 X Y\n"...)
	want, err := applyScript(smallBase, smallScript, 0, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(smallBase, mkdiff(smallBase, want, string(smallScript)))
	f.Add(smallBase, mkdiff(smallBase, smallBase, string(smallScript)))
	f.Fuzz(func(t *testing.T, base, diff []byte) {
		out, err := Apply(base, diff)
		if err != nil {
			if out != nil {
				t.Fatal("result with error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFromDigest) && !errors.Is(err, ErrToDigest) && !errors.Is(err, ErrBase) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		from, to, err := ParseHeader(diff)
		if err != nil {
			t.Fatal(err)
		}
		if sp, err := SignedPartDigest(base); err != nil || sp != from {
			t.Fatal("succeeded with a wrong FROM")
		}
		if FullDigest(out) != to {
			t.Fatal("succeeded with a wrong TO")
		}
	})
}

// FuzzScript compares the ed-script engine (no digest checks) with a
// line-slice reference that follows dir-spec Appendix E and C tor's
// ordering rule literally.
func FuzzScript(f *testing.F) {
	base := doc("l1", "l2", "l3", "l4", "l5")
	for _, s := range []string{
		"", "3d\n", "2,4d\n", "6,$d\n", "1c\nx\ny\n.\n", "0a\nz\n.\n", "9a\nz\n.\n",
		"3a\nq\n.\n3c\nr\n.\n", "3c\nr\n.\n2a\nq\n.\n", "6,$d\n5c\nf\n.\n2,3c\nm\n.\n",
		"3d\n3d\n", "3a\nx\n.\n3a\ny\n.\n", "3,3d\n", "3,$c\nx\n.\n", "3c\n.\n", "3c\nx\n",
	} {
		f.Add(base, []byte(s))
	}
	// The full real pairs (megabytes) would stall the fuzzer; TestApplyReal
	// covers them.
	smallBase, smallScript := realSeeds(f)
	f.Add(smallBase, smallScript)
	f.Fuzz(func(t *testing.T, base, script []byte) {
		got, err := applyScript(base, script, 0, 1)
		want, ok := refApply(base, script)
		if ok != (err == nil) {
			t.Fatalf("engine err %v, reference ok %v", err, ok)
		}
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) && !errors.Is(err, ErrBase) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("engine and reference differ:\n%q\n%q", got, want)
		}
	})
}

var refCmd = regexp.MustCompile(`^([0-9]{1,9})(?:,([0-9]{1,9}|\$))?([acd])\n$`)

// refApply is the slow, obvious implementation: a slice of lines edited
// in place, with C tor's "current line j" ordering rule plus the rule that
// two appends after the same line are out of order.
func refApply(base, script []byte) ([]byte, bool) {
	if len(base) > 0 && base[len(base)-1] != '\n' {
		return nil, false
	}
	lines := strings.SplitAfter(string(base), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	sl := strings.SplitAfter(string(script), "\n")
	if sl[len(sl)-1] != "" {
		return nil, false // last line without newline
	}
	sl = sl[:len(sl)-1]
	j, lastAppend := len(lines), -1
	first := true
	for i := 0; i < len(sl); i, first = i+1, false {
		m := refCmd.FindStringSubmatch(sl[i])
		if m == nil {
			return nil, false
		}
		s, _ := strconv.Atoi(m[1])
		e, ranged, op := s, m[2] != "", m[3]
		switch {
		case m[2] == "$":
			e = len(lines)
			if op != "d" || !first {
				return nil, false
			}
		case ranged:
			e, _ = strconv.Atoi(m[2])
		}
		if ranged && (op == "a" || e <= s) {
			return nil, false
		}
		if op != "a" && s < 1 {
			return nil, false
		}
		if e > j || (op == "a" && s == lastAppend) {
			return nil, false
		}
		var block []string
		if op != "d" {
			for i++; ; i++ {
				if i == len(sl) {
					return nil, false
				}
				if sl[i] == ".\n" {
					break
				}
				block = append(block, sl[i])
			}
			if len(block) == 0 {
				return nil, false
			}
		}
		if op == "a" {
			lines = slices.Concat(lines[:s], block, lines[s:])
			j, lastAppend = s, s
		} else {
			lines = slices.Concat(lines[:s-1], block, lines[e:])
			j, lastAppend = s-1, -1
		}
	}
	return []byte(strings.Join(lines, "")), true
}
