package relaycrypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"testing"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

func testKeys(seed byte) *torcrypto.RelayKeys {
	k := new(torcrypto.RelayKeys)
	for i := range k.Df {
		k.Df[i] = seed
		k.Db[i] = seed + 1
	}
	for i := range k.Kf {
		k.Kf[i] = seed + 2
		k.Kb[i] = seed + 3
	}
	return k
}

func dataCell(t testing.TB, s string) *cell.Cell {
	c := new(cell.Cell)
	if _, err := c.SetRelay(0x80000001, cell.CmdRelay, 7, &cell.Data{Data: []byte(s)}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSealMatchesSpec checks one hop against a direct reading of tor-spec
// 6.1 and 0.3: the digest is SHA-1 over Df and every payload so far (digest
// field zero), and the cipher is AES-128-CTR with a zero IV running across
// cells.
func TestSealMatchesSpec(t *testing.T) {
	k := testKeys(1)
	h, err := NewHop(k)
	if err != nil {
		t.Fatal(err)
	}
	running := sha1.New()
	running.Write(k.Df[:])
	blk, _ := aes.NewCipher(k.Kf[:])
	ctr := cipher.NewCTR(blk, make([]byte, 16))
	for _, msg := range []string{"first", "second", "third"} {
		c := dataCell(t, msg)
		plain := *c
		running.Write(plain[cell.HeaderLen:])
		want := running.Sum(nil)
		copy(plain[cell.HeaderLen+5:], want[:4])
		ctr.XORKeyStream(plain[cell.HeaderLen:], plain[cell.HeaderLen:])

		d := h.Seal(c)
		if !bytes.Equal(d[:], want) {
			t.Fatalf("%s: running digest %x, want %x", msg, d, want)
		}
		if *c != plain {
			t.Fatalf("%s: sealed cell differs from the spec's", msg)
		}
		if c.CircID() != 0x80000001 || c.Command() != cell.CmdRelay {
			t.Fatal("header touched")
		}
	}
}

func TestThreeHopRoundTrip(t *testing.T) {
	var client Path
	var relays []*Hop
	for i := byte(0); i < 3; i++ {
		h, _ := NewHop(testKeys(10 * i))
		r, _ := NewResponderHop(testKeys(10 * i))
		client.Add(h)
		relays = append(relays, r)
	}
	// Outbound to each hop in turn: only the target recognizes it, and
	// both ends agree on the running digest.
	for round := 0; round < 3; round++ {
		for target := 0; target < 3; target++ {
			c := dataCell(t, "to hop")
			sent := client.Encrypt(c, target)
			for i := 0; i <= target; i++ {
				d, ok := relays[i].Open(c)
				if ok != (i == target) {
					t.Fatalf("round %d target %d: hop %d recognized=%v", round, target, i, ok)
				}
				if ok && d != sent {
					t.Fatalf("digests differ: %x vs %x", d, sent)
				}
			}
			_, body, err := c.RelayBody()
			if err != nil || string(body) != "to hop" {
				t.Fatalf("plaintext at target: %q %v", body, err)
			}
		}
	}
	// Inbound from each hop: earlier hops add their layers on the way.
	for target := 2; target >= 0; target-- {
		c := dataCell(t, "from hop")
		sent := relays[target].Seal(c)
		for i := target - 1; i >= 0; i-- {
			relays[i].Encrypt(c)
		}
		hop, d, ok := client.Decrypt(c)
		if !ok || hop != target || d != sent {
			t.Fatalf("from %d: got hop %d ok=%v", target, hop, ok)
		}
		if _, body, _ := c.RelayBody(); string(body) != "from hop" {
			t.Fatalf("plaintext %q", body)
		}
	}
}

func TestCorruptCellNotRecognized(t *testing.T) {
	h, _ := NewHop(testKeys(1))
	r, _ := NewResponderHop(testKeys(1))
	c := dataCell(t, "hello")
	r.Seal(c)
	c[cell.HeaderLen+20] ^= 1 // flip a body bit in transit
	if _, ok := h.Open(c); ok {
		t.Fatal("corrupted cell recognized")
	}
	// The client never counted the corrupted cell but the relay did, so
	// the running digests now disagree and the next genuine cell is not
	// recognized either: tampering closes the circuit rather than being
	// papered over.
	c2 := dataCell(t, "again")
	r.Seal(c2)
	if _, ok := h.Open(c2); ok {
		t.Fatal("digest mismatch ignored")
	}
}

func TestUnrecognizedLeavesStateForLaterHop(t *testing.T) {
	// Two hops; a cell for hop 1 must pass hop 0's check without touching
	// hop 0's digest, so hop 0's own next cell is still recognized.
	var client Path
	var relays []*Hop
	for i := byte(0); i < 2; i++ {
		h, _ := NewHop(testKeys(5 * i))
		r, _ := NewResponderHop(testKeys(5 * i))
		client.Add(h)
		relays = append(relays, r)
	}
	for i := 0; i < 50; i++ {
		c := dataCell(t, "far")
		relays[1].Seal(c)
		relays[0].Encrypt(c)
		// Force the worst case: hop 0 sees recognized == 0 after its
		// layer comes off, so it must check the digest and back out.
		if hop, _, ok := client.Decrypt(c); !ok || hop != 1 {
			t.Fatalf("far cell %d: hop %d ok=%v", i, hop, ok)
		}
		c = dataCell(t, "near")
		relays[0].Seal(c)
		if hop, _, ok := client.Decrypt(c); !ok || hop != 0 {
			t.Fatalf("near cell %d: hop %d ok=%v", i, hop, ok)
		}
	}
}

func TestOpenRestoresDigestFieldOnMismatch(t *testing.T) {
	d, _ := newDirection(make([]byte, 16), []byte("seed"))
	c := dataCell(t, "x")
	field := [4]byte{1, 2, 3, 4}
	*c.RelayDigestField() = field
	before := *c
	if _, ok := d.open(c); ok {
		t.Fatal("random digest recognized")
	}
	if *c != before {
		t.Fatal("unrecognized cell modified; the next hop would see garbage")
	}
}

func TestTruncate(t *testing.T) {
	var p Path
	for i := byte(0); i < 3; i++ {
		h, _ := NewHop(testKeys(i))
		p.Add(h)
	}
	p.Truncate(1)
	if p.Len() != 1 {
		t.Fatal(p.Len())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("out-of-range target did not panic")
		}
	}()
	p.Encrypt(dataCell(t, "x"), 1)
}

func benchPath(b *testing.B, n int) (*Path, []*Hop) {
	var p Path
	var relays []*Hop
	for i := 0; i < n; i++ {
		h, _ := NewHop(testKeys(byte(i)))
		r, _ := NewResponderHop(testKeys(byte(i)))
		p.Add(h)
		relays = append(relays, r)
	}
	return &p, relays
}

// BenchmarkEncrypt3Hops is one outbound cell to the exit of a 3-hop circuit.
func BenchmarkEncrypt3Hops(b *testing.B) {
	p, _ := benchPath(b, 3)
	c := dataCell(b, string(make([]byte, cell.RelayBodyMax)))
	b.SetBytes(cell.Len)
	b.ReportAllocs()
	for b.Loop() {
		p.Encrypt(c, 2)
	}
}

// BenchmarkDecrypt3Hops is one inbound cell from the exit of a 3-hop
// circuit (two unrecognizing layers, then the exit's digest check).
func BenchmarkDecrypt3Hops(b *testing.B) {
	p, relays := benchPath(b, 3)
	plain := dataCell(b, string(make([]byte, cell.RelayBodyMax)))
	c := new(cell.Cell)
	b.SetBytes(cell.Len)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		*c = *plain
		relays[2].Seal(c)
		relays[1].Encrypt(c)
		relays[0].Encrypt(c)
		b.StartTimer()
		if _, _, ok := p.Decrypt(c); !ok {
			b.Fatal("not recognized")
		}
	}
}

// BenchmarkOneHop is a seal and an open on a one-hop directory circuit.
func BenchmarkOneHop(b *testing.B) {
	h, _ := NewHop(testKeys(1))
	r, _ := NewResponderHop(testKeys(1))
	c := dataCell(b, string(make([]byte, cell.RelayBodyMax)))
	b.SetBytes(2 * cell.Len)
	b.ReportAllocs()
	for b.Loop() {
		h.Seal(c)
		if _, ok := r.Open(c); !ok {
			b.Fatal("not recognized")
		}
	}
}
