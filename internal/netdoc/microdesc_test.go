package netdoc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMicrodescs2019FullSetCoversConsensus(t *testing.T) {
	now := mustTime("2019-12-15 13:20:00")
	u, err := ParseConsensus(realDoc(t, path2019))
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Check(now, authoritiesAt(now), checkedCerts(t, certs2019, now))
	if err != nil {
		t.Fatal(err)
	}
	covered := make([]bool, len(c.Relays))
	for _, f := range []struct {
		path          string
		count, listed int
	}{{mds2019, 6374, 5963}, {mds2019New, 509, 382}} {
		mds, err := ParseMicrodescs(realDoc(t, f.path))
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		rel, matched := MatchMicrodescs(c, mds)
		if len(mds) != f.count || matched != f.listed {
			t.Errorf("%s: %d microdescs, %d listed; want %d, %d", f.path, len(mds), matched, f.count, f.listed)
		}
		for i, j := range rel {
			if j >= 0 {
				covered[j] = true
			}
			if mds[i].LastListed().IsZero() || mds[i].LastListed().Year() != 2019 {
				t.Fatalf("%s: md %d last-listed %v", f.path, i, mds[i].LastListed())
			}
		}
	}
	n := 0
	for _, ok := range covered {
		if ok {
			n++
		}
	}
	if n != 6345 || len(covered) != 6345 {
		t.Errorf("covered %d of %d relays, want 6345 of 6345", n, len(covered))
	}
}

func TestMicrodescDigestIsTextWithoutAnnotation(t *testing.T) {
	doc := realDoc(t, mds2019)
	mds, err := ParseMicrodescs(doc)
	if err != nil {
		t.Fatal(err)
	}
	// Recompute the first digest independently: from "onion-key" to the
	// next "@last-listed".
	start := bytes.Index(doc, []byte("onion-key\n"))
	end := start + bytes.Index(doc[start:], []byte("\n@last-listed")) + 1
	if want := sha256.Sum256(doc[start:end]); mds[0].Digest != want {
		t.Errorf("digest %X, want %X", mds[0].Digest, want)
	}
	// The same text served without annotations gives the same digest.
	served, err := ParseMicrodescs(doc[start:end])
	if err != nil || len(served) != 1 || served[0].Digest != mds[0].Digest {
		t.Errorf("served form: %v %d", err, len(served))
	}
	if !served[0].LastListed().IsZero() {
		t.Errorf("served md has a last-listed time")
	}
	m := mds[0]
	if fmt.Sprintf("%x", m.NtorKey[:4]) != "fa87b2c7" || m.Ed25519ID == ([32]byte{}) || m.Family != nil ||
		m.IPv4Policy != RejectAllPolicy() || m.IPv6Policy.Allows(80) {
		t.Errorf("first md %+v", m)
	}
	// The third one has a family and an accept policy.
	m = mds[2]
	if m.Family == nil || len(m.Family.IDs) != 16 || fmt.Sprintf("%X", m.Family.IDs[0][:2]) != "0485" ||
		!m.IPv4Policy.Accept || !m.IPv4Policy.Allows(443) || m.IPv4Policy.Allows(444) || !m.IPv4Policy.Allows(19638) {
		t.Errorf("third md family %v policy %v", m.Family, m.IPv4Policy)
	}
}

