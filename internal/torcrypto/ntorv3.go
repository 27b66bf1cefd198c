package torcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha3"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ntor-v3 (prop 332, A.1 and A.2) constants.
const (
	// NtorV3Overhead is the size of a client handshake without its
	// message: NODEID | KEYID | CLIENT_PK | MAC.
	NtorV3Overhead = 32 + 32 + 32 + 32
	// NtorV3ServerOverhead is the size of a server reply without its
	// message: Y | AUTH.
	NtorV3ServerOverhead = 32 + 32

	ntor3ProtoID = "ntor3-curve25519-sha3_256-1"
	ntor3TMsgKDF = ntor3ProtoID + ":kdf_phase1"
	ntor3TMsgMAC = ntor3ProtoID + ":msg_mac"
	ntor3TSeed   = ntor3ProtoID + ":key_seed"
	ntor3TVerify = ntor3ProtoID + ":verify"
	ntor3TFinal  = ntor3ProtoID + ":kdf_final"
	ntor3TAuth   = ntor3ProtoID + ":auth_final"

	// NtorV3CircuitVerification is the verification string (VER) C tor
	// and arti use for circuit extension; prop 332 leaves it to the
	// usage and tor-spec does not name it.
	NtorV3CircuitVerification = "circuit extend"
)

