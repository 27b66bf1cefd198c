package torcrypto

import (
	"fmt"
	"io"
)

// FastClient is the client side of a CREATE_FAST handshake (tor-spec
// 5.1.5). It is only for the first hop, which the TLS link already
// authenticated; it is used once.
type FastClient struct {
	x [DigestLen]byte
}

// NewFastClient reads the client's key material X from rand.
func NewFastClient(rand io.Reader) (*FastClient, error) {
	c := new(FastClient)
	if err := RandomBytes(rand, c.x[:]); err != nil {
		return nil, fmt.Errorf("torcrypto: reading randomness: %w", err)
	}
	return c, nil
}

// Handshake returns X, the CREATE_FAST payload.
func (c *FastClient) Handshake() []byte { return append([]byte(nil), c.x[:]...) }

// Complete checks CREATED_FAST's Y | KH and derives the circuit keys with
// KDF-TOR over K0 = X | Y.
func (c *FastClient) Complete(reply []byte) (*RelayKeys, error) {
	defer Zero(c.x[:])
	if len(reply) < 2*DigestLen {
		return nil, fmt.Errorf("%w: CREATED_FAST of %d bytes", ErrHandshake, len(reply))
	}
	k0 := append(c.x[:], reply[:DigestLen]...)
	defer Zero(k0)
	m, err := KDFTor(k0, RelayKeyMaterialLen)
	if err != nil {
		return nil, err
	}
	defer Zero(m)
	// KDF-TOR order: KH | Df | Db | Kf | Kb.
	if !Equal(m[:DigestLen], reply[DigestLen:2*DigestLen]) {
		return nil, fmt.Errorf("%w: CREATED_FAST KH mismatch", ErrHandshake)
	}
	k := relayKeysFrom(m[DigestLen:])
	copy(k.KH[:], m[:DigestLen])
	return k, nil
}