func TestMicrodescsModern(t *testing.T) {
	t.Run("2025", func(t *testing.T) {
		mds, err := ParseMicrodescs(realDoc(t, mds2025))
		if err != nil {
			t.Fatal(err)
		}
		if len(mds) != 1116 {
			t.Errorf("%d microdescs, want 1116", len(mds))
		}
		withFamily, longest := 0, 0
		for i := range mds {
			if f := mds[i].Family; f != nil {
				withFamily++
				longest = max(longest, len(f.IDs))
			}
		}
		// Numbers from ../shared/notes/storage-and-compression.md.
		if withFamily != 675 || longest != 374 {
			t.Errorf("%d with family, longest %d members; want 675, 374", withFamily, longest)
		}
		u, err := ParseConsensus(realDoc(t, consensus2025))
		if err != nil {
			t.Fatal(err)
		}
		if _, matched := MatchMicrodescs(u.DangerouslyAssumeChecked(), mds); matched != 982 {
			t.Errorf("%d listed in the 2025 consensus, want 982", matched)
		}
	})
	t.Run("2026-family-ids", func(t *testing.T) {
		mds, err := ParseMicrodescs(realDoc(t, mds2026))
		if err != nil {
			t.Fatal(err)
		}
		u, err := ParseConsensus(realDoc(t, path2026))
		if err != nil {
			t.Fatal(err)
		}
		if _, matched := MatchMicrodescs(u.DangerouslyAssumeChecked(), mds); len(mds) != 51 || matched != 51 {
			t.Errorf("%d microdescs, %d listed; want 51, 51", len(mds), matched)
		}
		n := 0
		for i := range mds {
			if len(mds[i].FamilyIDs) > 0 {
				n++
				if !strings.HasPrefix(mds[i].FamilyIDs[0], "ed25519:") || len(mds[i].Ed25519FamilyIDs()) != len(mds[i].FamilyIDs) {
					t.Errorf("family-ids %q", mds[i].FamilyIDs)
				}
			}
		}
		if n != 12 {
			t.Errorf("%d with family-ids, want 12", n)
		}
		// The second one: family-ids ed25519:VrMuibHM...
		if got := mds[1].FamilyIDs; len(got) != 1 || got[0] != "ed25519:VrMuibHMUYh2rLQ70+rmqmyWWgQ1TXnxBCAw0VY/qSI" {
			t.Errorf("mds[1].FamilyIDs = %q", got)
		}
	})
	t.Run("arti-2026", func(t *testing.T) {
		u, err := ParseConsensus(realDoc(t, artiSample))
		if err != nil {
			t.Fatal(err)
		}
		var batch []byte
		for _, n := range []string{"moria1", "d2d4", "Akka", "Ukko", "lisdex"} {
			batch = append(batch, realDoc(t, artiSample+"--desc--"+n)...)
		}
		mds, err := ParseMicrodescs(batch)
		if err != nil {
			t.Fatal(err)
		}
		if _, matched := MatchMicrodescs(u.DangerouslyAssumeChecked(), mds); len(mds) != 5 || matched != 5 {
			t.Errorf("%d microdescs, %d listed; want 5, 5", len(mds), matched)
		}
	})
}

func TestMicrodescFamilyInterning(t *testing.T) {
	mds, err := ParseMicrodescs(realDoc(t, mds2025))
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[[32]byte]*Family{}
	shared := 0
	for i := range mds {
		f := mds[i].Family
		if f == nil {
			continue
		}
		if g, ok := byKey[f.Key]; ok {
			if g != f {
				t.Fatalf("equal family lines not interned")
			}
			shared++
		}
		byKey[f.Key] = f
	}
	if shared == 0 {
		t.Errorf("no family shared between microdescriptors")
	}
}

const ntorA = "ntor-onion-key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
const ntorB = "ntor-onion-key BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"

func TestMicrodescSplitting(t *testing.T) {
	key := "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nMIGJAoGBAK47\n-----END RSA PUBLIC KEY-----\n"
	tests := []struct {
		name  string
		batch string
		texts []string // expected text of each md (digest input)
	}{
		{"served with onion-key", key + ntorA + "id ed25519 " + strings.Repeat("A", 43) + "\n" + key + ntorB,
			[]string{key + ntorA + "id ed25519 " + strings.Repeat("A", 43) + "\n", key + ntorB}},
		{"onion-key without object", "onion-key\n" + ntorA + "onion-key\n" + ntorB,
			[]string{"onion-key\n" + ntorA, "onion-key\n" + ntorB}},
		{"no onion-key", ntorA + "p accept 80\n" + ntorB + "p6 reject 1-65535\n",
			[]string{ntorA + "p accept 80\n", ntorB + "p6 reject 1-65535\n"}},
		{"mixed", ntorA + key + ntorB, []string{ntorA, key + ntorB}},
		{"annotated", "@last-listed 2026-01-02 03:04:05\n@other x\n" + ntorA + "@last-listed 2026-01-02 03:04:06\n" + key + ntorB,
			[]string{ntorA, key + ntorB}},
		{"unknown items kept in text", ntorA + "x-future 1 2\n-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n",
			[]string{ntorA + "x-future 1 2\n-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mds, err := ParseMicrodescs([]byte(tt.batch))
			if err != nil {
				t.Fatal(err)
			}
			if len(mds) != len(tt.texts) {
				t.Fatalf("%d microdescs, want %d", len(mds), len(tt.texts))
			}
			for i, txt := range tt.texts {
				if mds[i].Digest != sha256.Sum256([]byte(txt)) {
					t.Errorf("md %d: digest does not cover %q", i, txt)
				}
			}
		})
	}
}

