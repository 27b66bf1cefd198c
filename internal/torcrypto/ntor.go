package torcrypto

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// ntor (tor-spec 5.1.4) constants.
const (
	// NtorClientLen is the size of an ntor client handshake:
	// NODEID | KEYID | CLIENT_KP.
	NtorClientLen = 20 + 32 + 32
	// NtorServerLen is the size of an ntor server reply: SERVER_KP | AUTH.
	NtorServerLen = 32 + 32

	ntorProtoID = "ntor-curve25519-sha256-1"
	ntorTMac    = ntorProtoID + ":mac"
	ntorTKey    = ntorProtoID + ":key_extract"
	ntorTVerify = ntorProtoID + ":verify"
	ntorMExpand = ntorProtoID + ":key_expand"
)

// ErrHandshake is wrapped by every handshake failure caused by the
// server's reply (bad length, degenerate key, wrong AUTH). Such a failure
// is fatal to the circuit, not to the channel.
var ErrHandshake = errors.New("torcrypto: handshake failed")

// NtorClient is the client side of one ntor handshake. It is used once.
type NtorClient struct {
	id  [20]byte
	b   [32]byte
	x   [32]byte // secret scalar; zeroed by Complete
	pub [32]byte // X
}

// newX25519 reads a private scalar from r and returns it with its public
// key. Reading the scalar ourselves (rather than ecdh's GenerateKey, which
// may ignore its reader) keeps the injected reader authoritative.
func newX25519(r io.Reader) (priv, pub [32]byte, err error) {
	if _, err = io.ReadFull(Rand(r), priv[:]); err != nil {
		return priv, pub, fmt.Errorf("torcrypto: reading randomness: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return priv, pub, err
	}
	copy(pub[:], k.PublicKey().Bytes())
	return priv, pub, nil
}

// x25519 computes EXP(pub, priv), failing on an all-zero result (a
// low-order point), which the spec requires both sides to reject.
func x25519(priv, pub []byte) ([]byte, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: bad public key", ErrHandshake)
	}
	s, err := k.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: degenerate shared secret", ErrHandshake)
	}
	return s, nil
}

// NewNtorClient starts an ntor handshake with the relay whose RSA identity
// digest is id and whose ntor onion key is onionKey.
func NewNtorClient(rand io.Reader, id [20]byte, onionKey [32]byte) (*NtorClient, error) {
	c := &NtorClient{id: id, b: onionKey}
	var err error
	c.x, c.pub, err = newX25519(rand)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Handshake returns the client handshake (NtorClientLen bytes) for
// CREATE2 or EXTEND2 with HTYPE 2.
func (c *NtorClient) Handshake() []byte {
	b := make([]byte, 0, NtorClientLen)
	b = append(b, c.id[:]...)
	b = append(b, c.b[:]...)
	return append(b, c.pub[:]...)
}

func ntorHMAC(key string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Complete checks the server's reply and returns the circuit keys. The
// client's secret is wiped whatever the outcome.
func (c *NtorClient) Complete(reply []byte) (*RelayKeys, error) {
	defer Zero(c.x[:])
	if len(reply) < NtorServerLen {
		return nil, fmt.Errorf("%w: ntor reply of %d bytes", ErrHandshake, len(reply))
	}
	y, auth := reply[:32], reply[32:64]
	xy, err := x25519(c.x[:], y)
	if err != nil {
		return nil, err
	}
	xb, err := x25519(c.x[:], c.b[:])
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 0, 32*5+20+len(ntorProtoID))
	secret = append(secret, xy...)
	secret = append(secret, xb...)
	secret = append(secret, c.id[:]...)
	secret = append(secret, c.b[:]...)
	secret = append(secret, c.pub[:]...)
	secret = append(secret, y...)
	secret = append(secret, ntorProtoID...)
	Zero(xy)
	Zero(xb)
	defer Zero(secret)

	keySeed := ntorHMAC(ntorTKey, secret)
	defer Zero(keySeed)
	verify := ntorHMAC(ntorTVerify, secret)
	defer Zero(verify)
	want := ntorHMAC(ntorTMac, verify, c.id[:], c.b[:], y, c.pub[:], []byte(ntorProtoID), []byte("Server"))
	if !Equal(want, auth) {
		return nil, fmt.Errorf("%w: ntor AUTH mismatch", ErrHandshake)
	}
	m, err := KDFRFC5869(keySeed, ntorMExpand, RelayKeyMaterialLen)
	if err != nil {
		return nil, err
	}
	defer Zero(m)
	return relayKeysFrom(m), nil
}
