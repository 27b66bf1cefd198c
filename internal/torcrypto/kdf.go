package torcrypto

import (
	"crypto/hkdf"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
)

// Relay key material sizes (tor-spec 0.2, 5.2).
const (
	DigestLen = 20 // HASH_LEN
	KeyLen    = 16 // KEY_LEN
	// RelayKeyMaterialLen is Df | Db | Kf | Kb | KH.
	RelayKeyMaterialLen = 2*DigestLen + 2*KeyLen + DigestLen
)

// RelayKeys are the per-hop keys a circuit handshake yields (tor-spec 5.2):
// forward and backward digest seeds and AES-128 keys, and KH (the
// derivative key data of KDF-TOR, or the nonce of the newer handshakes).
type RelayKeys struct {
	Df, Db [DigestLen]byte
	Kf, Kb [KeyLen]byte
	KH     [DigestLen]byte
}

// Zero wipes k.
func (k *RelayKeys) Zero() {
	Zero(k.Df[:])
	Zero(k.Db[:])
	Zero(k.Kf[:])
	Zero(k.Kb[:])
	Zero(k.KH[:])
}

// relayKeysFrom splits key material in the ntor order: Df, Db, Kf, Kb, KH.
func relayKeysFrom(m []byte) *RelayKeys {
	k := new(RelayKeys)
	n := copy(k.Df[:], m)
	n += copy(k.Db[:], m[n:])
	n += copy(k.Kf[:], m[n:])
	n += copy(k.Kb[:], m[n:])
	copy(k.KH[:], m[n:])
	return k
}

// KDFTor is KDF-TOR (tor-spec 5.2.1): SHA1(K0|00) | SHA1(K0|01) | ...,
// truncated to n bytes. n is at most 256*20.
func KDFTor(k0 []byte, n int) ([]byte, error) {
	if n < 0 || n > 256*sha1.Size {
		return nil, errors.New("torcrypto: KDF-TOR output too long")
	}
	out := make([]byte, 0, n+sha1.Size)
	buf := make([]byte, len(k0)+1)
	copy(buf, k0)
	for i := 0; len(out) < n; i++ {
		buf[len(k0)] = byte(i)
		s := sha1.Sum(buf)
		out = append(out, s[:]...)
	}
	Zero(buf)
	Zero(out[n:cap(out)])
	return out[:n], nil
}

// KDFRFC5869 is KDF-RFC5869 (tor-spec 5.2.2): HKDF-SHA256-Expand with
// pseudorandom key keySeed (the handshake's KEY_SEED, already the output
// of HKDF-Extract) and info mExpand, n bytes.
func KDFRFC5869(keySeed []byte, mExpand string, n int) ([]byte, error) {
	return hkdf.Expand(sha256.New, keySeed, mExpand, n)
}