func TestMicrodescFields(t *testing.T) {
	fam := "family $" + strings.Repeat("AB", 20) + " $" + strings.Repeat("cd", 20) + "=Nick ~x $12~y Bob $" + strings.Repeat("01", 20) + "~carol\n"
	md := ntorA + fam +
		"family-ids ed25519:VrMuibHMUYh2rLQ70+rmqmyWWgQ1TXnxBCAw0VY/qSI future:thing\n" +
		"a 1.2.3.4:9001\na [2001:db8::1]:443\na [2001:db8::2]:443\n" +
		"p reject 25,119,135-139,445,563,1214,4661-4666,6346-6429,6699,6881-6999\n" +
		"p6 accept 80,443\nid rsa1024 AAAA\nid ed25519 " + strings.Repeat("B", 43) + "\nid x448 whatever\npr Link=1-5\n"
	mds, err := ParseMicrodescs([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	m := mds[0]
	f := m.Family
	if len(f.IDs) != 3 || f.IDs[0][0] != 0xAB || f.IDs[1][0] != 0xCD || f.IDs[2][0] != 0x01 ||
		len(f.Nicknames) != 1 || f.Nicknames[0] != "Bob" || !f.Contains(f.IDs[1]) {
		t.Errorf("family %+v", f)
	}
	if len(m.FamilyIDs) != 2 || m.FamilyIDs[1] != "future:thing" || len(m.Ed25519FamilyIDs()) != 1 {
		t.Errorf("family-ids %q", m.FamilyIDs)
	}
	if m.IPv6.String() != "[2001:db8::1]:443" {
		t.Errorf("a %v", m.IPv6)
	}
	p := m.IPv4Policy
	if p.Accept || p.Allows(25) || p.Allows(137) || !p.Allows(80) || !p.Allows(140) || p.Allows(6999) || !p.Allows(7000) || !p.AllowsAny() {
		t.Errorf("p %v", p)
	}
	if p.String() != "reject 25,119,135-139,445,563,1214,4661-4666,6346-6429,6699,6881-6999" {
		t.Errorf("p string %q", p.String())
	}
	if !m.IPv6Policy.Accept || !m.IPv6Policy.Allows(443) || m.IPv6Policy.Allows(22) {
		t.Errorf("p6 %v", m.IPv6Policy)
	}
	if m.Ed25519ID[0] != 0x04 || m.Ed25519ID[1] != 0x10 {
		t.Errorf("ed25519 id %X", m.Ed25519ID)
	}
	if RejectAllPolicy().AllowsAny() || RejectAllPolicy().Allows(80) {
		t.Errorf("reject-all policy allows something")
	}
}

func TestMicrodescMalformed(t *testing.T) {
	good := ntorB
	tests := []struct{ name, md string }{
		{"no ntor key", "onion-key\np accept 80\n@x\n"},
		{"short ntor key", "ntor-onion-key AAAA\n"},
		{"bad ntor base64", "ntor-onion-key !AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"},
		{"onion-key args", "onion-key x\n" + ntorA},
		{"onion-key bad label", "onion-key\n-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n" + ntorA},
		{"duplicate family", ntorA + "family $" + strings.Repeat("AB", 20) + "\nfamily Bob\n"},
		{"duplicate p", ntorA + "p accept 80\np accept 443\n"},
		{"bad p verb", ntorA + "p allow 80\n"},
		{"p port 0", ntorA + "p accept 0-80\n"},
		{"p descending", ntorA + "p accept 443,80\n"},
		{"p overlapping", ntorA + "p accept 80-90,85\n"},
		{"p trailing comma", ntorA + "p accept 80,\n"},
		{"p no ports", ntorA + "p accept\n"},
		{"p inverted", ntorA + "p reject 90-80\n"},
		{"p too big", ntorA + "p reject 70000\n"},
		{"bad ed id", ntorA + "id ed25519 AAAA\n"},
		{"duplicate ed id", ntorA + "id ed25519 " + strings.Repeat("B", 43) + "\nid ed25519 " + strings.Repeat("B", 43) + "\n"},
		{"id without key", ntorA + "id ed25519\n"},
		{"bad family-id", ntorA + "family-ids ed25519:AAAA\n"},
		{"family-id without kind", ntorA + "family-ids VrMuibHMUYh2rLQ70\n"},
		{"bad a", ntorA + "a [2001:db8::1]\n"},
		{"starts elsewhere", "@last-listed 2026-01-02 03:04:05\np accept 80\n" + ntorA},
		{"object after p", ntorA + "p accept 80\n-----BEGIN X-----\nAA==\n-----END X-----\n"},
		{"bad last-listed", "@last-listed yesterday\n" + ntorA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mds, err := ParseMicrodescs([]byte(good + tt.md + good))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			var be *MicrodescBatchError
			if !errors.As(err, &be) {
				t.Fatalf("err %T is not a *MicrodescBatchError", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line == 0 {
				t.Errorf("no line number in %v", err)
			}
			// Both good neighbours survive.
			if len(mds) != 2 || mds[0].NtorKey[0] != 0x04 || mds[1].NtorKey[0] != 0x04 {
				t.Errorf("good microdescs lost: %d left", len(mds))
			}
			if len(be.Dropped) != 1 || len(be.Errors) != 1 {
				t.Errorf("dropped %d, errors %d; want 1, 1", len(be.Dropped), len(be.Errors))
			}
		})
	}
}

func TestMicrodescSyntaxErrors(t *testing.T) {
	for _, tt := range []struct{ name, batch string }{
		{"no final newline", ntorA + "p accept 80"},
		{"unterminated object", "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n"},
		{"mismatched END", "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA KEY-----\n" + ntorA},
		{"bad keyword", ntorA + "p!x 1\n"},
		{"leading space", ntorA + " p accept 80\n"},
		{"crlf", strings.ReplaceAll(ntorA, "\n", "\r\n")},
		{"nul", ntorA + "x \x00\n"},
		{"garbage", "\x89PNG\r\n\x1a\n"},
		{"stray object", ntorA + "-----BEGIN X-----\nAA\n-----END X-----\n-----BEGIN X-----\n"},
		{"annotation at end", ntorA + "@last-listed 2026-01-02 03:04:05\n"},
		{"bad base64 in object", "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nAA*A\n-----END RSA PUBLIC KEY-----\n" + ntorA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMicrodescs([]byte(tt.batch))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
	mds, err := ParseMicrodescs(nil)
	if err != nil || len(mds) != 0 {
		t.Errorf("empty batch: %v, %d", err, len(mds))
	}
}

func TestMicrodescExtent(t *testing.T) {
	batch := realDoc(t, "2019-12-15-full-md-set/cached-microdescs.new")
	mds, err := ParseMicrodescs(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mds {
		s, e := mds[i].Extent()
		if sha256.Sum256(batch[s:e]) != mds[i].Digest {
			t.Fatalf("md %d: extent [%d,%d) does not hash to its digest", i, s, e)
		}
		if bytes.HasPrefix(batch[s:e], []byte("@")) {
			t.Fatalf("md %d: extent includes an annotation", i)
		}
	}
}