// encap is ENCAP(s) = htonll(len(s)) | s, appended to b.
func encap(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// sha3Tweak is H(s, t) = SHA3-256(ENCAP(t) | s).
func sha3Tweak(t string, parts ...[]byte) []byte {
	h := sha3.New256()
	h.Write(encap(nil, []byte(t)))
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// shakeTweak is KDF(s, t) = SHAKE-256(ENCAP(t) | s) as a reader.
func shakeTweak(t string, s []byte) *sha3.SHAKE {
	x := sha3.NewSHAKE256()
	x.Write(encap(nil, []byte(t)))
	x.Write(s)
	return x
}

func aes256CTR(key, msg []byte) []byte {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic("BUG: AES-256 key of wrong size")
	}
	out := make([]byte, len(msg))
	cipher.NewCTR(blk, make([]byte, aes.BlockSize)).XORKeyStream(out, msg)
	return out
}

// NtorV3Client is the client side of one ntor-v3 handshake. It is used
// once.
type NtorV3Client struct {
	id    [32]byte
	b     [32]byte
	x     [32]byte // secret scalar; zeroed by Complete
	pub   [32]byte // X
	bx    []byte   // EXP(B, x); zeroed by Complete
	ver   []byte
	mac   []byte // msg_mac
	hsMsg []byte // the encoded client handshake
}

// NewNtorV3Client starts an ntor-v3 handshake with the relay whose Ed25519
// identity is id and whose ntor onion key is onionKey, carrying msg (an
// encoded extension list, see AppendExtensions) encrypted to the relay.
// ver is the verification string; circuits use
// NtorV3CircuitVerification.
func NewNtorV3Client(rand io.Reader, id, onionKey [32]byte, msg []byte, ver string) (*NtorV3Client, error) {
	c := &NtorV3Client{id: id, b: onionKey, ver: []byte(ver)}
	var err error
	if c.x, c.pub, err = newX25519(rand); err != nil {
		return nil, err
	}
	if c.bx, err = x25519(c.x[:], c.b[:]); err != nil {
		return nil, err
	}
	secret := make([]byte, 0, 32*4+len(ntor3ProtoID)+8+len(c.ver))
	secret = append(secret, c.bx...)
	secret = append(secret, c.id[:]...)
	secret = append(secret, c.pub[:]...)
	secret = append(secret, c.b[:]...)
	secret = append(secret, ntor3ProtoID...)
	secret = encap(secret, c.ver)
	var keys [64]byte
	shakeTweak(ntor3TMsgKDF, secret).Read(keys[:])
	Zero(secret)
	encK1, macK1 := keys[:32], keys[32:]
	enc := aes256CTR(encK1, msg)

	h := sha3.New256()
	h.Write(encap(nil, []byte(ntor3TMsgMAC)))
	h.Write(encap(nil, macK1))
	h.Write(c.id[:])
	h.Write(c.b[:])
	h.Write(c.pub[:])
	h.Write(enc)
	c.mac = h.Sum(nil)
	Zero(keys[:])

	c.hsMsg = make([]byte, 0, NtorV3Overhead+len(enc))
	c.hsMsg = append(c.hsMsg, c.id[:]...)
	c.hsMsg = append(c.hsMsg, c.b[:]...)
	c.hsMsg = append(c.hsMsg, c.pub[:]...)
	c.hsMsg = append(c.hsMsg, enc...)
	c.hsMsg = append(c.hsMsg, c.mac...)
	return c, nil
}

// Handshake returns the client handshake for CREATE2/EXTEND2 with HTYPE 3.
func (c *NtorV3Client) Handshake() []byte { return c.hsMsg }

// complete checks the reply and returns the server's message and the
// keystream after ENC_KEY.
func (c *NtorV3Client) complete(reply []byte) ([]byte, *sha3.SHAKE, error) {
	defer Zero(c.x[:])
	defer Zero(c.bx)
	if len(reply) < NtorV3ServerOverhead {
		return nil, nil, fmt.Errorf("%w: ntor-v3 reply of %d bytes", ErrHandshake, len(reply))
	}
	y, auth, msg := reply[:32], reply[32:64], reply[64:]
	yx, err := x25519(c.x[:], y)
	if err != nil {
		return nil, nil, err
	}
	secret := make([]byte, 0, 32*6+len(ntor3ProtoID)+8+len(c.ver))
	secret = append(secret, yx...)
	secret = append(secret, c.bx...)
	secret = append(secret, c.id[:]...)
	secret = append(secret, c.b[:]...)
	secret = append(secret, c.pub[:]...)
	secret = append(secret, y...)
	secret = append(secret, ntor3ProtoID...)
	secret = encap(secret, c.ver)
	Zero(yx)
	defer Zero(secret)

	seed := sha3Tweak(ntor3TSeed, secret)
	defer Zero(seed)
	verify := sha3Tweak(ntor3TVerify, secret)
	defer Zero(verify)
	want := sha3Tweak(ntor3TAuth, verify, c.id[:], c.b[:], y, c.pub[:], c.mac,
		encap(nil, msg), []byte(ntor3ProtoID), []byte("Server"))
	if !Equal(want, auth) {
		return nil, nil, fmt.Errorf("%w: ntor-v3 AUTH mismatch", ErrHandshake)
	}
	ks := shakeTweak(ntor3TFinal, seed)
	var encKey [32]byte
	ks.Read(encKey[:])
	sm := aes256CTR(encKey[:], msg)
	Zero(encKey[:])
	return sm, ks, nil
}

// Complete checks the server's reply and returns its decrypted message
// (an extension list, see ParseExtensions) and the circuit keys.
func (c *NtorV3Client) Complete(reply []byte) ([]byte, *RelayKeys, error) {
	sm, ks, err := c.complete(reply)
	if err != nil {
		return nil, nil, err
	}
	var m [RelayKeyMaterialLen]byte
	ks.Read(m[:])
	k := relayKeysFrom(m[:])
	Zero(m[:])
	return sm, k, nil
}

// Extension is one field of an ntor-v3 message (prop 332 A.2, as
// deployed: N_EXTENSIONS [1] then N times TYPE [1] | LEN [1] | DATA).
type Extension struct {
	Type uint8
	Data []byte
}

// ntor-v3 extension types (prop 324 section 10; prop 346).
const (
	ExtCCRequest       uint8 = 1 // client: please use congestion control; empty
	ExtCCResponse      uint8 = 2 // exit: sendme_inc [1 byte]
	ExtSubprotoRequest uint8 = 3
)

// AppendExtensions encodes an extension list.
func AppendExtensions(b []byte, exts []Extension) ([]byte, error) {
	if len(exts) > 255 {
		return b, errors.New("torcrypto: too many extensions")
	}
	b = append(b, byte(len(exts)))
	for _, e := range exts {
		if len(e.Data) > 255 {
			return b, fmt.Errorf("torcrypto: extension %d too long", e.Type)
		}
		b = append(b, e.Type, byte(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b, nil
}

// ParseExtensions decodes an extension list. Data aliases b. An empty
// message is an empty list. Trailing bytes are an error: messages that
// are not well-formed must be rejected.
func ParseExtensions(b []byte) ([]Extension, error) {
	if len(b) == 0 {
		return nil, nil
	}
	n := int(b[0])
	b = b[1:]
	out := make([]Extension, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return nil, errors.New("torcrypto: truncated ntor-v3 extension")
		}
		out = append(out, Extension{Type: b[0], Data: b[2 : 2+int(b[1])]})
		b = b[2+int(b[1]):]
	}
	if len(b) != 0 {
		return nil, errors.New("torcrypto: trailing bytes after ntor-v3 extensions")
	}
	return out, nil
}

// FindExtension returns the first extension of type t (later duplicates
// are ignored, as prop 332 says).
func FindExtension(exts []Extension, t uint8) (Extension, bool) {
	for _, e := range exts {
		if e.Type == t {
			return e, true
		}
	}
	return Extension{}, false
}
