package relaycrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding"
	"errors"
	"hash"

	"github.com/onionlite/onionlite/internal/cell"
	"github.com/onionlite/onionlite/internal/torcrypto"
)

// DigestLen is the size of a running digest value (SHA-1).
const DigestLen = sha1.Size

// Digest is the running digest value after a cell, as SENDME v1 echoes it.
type Digest [DigestLen]byte

// stateful is what SHA-1 offers for saving and restoring its state.
type stateful interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// direction is one direction of one hop: a cipher and a running digest.
type direction struct {
	stream cipher.Stream
	digest stateful
	saved  [128]byte // scratch for the digest state while checking a cell
	sum    Digest
}

func newDirection(key []byte, seed []byte) (*direction, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	d, ok := sha1.New().(stateful)
	if !ok {
		return nil, errors.New("relaycrypto: SHA-1 cannot save its state")
	}
	d.Write(seed)
	var iv [aes.BlockSize]byte
	return &direction{stream: cipher.NewCTR(blk, iv[:]), digest: d}, nil
}

// payload returns the relay payload of c.
func payload(c *cell.Cell) []byte { return c[cell.HeaderLen:] }

// Hop is the relay crypto state for one hop of a circuit, as the origin
// sees it. It is not safe for concurrent use: the circuit serializes
// sends and receives per direction (Seal/Encrypt and Open/Decrypt may run
// concurrently with each other, since the directions share nothing).
type Hop struct {
	fwd, bwd *direction
}

// NewHop returns the origin's state for a hop from its handshake keys.
func NewHop(k *torcrypto.RelayKeys) (*Hop, error) {
	f, err := newDirection(k.Kf[:], k.Df[:])
	if err != nil {
		return nil, err
	}
	b, err := newDirection(k.Kb[:], k.Db[:])
	if err != nil {
		return nil, err
	}
	return &Hop{fwd: f, bwd: b}, nil
}

// NewResponderHop returns the relay's side of the same hop: it opens what
// NewHop seals and seals what NewHop opens. It exists for test relays.
func NewResponderHop(k *torcrypto.RelayKeys) (*Hop, error) {
	h, err := NewHop(k)
	if err != nil {
		return nil, err
	}
	h.fwd, h.bwd = h.bwd, h.fwd
	return h, nil
}

// seal sets c's digest field from d's running digest and returns the full
// running digest after the cell. recognized and the digest field are
// zeroed first.
func (d *direction) seal(c *cell.Cell) Digest {
	p := payload(c)
	p[1], p[2] = 0, 0
	*c.RelayDigestField() = [4]byte{}
	d.digest.Write(p)
	d.digest.Sum(d.sum[:0])
	copy(c.RelayDigestField()[:], d.sum[:4])
	return d.sum
}

// open reports whether the (decrypted) cell is recognized by d's running
// digest, updating the digest only if it is.
func (d *direction) open(c *cell.Cell) (Digest, bool) {
	if c.RelayRecognized() != 0 {
		return Digest{}, false
	}
	state, err := d.digest.AppendBinary(d.saved[:0])
	if err != nil {
		panic("BUG: saving SHA-1 state: " + err.Error())
	}
	field := c.RelayDigestField()
	got := *field
	*field = [4]byte{}
	d.digest.Write(payload(c))
	d.digest.Sum(d.sum[:0])
	if torcrypto.Equal(d.sum[:4], got[:]) {
		return d.sum, true
	}
	*field = got
	if err := d.digest.UnmarshalBinary(state); err != nil {
		panic("BUG: restoring SHA-1 state: " + err.Error())
	}
	return Digest{}, false
}

// Seal makes c's relay payload (plaintext, addressed to this hop) ready
// to send: digest field set, one layer of encryption applied. It returns
// the running forward digest after the cell.
func (h *Hop) Seal(c *cell.Cell) Digest {
	d := h.fwd.seal(c)
	h.Encrypt(c)
	return d
}

// Encrypt applies this hop's forward layer only, for cells addressed to a
// later hop.
func (h *Hop) Encrypt(c *cell.Cell) {
	p := payload(c)
	h.fwd.stream.XORKeyStream(p, p)
}

// Open removes this hop's backward layer and reports whether the cell
// came from this hop, with the running backward digest after it.
func (h *Hop) Open(c *cell.Cell) (Digest, bool) {
	p := payload(c)
	h.bwd.stream.XORKeyStream(p, p)
	return h.bwd.open(c)
}

// Path is the origin's crypto for a whole circuit: hop 0 is the first.
// Like Hop, the two directions may be used concurrently, each by one
// goroutine at a time. Hops are added while the circuit is built, which
// must not overlap with Encrypt or Decrypt.
type Path struct {
	hops []*Hop
}

// Add appends a hop to the end of the path.
func (p *Path) Add(h *Hop) { p.hops = append(p.hops, h) }

// Len returns the number of hops.
func (p *Path) Len() int { return len(p.hops) }

// Truncate drops every hop after the first n.
func (p *Path) Truncate(n int) {
	clear(p.hops[n:])
	p.hops = p.hops[:n]
}

// Encrypt seals c for hop target (0-based) and applies the layers of every
// earlier hop, returning the running digest for SENDME v1.
func (p *Path) Encrypt(c *cell.Cell, target int) Digest {
	if target < 0 || target >= len(p.hops) {
		panic("BUG: relaycrypto: target hop out of range")
	}
	d := p.hops[target].Seal(c)
	for i := target - 1; i >= 0; i-- {
		p.hops[i].Encrypt(c)
	}
	return d
}

// Decrypt removes layers from the first hop on until one recognizes c. It
// returns that hop's index and its running digest, or ok false when no
// hop recognizes the cell (a protocol violation: the circuit must close).
func (p *Path) Decrypt(c *cell.Cell) (hop int, d Digest, ok bool) {
	for i, h := range p.hops {
		if d, ok := h.Open(c); ok {
			return i, d, true
		}
	}
	return -1, Digest{}, false
}
