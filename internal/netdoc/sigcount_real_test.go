package netdoc

import (
	"bytes"
	"errors"
	"testing"
)

// sigBlocks splits a consensus into the part before its signatures and
// its directory-signature blocks (each from "directory-signature" through
// its END SIGNATURE line).
func sigBlocks(t *testing.T, doc []byte) ([]byte, [][]byte) {
	t.Helper()
	first := bytes.Index(doc, []byte("\ndirectory-signature ")) + 1
	head, rest := doc[:first], doc[first:]
	var blocks [][]byte
	for len(rest) > 0 {
		end := bytes.Index(rest, []byte("-----END SIGNATURE-----\n"))
		if end < 0 {
			t.Fatalf("unterminated signature block")
		}
		end += len("-----END SIGNATURE-----\n")
		blocks = append(blocks, rest[:end])
		rest = rest[end:]
	}
	return head, blocks
}

// TestRealConsensusTooFewSignatures removes signatures from the real 2026
// consensus (9 of 9 authorities signed): it verifies with 5 left, the
// majority of the 9 trusted authorities, and not with 4; a signature moved
// under another authority's name counts for nobody.
func TestRealConsensusTooFewSignatures(t *testing.T) {
	doc := realDoc(t, path2026)
	now := mustTime("2026-06-27 04:30:00")
	certs := checkedCerts(t, certs2026, now)
	head, blocks := sigBlocks(t, doc)
	if len(blocks) != 9 {
		t.Fatalf("%d signature blocks", len(blocks))
	}
	check := func(sigs [][]byte) (*SignatureError, error) {
		u, err := ParseConsensus(bytes.Join(append([][]byte{head}, sigs...), nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = u.Check(now, DefaultAuthorities(), certs)
		var se *SignatureError
		errors.As(err, &se)
		return se, err
	}
	for keep := 9; keep >= 1; keep-- {
		// Keep the last signatures: the first ones go.
		se, err := check(blocks[9-keep:])
		switch {
		case keep >= 5 && err != nil:
			t.Errorf("%d of 9 signatures: %v", keep, err)
		case keep < 5 && (!errors.Is(err, ErrTooFewSignatures) || se == nil || se.Valid != keep || se.Needed != 5):
			t.Errorf("%d of 9 signatures: %v, want too few (%d valid of 5 needed)", keep, err, keep)
		}
	}
	// Five signatures, one of them relabelled with the identity of an
	// authority whose own signature was dropped: four valid, one bad.
	five := make([][]byte, 5)
	copy(five, blocks[4:])
	idOf := func(b []byte) []byte { return bytes.Fields(b)[2] } // directory-signature [alg] ID SK
	moved := bytes.Clone(five[0])
	copy(moved[bytes.Index(moved, idOf(moved)):], idOf(blocks[0]))
	five[0] = moved
	se, err := check(five)
	if !errors.Is(err, ErrTooFewSignatures) || se == nil || se.Valid != 4 {
		t.Fatalf("a signature relabelled as another authority's: %v", err)
	}
}
